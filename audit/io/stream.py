"""Stream a dataset source through the loader, in order, optionally decoding in parallel.

Memory stays flat: records are pulled lazily and at most ``workers * prefetch`` chunks of decoded
images are in flight. Results come back in the source's order whatever the number of workers.

Parallel decoding uses threads by default: Pillow's decoders and hashlib release the GIL, and threads
cost no start-up and no copy of each decoded array between processes. ``executor="process"`` suits
decoders that hold the GIL or very large images; measured figures are in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from audit.io.images import LoadResult
from audit.io.sources import ImageRecord, load_record
from audit.io.worker_exit import exit_with_parent


@dataclass
class LoadedItem:
    """A record and its load outcome (refused records carry their refusal as the outcome)."""

    record: ImageRecord
    result: LoadResult

    @property
    def ok(self) -> bool:
        return self.result.ok


def _load(record: ImageRecord, max_pixels: int | None) -> LoadResult:
    return load_record(record, max_pixels=max_pixels)


def _load_many(records: list[ImageRecord], max_pixels: int | None) -> list[LoadResult]:
    return [_load(r, max_pixels) for r in records]


def _executor(kind: str, workers: int) -> Executor:
    if kind == "thread":
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="genaudit-decode")
    if kind == "process":
        # spawn, not fork: the parent may hold torch/OpenMP threads, and forking those is unsafe
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent
        )
    raise ValueError(f"executor must be 'thread' or 'process', got {kind!r}")


def iter_images(
    records: Iterable[ImageRecord],
    *,
    workers: int = 1,
    max_pixels: int | None = None,
    chunk: int = 16,
    prefetch: int = 4,
    executor: str = "thread",
) -> Iterator[LoadedItem]:
    """Yield a :class:`LoadedItem` per record, in order. ``workers > 1`` decodes in parallel
    (``executor``: ``"thread"`` or ``"process"``)."""
    if workers <= 1:
        for record in records:
            yield LoadedItem(record, _load(record, max_pixels))
        return
    it = iter(records)
    pending: deque[tuple[list[ImageRecord], Future[Any]]] = deque()
    with _executor(executor, workers) as pool:
        while True:
            while len(pending) < workers * prefetch:
                batch = list(itertools.islice(it, chunk))
                if not batch:
                    break
                pending.append((batch, pool.submit(_load_many, batch, max_pixels)))
            if not pending:
                return
            batch, future = pending.popleft()
            for record, result in zip(batch, future.result(), strict=True):
                yield LoadedItem(record, result)
