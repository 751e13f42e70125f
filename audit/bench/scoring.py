"""Where a benchmark's cells are scored: here, one after another, or as Ray tasks, several at once.

Scoring a cell (:func:`audit.metrics.evaluator.evaluate_features`: the metrics and their resampling
draws) needs only the reference's and the cell's extractor outputs, so cells are independent. On Ray
(docs/scale-out.md) the driver reads a cell's features from the feature cache and hands them to a task
(one CPU), at most one cell in flight per worker, and writes each cell's metrics as its task returns:
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
    """Each cell scored when it is handed over, in this process."""

    def __init__(self, reference: dict[str, Any], extractor: Any, options: dict[str, Any]) -> None:
        self.reference, self.extractor, self.options = reference, extractor, options

    def submit(self, fake: dict[str, Any], done: Done) -> None:
        result, seconds = score_cell(self.reference, fake, self.extractor, self.options)
        done(result, seconds)

    def drain(self) -> None:
        """Nothing is in flight here."""


class RayScoring:
    """Cells scored as Ray tasks, ``workers`` at a time; ``done`` runs on the driver as each returns."""

    def __init__(self, ray: Any, workers: int, reference: dict[str, Any], extractor: Any, options: dict[str, Any]):
        from types import SimpleNamespace

        from audit.scale.ray_executor import RESTARTS

        self.ray, self.workers, self.options = ray, max(1, workers), options
        self.extractor = SimpleNamespace(id=extractor.id)  # the task needs its name only (captions come encoded)
        self.reference = ray.put(reference)
        self.task = ray.remote(num_cpus=1, max_retries=RESTARTS)(score_cell)
        self.running: dict[Any, Done] = {}

    def submit(self, fake: dict[str, Any], done: Done) -> None:
        while len(self.running) >= self.workers:
            self._collect_one()
        self.running[self.task.remote(self.reference, fake, self.extractor, self.options)] = done

    def drain(self) -> None:
        while self.running:
            self._collect_one()

    def _collect_one(self) -> None:
        ready, _ = self.ray.wait(list(self.running), num_returns=1)
        done = self.running.pop(ready[0])
        try:
            result, seconds = self.ray.get(ready[0])
        except self.ray.exceptions.RayError as exc:
            from audit.scale.ray_executor import job_error

            found = job_error(exc)
            if found is not None:
                raise found from None
            why = " ".join(str(exc).split())[:300]
            raise InputError(f"scoring a cell on Ray failed ({why}); the cells scored are kept: run again") from None
        done(result, seconds)


def score_cell(
    reference: dict[str, Any], fake: dict[str, Any], extractor: Any, options: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """One cell's metrics (``options``: :func:`evaluate_features`' keywords) and the seconds they took."""
    from audit.metrics.evaluator import evaluate_features

    start = time.perf_counter()
    result = evaluate_features(reference, fake, extractor, **options)
    return result, time.perf_counter() - start
