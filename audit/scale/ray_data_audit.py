"""The audit on Ray Data (extra ``ray``): an actor pool of face backends, each listing and analysing its
shards (docs/scale-out.md).

The pipeline, streamed end to end (Ray Data's backpressure bounds what is in flight):

1. ``from_items``: one row per unfinished shard (:mod:`audit.scale.shards`, the same cut as ``--shard``).
2. ``map_batches`` on an actor pool (one per worker, each with the backend built once, ``num_gpus`` as
   asked), a generator over one shard at a time: the shard's items not yet in its part file, listed in
   the actor through the same source code as a local run (folders, manifests, webdataset tars, Parquet),
   every image through the one loader (sha256, EXIF, pixel limit, reasons) and the backend, exactly
   :func:`audit.dataset.run.analyze_item`; records leave the actor in blocks of about
   :data:`RECORD_BLOCK_BYTES`, not at the shard's end.
3. The driver appends each record to its shard's part file as it arrives and writes the shard's marker
   when the shard is complete; the caller then merges the parts in index order
   (:func:`audit.dataset.run.run_records`), so the records equal a one-process run's.

Listing in the actors rather than in tasks of their own (up to 2026-12-07) starts one worker process fewer
and moves no image bytes through the object store (benchmarks/RESULTS.md, seventh round).

Resume is genaudit's, not Ray's: a rerun lists only what the part files lack. A worker killed mid-shard
is restarted and its shard retried against the part file as the run found it (at most
:data:`audit.scale.ray_executor.RESTARTS` times; see :meth:`ShardRecorder._unrecorded`); a record that
arrives twice is written once (the driver keys them by index).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audit.errors import InputError
from audit.scale.shards import Shard, ShardMarker

log = logging.getLogger(__name__)

BATCH_SIZE = 8  # records per batch an actor yields
RECORD_BLOCK_BYTES = 64 * 1024  # Ray Data's output block target for the records (its default, 128 MiB,
# would hold a shard's records in the actor until the shard ends: a killed actor or driver would lose them)


class ShardRecorder:
    """Stage 2, one Ray Data actor: the face backend (and NSFW checker, caption scorer) built once, then shard
    after shard, each listed here (its items not yet in its part file, through the same sources as a local
    run) and every item analysed as it is listed (:func:`audit.dataset.run.analyze_item`), its records
    yielded :attr:`batch_size` at a time. Listing where the images are analysed starts no other worker
    process and never moves an image's bytes through the object store (a Parquet cell is read here)."""

    def __init__(
        self, spec: str, out: str, job: str, columns: Any, total: int, batch_size: int,
        backend: str, nsfw: bool, caption_model: str | None, cwd: str, paths: list[str],
    ) -> None:  # fmt: skip
        from audit.dataset.backends import get_analyzer
        from audit.dataset.run import _caption_scorer, _nsfw_checker

        _enter(cwd, paths)
        self.spec, self.out, self.job, self.columns, self.total = spec, out, job, columns, total
        self.batch_size = batch_size
        self._error: Exception | None = None
        try:
            self.analyzer, self.checker = get_analyzer(backend), _nsfw_checker(nsfw)
            self.captioner = _caption_scorer(caption_model)
        except Exception as exc:  # missing weights, a missing extra: raised by the first shard, so that it
            self._error = exc  # reaches the user as the CLI's one line, not as an actor's death and traceback

    def __call__(self, batch: dict[str, Any]) -> Iterator[dict[str, list[Any]]]:
        from audit.dataset.run import analyze_item

        if self._error is not None:
            raise self._error
        for k, n, recorded in zip(batch["k"], batch["n"], batch["recorded"], strict=True):
            records: list[str] = []
            for item in self._unrecorded(Shard(int(k), int(n)), int(recorded)):
                record = analyze_item(item, self.analyzer, self.checker, self.captioner)
                records.append(json.dumps(record, ensure_ascii=False))
                if len(records) == self.batch_size:
                    yield {"k": [int(k)] * len(records), "record": records}
                    records = []
            if records:
                yield {"k": [int(k)] * len(records), "record": records}

    def _unrecorded(self, shard: Shard, recorded: int) -> Iterator[Any]:
        """The shard's items without a record among the first ``recorded`` of its part file: the records the
        driver had when it planned the run, never the ones it appends meanwhile, so that a call Ray retries
        after a kill yields the same records in the same blocks (Ray does not deliver a retried streaming
        task's blocks twice: it counts them) and the driver keeps each index once."""
        from itertools import islice

        from audit.dataset.record_store import JsonlRecords
        from audit.dataset.run import RecordedNames, _not_yet_recorded, dataset_items
        from audit.scale.shards import shard_folder

        indices = shard.range(self.total)
        part = JsonlRecords(shard_folder(Path(self.out), self.job) / f"{shard.name}.jsonl")
        items = dataset_items(self.spec, self.columns, start=indices.start)
        # the driver may be appending to this part: read what it had, never repair it
        done = RecordedNames(lambda: islice(part.iter(repair=False), recorded))
        return _not_yet_recorded(items, done, stop=indices.stop)


def _restarts() -> dict[str, int]:
    """A killed actor is restarted and its shard retried, a bounded number of times (never a hang)."""
    from audit.scale.ray_executor import RESTARTS

    return {"max_restarts": RESTARTS, "max_task_retries": RESTARTS}


def _enter(cwd: str, paths: list[str]) -> None:
    """Work in the driver's folder with its import path: relative paths and ``python:`` plug-ins resolve
    as on the driver (on a cluster: where the shared filesystem is mounted at the same path)."""
    if os.path.isdir(cwd) and os.getcwd() != cwd:
        os.chdir(cwd)
    sys.path[:0] = [p for p in paths if p not in sys.path]


class ShardWriter:
    """The driver's end: records appended to their shard's part file as they arrive (each index once),
    the shard's marker written the moment it is complete."""

    def __init__(self, out: Path, job: str, shards: list[Shard], total: int) -> None:
        from audit.dataset.record_store import JsonlRecords
        from audit.dataset.run import RecordedNames
        from audit.scale.shards import shard_folder

        folder = shard_folder(out, job)
        folder.mkdir(parents=True, exist_ok=True)
        self.out, self.job = out, job
        self.shards = {s.k: s for s in shards}
        self.ranges = {s.k: s.range(total) for s in shards}
        self.parts = {s.k: JsonlRecords(folder / f"{s.name}.jsonl") for s in shards}
        self.done = {k: RecordedNames(part.iter) for k, part in self.parts.items()}  # a torn tail is cut here
        for k in self.shards:
            self._mark_if_complete(k)

    def add(self, k: int, record: dict[str, Any]) -> None:
        done = self.done[k]
        if record["index"] in done:  # a batch retried after its worker died: already written
            return
        self.parts[k].append(record)
        done.add(record["index"], record["image"])
        self._mark_if_complete(k)

    def _mark_if_complete(self, k: int) -> None:
        indices = self.ranges[k]
        if len(self.done[k]) == len(indices):
            self.parts[k].close()
            ShardMarker(self.out, self.job, self.shards[k]).write(range=[indices.start, indices.stop],
                                                                  records=len(indices))  # fmt: skip

    def close(self) -> None:
        for part in self.parts.values():
            part.close()

    def finish(self) -> None:
        """Close every part; a shard still incomplete (its source shrank under us) is an error."""
        self.close()
        for k, indices in self.ranges.items():
            if len(self.done[k]) != len(indices):
                raise InputError(
                    f"shard {self.shards[k]}: {len(self.done[k])} of {len(indices)} records written; run the "
                    "command again to continue"
                )


def record_with_ray_data(
    options: Any,
    spec: str,
    out: Path,
    *,
    backend: str,
    nsfw: bool,
    job: str,
    columns: Any,
    progress: bool = True,
    caption_model: str | None = "embedded",
) -> list[Shard]:
    """Record every unfinished audit shard of ``spec`` in ``out`` through Ray Data; returns the shards done
    now (see the module docstring)."""
    from audit.dataset.run import count_items
    from audit.scale.ray_executor import job_error, ray_session, unfinished_shards

    with ray_session(options) as ray:
        data = _ray_data(ray)
        workers, resources, todo = unfinished_shards(ray, options, out, job)
        if not todo:
            return []
        total = count_items(spec, columns)
        writer = ShardWriter(out, job, todo, total)
        with _settings(data.DataContext.get_current(), progress):
            here = (os.getcwd(), [p for p in sys.path if p])
            rows = data.from_items([{"k": s.k, "n": s.n, "recorded": len(writer.done[s.k])} for s in todo],
                                   override_num_blocks=len(todo))  # fmt: skip
            recorder_args = (spec, str(out), job, columns, total, options.batch_size or BATCH_SIZE, backend, nsfw,
                             caption_model, *here)  # fmt: skip
            with warnings.catch_warnings():  # Ray 2.60 marks the one way to bound restarts as deprecated
                warnings.simplefilter("ignore", DeprecationWarning)
                records = rows.map_batches(
                    ShardRecorder, fn_constructor_args=recorder_args, batch_size=1,
                    compute=data.ActorPoolStrategy(size=workers), num_cpus=resources["num_cpus"],
                    num_gpus=resources.get("num_gpus", 0), ray_remote_args_fn=_restarts,
                )  # fmt: skip
            try:
                for batch in records.iter_batches(batch_size=None, batch_format="numpy"):
                    for k, text in zip(batch["k"], batch["record"], strict=True):
                        writer.add(int(k), json.loads(str(text)))
            except ray.exceptions.RayError as exc:
                writer.close()
                found = job_error(exc)
                if found is not None:
                    raise found from None
                why = " ".join(str(exc).split())[:300]
                raise InputError(
                    f"the Ray Data audit stopped ({type(exc).__name__}: {why}); the shards done are kept: run the "
                    "command again to continue"
                ) from None
            except BaseException:
                writer.close()
                raise
            writer.finish()
    return todo


@contextmanager
def _settings(context: Any, progress: bool) -> Iterator[None]:
    """This run's Ray Data settings (progress bars, unordered output, small record blocks, Ray Data's log
    quiet: its errors reach the user as genaudit's one line), the caller's restored afterwards: genaudit may
    run inside a program with Ray Data pipelines of its own."""
    logger = logging.getLogger("ray.data")
    saved = (context.enable_progress_bars, context.execution_options.preserve_order, context.target_max_block_size)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    context.enable_progress_bars = progress
    context.execution_options.preserve_order = False
    context.target_max_block_size = RECORD_BLOCK_BYTES
    try:
        yield
    finally:
        (context.enable_progress_bars, context.execution_options.preserve_order,
         context.target_max_block_size) = saved  # fmt: skip
        logger.setLevel(level)


def _ray_data(ray: Any) -> Any:
    try:
        import ray.data as data
    except ImportError:
        raise InputError('the audit on Ray needs Ray Data: pip install "genaudit[ray]" (ray[data])') from None
    return data
