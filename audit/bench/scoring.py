"""Where a benchmark's cells are scored: here, one after another, or as Ray tasks, several at once.

Scoring a cell (:func:`audit.metrics.evaluator.evaluate_features`: the metrics and their resampling
draws) needs only the reference's and the cell's extractor outputs, so cells are independent. On Ray
(docs/scale-out.md) the driver reads a cell's features from the feature cache and hands them to one of
the actors that ran the shards (models already built: no worker process to start), or to a task when
no shard ran now, at most one cell in flight per worker, and writes each cell's metrics as it returns:
the reference travels once through the object store, and the driver holds at most ``workers`` cells'
features. Results are the same numbers as scoring here with one thread (Ray workers run one each).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from audit.errors import InputError

Done = Callable[[dict[str, Any], float], None]  # (the cell's metrics, seconds spent scoring it)


class LocalScoring:
    """Each cell scored when it is handed over, in this process (the captions encoded once)."""

    def __init__(
        self, reference: dict[str, Any], extractor: Any, options: dict[str, Any], captions: list[str] | None = None
    ) -> None:
        self.reference, self.options, self.captions = reference, options, captions
        self.score = CaptionScoring(extractor)

    def submit(self, fake: dict[str, Any], done: Done) -> None:
        done(*self.score(self.reference, fake, self.options, self.captions))

    def drain(self) -> None:
        """Nothing is in flight here."""


class RayScoring:
    """Cells scored on Ray, ``workers`` at a time; ``done`` runs on the driver as each returns. With a
    :class:`~audit.scale.ray_executor.WorkerPool` (the actors that just ran the shards) each cell goes to a
    warm actor, which encodes the captions with its own extractor (once per actor); without one (every
    shard was done before), each cell is a task, with the captions encoded here."""

    def __init__(
        self,
        ray: Any,
        workers: int,
        reference: dict[str, Any],
        extractor: Any,
        options: dict[str, Any],
        *,
        pool: Any = None,
        captions: list[str] | None = None,
    ) -> None:
        from types import SimpleNamespace

        from audit.scale.ray_executor import RESTARTS

        self.ray, self.workers, self.pool, self.captions = ray, max(1, workers), pool, captions
        self.options = dict(options)
        if pool is None and captions is not None:
            self.options["text_emb"] = extractor.encode_texts(list(captions))  # once, for every cell
        self.extractor = SimpleNamespace(id=extractor.id)  # a task needs its name only (captions come encoded)
        self.reference = ray.put(reference)
        self.task = ray.remote(num_cpus=1, max_retries=RESTARTS)(score_cell)
        self.running: dict[Any, Done] = {}

    def submit(self, fake: dict[str, Any], done: Done) -> None:
        while len(self.running) >= self.workers:
            self._collect_one()
        if self.pool is not None:
            ref = self.pool.submit("score", self.reference, fake, self.options, self.captions)
        else:
            ref = self.task.remote(self.reference, fake, self.extractor, self.options)
        self.running[ref] = done

    def drain(self) -> None:
        while self.running:
            self._collect_one()

    def _collect_one(self) -> None:
        if self.pool is not None:
            ready = self.pool.wait_one(list(self.running))
        else:
            ready = self.ray.wait(list(self.running), num_returns=1)[0][0]
        done = self.running.pop(ready)
        try:
            result, seconds = self.ray.get(ready)
        except self.ray.exceptions.RayError as exc:
            from audit.scale.ray_executor import job_error

            found = job_error(exc)
            if found is not None:
                raise found from None
            why = " ".join(str(exc).split())[:300]
            raise InputError(f"scoring a cell on Ray failed ({why}); the cells scored are kept: run again") from None
        done(result, seconds)


class CaptionScoring:
    """What a warm bench worker scores a cell with: its extractor, the captions encoded once per actor."""

    def __init__(self, extractor: Any) -> None:
        self.extractor = extractor
        self._encoded: tuple[tuple[str, ...], Any] | None = None

    def __call__(
        self, reference: dict[str, Any], fake: dict[str, Any], options: dict[str, Any], captions: list[str] | None
    ) -> tuple[dict[str, Any], float]:
        if captions is not None:
            key = tuple(captions)
            if self._encoded is None or self._encoded[0] != key:
                self._encoded = (key, self.extractor.encode_texts(list(captions)))
            options = {**options, "text_emb": self._encoded[1]}
        return score_cell(reference, fake, self.extractor, options)


def score_cell(
    reference: dict[str, Any], fake: dict[str, Any], extractor: Any, options: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """One cell's metrics (``options``: :func:`evaluate_features`' keywords) and the seconds they took."""
    from audit.metrics.evaluator import evaluate_features

    start = time.perf_counter()
    result = evaluate_features(reference, fake, extractor, **options)
    return result, time.perf_counter() - start
