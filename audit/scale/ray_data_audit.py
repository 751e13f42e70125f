"""The audit on Ray Data (extra ``ray``): listing tasks feed an actor pool of face backends (docs/scale-out.md).

The pipeline, streamed end to end (Ray Data's backpressure bounds what is in flight):

1. ``from_items``: one row per unfinished shard (:mod:`audit.scale.shards`, the same cut as ``--shard``).
2. ``map_batches`` over the shards, a generator (tasks, no CPU reserved, one at a time per 8 workers:
   they only list): each shard's items not yet in its part file, 256 rows at a time, through the same
   source code as a local run (folders, manifests, webdataset tars, Parquet; a Parquet cell's bytes
   travel with its row, a file is read where it is analysed).
3. ``map_batches`` on an actor pool (one per worker, each with the backend built once, ``num_gpus`` as
   asked): every image through the one loader (sha256, EXIF, pixel limit, reasons) and the backend,
   exactly :func:`audit.dataset.run.analyze_item`.
4. The driver appends each record to its shard's part file as it arrives and writes the shard's marker
   when the shard is complete; the caller then merges the parts in index order
   (:func:`audit.dataset.run.run_records`), so the records equal a one-process run's.

Resume is genaudit's, not Ray's: a rerun lists only what the part files lack. A worker killed mid-batch
is restarted and its batch retried (at most :data:`audit.scale.ray_executor.RESTARTS` times); a record
that arrives twice is written once (the driver keys them by index).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit.errors import InputError
from audit.scale.shards import Shard, ShardMarker

log = logging.getLogger(__name__)

LIST_CHUNK = 256  # listed rows per output block
BATCH_SIZE = 8  # images per actor call: small, so a killed worker redoes little
LISTED_PER_LISTER = 8  # analysis workers fed by one listing task at a time: listing is cheap, and every
# concurrent task is a worker process to start (8 at once cost 9 s on 2 cores before the first image)


class ShardLister:
    """Stage 2: a shard's items not yet recorded, yielded :data:`LIST_CHUNK` rows at a time (a shard of a
    Parquet source carries its images' bytes: never one list). Picklable; runs in Ray's task workers."""

    def __init__(self, spec: str, out: str, job: str, columns: Any, total: int, cwd: str, paths: list[str]) -> None:
        self.spec, self.out, self.job, self.columns, self.total = spec, out, job, columns, total
        self.cwd, self.paths = cwd, paths

    def __call__(self, batch: dict[str, Any]) -> Iterator[dict[str, list[Any]]]:
        _enter(self.cwd, self.paths)
        for k, n in zip(batch["k"], batch["n"], strict=True):
            rows: dict[str, list[Any]] = {"k": [], "item": [], "data": []}
            for item in self._unrecorded(Shard(int(k), int(n))):
                rows["k"].append(int(k))
                rows["item"].append(_item_json(item))
                rows["data"].append(item.data)
                if len(rows["k"]) == LIST_CHUNK:
                    yield rows
                    rows = {"k": [], "item": [], "data": []}
            if rows["k"]:
                yield rows

    def _unrecorded(self, shard: Shard) -> Iterator[Any]:
        from audit.dataset.record_store import JsonlRecords
        from audit.dataset.run import RecordedNames, _not_yet_recorded, dataset_items
        from audit.scale.shards import shard_folder

        indices = shard.range(self.total)
        part = JsonlRecords(shard_folder(Path(self.out), self.job) / f"{shard.name}.jsonl")
        items = dataset_items(self.spec, self.columns, start=indices.start)
        # the driver may be appending to this part (a retried listing): read it, never repair it
        return _not_yet_recorded(items, RecordedNames(lambda: part.iter(repair=False)), stop=indices.stop)


class RecordMaker:
    """Stage 3: one Ray Data actor; the face backend (and NSFW checker) built once, then batch after batch."""

    def __init__(self, backend: str, nsfw: bool, caption_model: str | None, cwd: str, paths: list[str]) -> None:
        from audit.dataset.backends import get_analyzer
        from audit.dataset.run import _caption_scorer, _nsfw_checker

        _enter(cwd, paths)
        self._builtin: list[Any] | None = None
        self._error: Exception | None = None
        try:
            self.analyzer, self.checker = get_analyzer(backend), _nsfw_checker(nsfw)
            self.captioner = _caption_scorer(caption_model)
        except Exception as exc:  # missing weights, a missing extra: raised by the first batch, so that it
            self._error = exc  # reaches the user as the CLI's one line, not as an actor's death and traceback

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        from audit.dataset.run import analyze_item

        if self._error is not None:
            raise self._error

        records = [
            json.dumps(
                analyze_item(self._item(text, data), self.analyzer, self.checker, self.captioner), ensure_ascii=False
            )
            for text, data in zip(batch["item"], batch["data"], strict=True)
        ]
        return {"k": list(batch["k"]), "record": records}

    def _item(self, text: str, data: Any) -> Any:
        from audit.dataset.run import Item

        fields = json.loads(text)
        if fields.pop("builtin", False):
            if self._builtin is None:
                from audit.dataset.builtin import faces_demo

                self._builtin = list(faces_demo())
            fields["pixels"] = self._builtin[fields["index"]].load()
        span, has_data = fields.pop("span"), fields.pop("has_data")
        return Item(**fields, span=None if span is None else tuple(span), data=bytes(data) if has_data else None)


def _restarts() -> dict[str, int]:
    """A killed actor is restarted and its batch retried, a bounded number of times (never a hang)."""
    from audit.scale.ray_executor import RESTARTS

    return {"max_restarts": RESTARTS, "max_task_retries": RESTARTS}


def _enter(cwd: str, paths: list[str]) -> None:
    """Work in the driver's folder with its import path: relative paths and ``python:`` plug-ins resolve
    as on the driver (on a cluster: where the shared filesystem is mounted at the same path)."""
    if os.path.isdir(cwd) and os.getcwd() != cwd:
        os.chdir(cwd)
    sys.path[:0] = [p for p in paths if p not in sys.path]


def _item_json(item: Any) -> str:
    """An item as text, without its bytes (they travel as their own column) or in-memory pixels (the
    builtin set is rebuilt in the actor)."""
    return json.dumps(
        {
            "relpath": item.relpath, "label": item.label, "path": item.path, "refusal": item.refusal,
            "refusal_message": item.refusal_message, "index": item.index,
            "span": None if item.span is None else list(item.span), "builtin": item.pixels is not None,
            "has_data": item.data is not None, "caption": item.caption,
        },
        ensure_ascii=False,
    )  # fmt: skip


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
        context = data.DataContext.get_current()
        context.enable_progress_bars = progress
        context.execution_options.preserve_order = False
        here = (os.getcwd(), [p for p in sys.path if p])
        rows = data.from_items([{"k": s.k, "n": s.n} for s in todo], override_num_blocks=len(todo))
        listers = data.TaskPoolStrategy(size=max(1, workers // LISTED_PER_LISTER))
        lister = ShardLister(spec, str(out), job, columns, total, *here)
        listed = rows.map_batches(lister, batch_size=1, num_cpus=0, compute=listers)
        with warnings.catch_warnings():  # Ray 2.60 marks the one way to bound restarts as deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            records = listed.map_batches(
                RecordMaker, fn_constructor_args=(backend, nsfw, caption_model, *here),
                batch_size=options.batch_size or BATCH_SIZE,
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


def _ray_data(ray: Any) -> Any:
    try:
        import ray.data as data
    except ImportError:
        raise InputError('the audit on Ray needs Ray Data: pip install "genaudit[ray]" (ray[data])') from None
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # its errors reach the user as our one line
    return data
