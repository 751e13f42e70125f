"""Run a face audit over a dataset: one record per image, written as it is produced, then the statistics.

``OUT/records.jsonl`` (or the ``OUT/records.parquet`` folder) gets one record per image (readable or
not) as soon as it is analysed, in source order (:mod:`audit.dataset.record_store`); an interrupted
audit run again with ``resume=True`` keeps every complete record and analyses only the images not yet
recorded.

Records are keyed by their position in the source (``index``), not by name, so a manifest that lists a
file twice gets two records, on a resumed run as on an uninterrupted one. Resuming checks the run's
identity first (``records.run.json``, :mod:`audit.run_identity`: the dataset, the backend, the NSFW
setting, the pixel limit, versions) and then, item by item, that every recorded index still names the
same file: a dataset whose listing changed since is refused, never mixed.

Analysis runs in ``workers`` processes (each with its own models), decoding included; memory stays
flat because work is submitted a bounded number of images ahead. No face crop is ever written:
records hold boxes, scores and the perceived attributes only.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.atomic import output_folder
from audit.errors import InputError
from audit.run_identity import start_or_resume

log = logging.getLogger(__name__)

RECORDS_FILE = "records.jsonl"
RECORDS_SCHEMA = 2  # 2: records carry their source position, "index"
RECORDS_FORMATS = {"jsonl": RECORDS_FILE, "parquet": "records.parquet"}
UNLABELLED = "(unlabelled)"
_ANALYZER: Any = None
_NSFW: Any = None
_INIT_ERROR: Exception | None = None


@dataclass(frozen=True)
class Item:
    """One image to analyse: a file (``path``) or pixels already in memory (``pixels``)."""

    relpath: str
    label: str
    path: str | None = None
    pixels: Any = None
    refusal: str | None = None
    refusal_message: str | None = None
    index: int = 0  # position in the source: the record's key


def dataset_items(spec: str) -> Iterator[Item]:
    """Items of ``builtin:faces-demo``, a folder, or a CSV/JSONL manifest, in source order. The source is
    opened (and a manifest checked whole) now, before the caller starts any model."""
    if spec == "builtin:faces-demo":
        return _builtin_items()
    if spec.startswith("builtin:"):
        raise InputError(f"unknown builtin dataset {spec!r}; available: builtin:faces-demo")
    from audit.io import open_source

    records = open_source(spec)
    return (
        Item(
            record.relpath,
            record.label or UNLABELLED,
            path=str(record.path),
            refusal=record.refusal,
            refusal_message=record.refusal_message,
            index=i,
        )
        for i, record in enumerate(records)
    )


def _builtin_items() -> Iterator[Item]:
    from audit.dataset.builtin import faces_demo

    for i, b in enumerate(faces_demo()):
        yield Item(b.relpath, b.label, pixels=b.load(), index=i)


def _init_worker(backend: str, nsfw: bool = False) -> None:
    """Each worker builds its own models once, one thread each (torch is imported only by mtcnn). A failure
    (missing weights, a missing extra) is kept and raised by the worker's first task, so it reaches the user
    as the CLI's one line, not as a worker's traceback and a broken pool."""
    global _ANALYZER, _NSFW, _INIT_ERROR
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # a torch-based detector (mtcnn): one thread per worker
    from audit.dataset.backends import get_analyzer

    try:
        _ANALYZER = get_analyzer(backend)
        _NSFW = _nsfw_checker(nsfw)
    except Exception as exc:
        _INIT_ERROR = exc


def _nsfw_checker(nsfw: bool) -> Any:
    if not nsfw:
        return None
    from audit.dataset.nsfw import NudeNetChecker

    return NudeNetChecker()


def analyze_item(item: Item, analyzer: Any = None, nsfw: Any = None) -> dict[str, Any]:
    """The record of one image: status, size, sha256, its faces (boxes, scores, perceived age/gender)
    and, when an NSFW checker is given, its NudeNet labels."""
    from audit.io import load_image
    from audit.io.images import BACKEND_ERROR, TOO_LARGE

    analyzer = analyzer or _ANALYZER
    nsfw = nsfw or _NSFW
    record: dict[str, Any] = {"index": item.index, "image": item.relpath, "class": item.label}
    if item.refusal:
        return {**record, "status": item.refusal, "message": item.refusal_message, "faces": []}
    from audit.dataset.datasheet import dhash

    meta: dict[str, Any] = {}
    if item.path is not None:
        result = load_image(item.path)
        if not result.ok:
            return {**record, "status": result.reason, "message": result.message, "faces": []}
        image, sha, meta = result.image, result.sha256, result.meta
    else:
        from audit.hashing import sha256_bytes

        image, sha = item.pixels, sha256_bytes(item.pixels.tobytes())
    try:
        faces = analyzer.analyze(image)
        if nsfw is not None:
            record["nsfw"] = nsfw.check(image)
    except MemoryError:
        return {**record, "status": TOO_LARGE, "message": "out of memory in the face backend", "faces": []}
    except Exception as exc:  # one image a backend cannot handle is recorded; the run goes on
        message = f"face backend failed: {type(exc).__name__}: {exc}"
        log.debug("%s: %s", item.relpath, message, exc_info=True)
        return {**record, "status": BACKEND_ERROR, "message": message[:500], "faces": []}
    return {
        **record,
        "status": "ok",
        "sha256": sha,
        "dhash": dhash(image),
        "format": meta.get("format"),
        "exif": bool(meta.get("exif")),
        "gps": bool(meta.get("gps")),
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "faces": [
            {
                "box": list(f.box),
                "det_score": round(f.det_score, 4),
                "age": f.age,
                "p_male": round(f.p_male, 4),
                "gender_confidence": round(f.gender_confidence, 4),
                "detect_scale": round(f.detect_scale, 4),
            }
            for f in faces
        ],
    }


def _analyze_many(items: list[Item]) -> list[dict[str, Any]]:
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    return [analyze_item(item) for item in items]


def run_records(
    spec: str,
    out: Path,
    *,
    backend: str = "dlib-agegender",
    workers: int | None = None,
    resume: bool = False,
    chunk: int = 8,
    records_name: str = RECORDS_FILE,
    nsfw: bool = False,
    progress: bool = True,
) -> Path:
    """Analyse every image of ``spec`` into ``out/records_name`` (see the module docstring)."""
    from tqdm.auto import tqdm

    from audit.dataset.record_store import record_store

    output_folder(out)
    path = out / records_name
    other = [out / name for name in RECORDS_FORMATS.values() if name != records_name and (out / name).exists()]
    if other and records_name in RECORDS_FORMATS.values():
        raise InputError(f"{out} holds an audit with {other[0].name}: resume it in that format, or use another --out")
    store = record_store(path)
    identity_file = out / f"{Path(records_name).stem}.run.json"
    identity = records_identity(spec, backend, nsfw)
    items = dataset_items(spec)  # a bad source is refused before the folder records a run
    start_or_resume(identity_file, identity, resume=resume, started=store.exists(), what="an audit")
    previous = store.read()
    done = {r["index"]: r["image"] for r in previous}
    todo = _not_yet_recorded(items, done)
    workers = workers or min(2, os.cpu_count() or 1)
    bar = tqdm(desc=f"audit ({backend})", unit="img", initial=len(done), disable=not progress)
    try:

        def write(record: dict[str, Any]) -> None:
            store.append(record)
            bar.update(1)

        if workers <= 1:
            from audit.dataset.backends import get_analyzer

            analyzer, checker = get_analyzer(backend), _nsfw_checker(nsfw)
            for item in todo:
                write(analyze_item(item, analyzer, checker))
        else:
            import multiprocessing

            pending: deque[Future[list[dict[str, Any]]]] = deque()
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                workers, mp_context=ctx, initializer=_init_worker, initargs=(backend, nsfw)
            ) as pool:
                while True:
                    while len(pending) < 2 * workers:
                        batch = list(itertools.islice(todo, chunk))
                        if not batch:
                            break
                        pending.append(pool.submit(_analyze_many, batch))
                    if not pending:
                        break
                    for record in pending.popleft().result():
                        write(record)
    finally:
        store.close()
    bar.close()
    return path


def records_identity(spec: str, backend: str, nsfw: bool) -> dict[str, Any]:
    """Everything that changes a record (see :mod:`audit.run_identity`)."""
    from audit.dataset.backends import check_spec
    from audit.io.images import default_max_pixels
    from audit.provenance import package_versions
    from audit.run_identity import RECORD_PACKAGES, dataset_identity

    return {
        "job": "audit records",
        "records_schema": RECORDS_SCHEMA,
        "dataset": dataset_identity(spec),
        "backend": check_spec(backend),
        "nsfw": nsfw,
        "max_pixels": default_max_pixels(),
        "versions": package_versions(RECORD_PACKAGES),
    }


def _not_yet_recorded(items: Iterator[Item], done: dict[int, str]) -> Iterator[Item]:
    """The items whose index has no record; each recorded index must still name the same file."""
    for item in items:
        recorded = done.get(item.index)
        if recorded is None:
            yield item
        elif recorded != item.relpath:
            raise InputError(
                f"the dataset changed since this audit started: item {item.index} was {recorded!r} and is now "
                f"{item.relpath!r}; audit it again with a new --out"
            )
