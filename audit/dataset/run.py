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
from audit.scale.shards import Shard

log = logging.getLogger(__name__)

RECORDS_FILE = "records.jsonl"
RECORDS_SCHEMA = 3  # 2: records carry their source position, "index"; 3: captions and their scores
RECORDS_FORMATS = {"jsonl": RECORDS_FILE, "parquet": "records.parquet"}
UNLABELLED = "(unlabelled)"
_ANALYZER: Any = None
_NSFW: Any = None
_CAPTIONER: Any = None
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
    span: tuple[int, int] | None = None  # the image's bytes within ``path`` (a tar member)
    data: bytes | None = None  # the image's bytes (a Parquet cell)
    caption: str | None = None  # the source's caption (manifest column, webdataset txt, Parquet column)

    def load(self) -> Any:
        """The item's :class:`audit.io.LoadResult` through the one loader (not for in-memory pixels)."""
        from audit.io.sources import ImageRecord, load_record

        record = ImageRecord(Path(self.path or ""), self.relpath, span=self.span, data=self.data)
        return load_record(record)


def dataset_items(spec: str, columns: Any = None, *, start: int = 0) -> Iterator[Item]:
    """Items of ``builtin:faces-demo``, a folder, a CSV/JSONL manifest, webdataset shards or Parquet, in
    source order. The source is opened (and a manifest checked whole) now, before the caller starts any
    model. ``columns``: :class:`audit.io.archives.Columns` for Parquet. ``start``: begin at that index
    (a Parquet source skips whole row groups unread)."""
    if spec == "builtin:faces-demo":
        return _builtin_items(start)
    if spec.startswith("builtin:"):
        raise InputError(f"unknown builtin dataset {spec!r}; available: builtin:faces-demo")
    from audit.io import archives, open_source

    if archives.is_parquet(spec):
        records = archives.parquet_source(spec, columns, start=start)
    else:
        records = itertools.islice(open_source(spec, columns=columns), start, None)
    return (
        Item(
            record.relpath,
            record.label or UNLABELLED,
            path=str(record.path),
            refusal=record.refusal,
            refusal_message=record.refusal_message,
            index=i,
            span=record.span,
            data=record.data,
            caption=record.caption,
        )
        for i, record in enumerate(records, start=start)
    )


def _builtin_items(start: int = 0) -> Iterator[Item]:
    from audit.dataset.builtin import faces_demo

    for i, b in enumerate(faces_demo()):
        if i >= start:
            yield Item(b.relpath, b.label, pixels=b.load(), index=i)


def _init_worker(backend: str, nsfw: bool = False, caption_model: str | None = None) -> None:
    """Each worker builds its own models once, one thread each (torch is imported only by mtcnn). A failure
    (missing weights, a missing extra) is kept and raised by the worker's first task, so it reaches the user
    as the CLI's one line, not as a worker's traceback and a broken pool."""
    global _ANALYZER, _NSFW, _CAPTIONER, _INIT_ERROR
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # a torch-based detector (mtcnn): one thread per worker
    from audit.dataset.backends import get_analyzer
    from audit.io.worker_exit import exit_with_parent

    exit_with_parent()  # a killed audit leaves no orphaned workers behind

    try:
        _ANALYZER = get_analyzer(backend)
        _NSFW = _nsfw_checker(nsfw)
        _CAPTIONER = _caption_scorer(caption_model)
    except Exception as exc:
        _INIT_ERROR = exc


def _nsfw_checker(nsfw: bool) -> Any:
    if not nsfw:
        return None
    from audit.dataset.nsfw import NudeNetChecker

    return NudeNetChecker()


def _caption_scorer(caption_model: str | None) -> Any:
    if not caption_model:
        return None
    from audit.dataset.captions import CaptionScorer

    return CaptionScorer(caption_model)  # the model loads on the first caption: none, none loaded


def analyze_item(item: Item, analyzer: Any = None, nsfw: Any = None, captioner: Any = None) -> dict[str, Any]:
    """The record of one image: status, size, sha256, its faces (boxes, scores, perceived age/gender),
    its caption and, with a caption scorer, the caption's CLIP-score (``caption_score``, docs/captions.md)
    and, when an NSFW checker is given, its NudeNet labels."""
    from audit.dataset.captions import MAX_CAPTION_CHARS
    from audit.io.images import BACKEND_ERROR, TOO_LARGE

    analyzer = analyzer or _ANALYZER
    nsfw = nsfw or _NSFW
    captioner = captioner or _CAPTIONER
    record: dict[str, Any] = {"index": item.index, "image": item.relpath, "class": item.label}
    if item.caption is not None:
        record["caption"] = item.caption[:MAX_CAPTION_CHARS]
    if item.refusal:
        return {**record, "status": item.refusal, "message": item.refusal_message, "faces": []}
    from audit.dataset.datasheet import dhash

    meta: dict[str, Any] = {}
    if item.path is not None:
        result = item.load()
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
    if captioner is not None and item.caption:  # outside the try: caption weights that cannot load stop
        record["caption_score"] = captioner.score(image, record["caption"])  # the run with one line
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
    shard: Shard | None = None,
    columns: Any = None,
    caption_model: str | None = "embedded",
) -> Path:
    """Analyse every image of ``spec`` into ``out/records_name`` (see the module docstring).

    With ``shard`` (K of N), analyse only that shard's images into its own part file under
    ``out/shards/`` and mark it done; without, first take in every record the shards wrote, then analyse
    what is still missing: the records equal a one-process run's (:mod:`audit.scale.shards`)."""
    from audit.dataset.record_store import record_store

    output_folder(out)
    path = out / records_name
    other = [out / name for name in RECORDS_FORMATS.values() if name != records_name and (out / name).exists()]
    if other and records_name in RECORDS_FORMATS.values():
        raise InputError(f"{out} holds an audit with {other[0].name}: resume it in that format, or use another --out")
    job = Path(records_name).stem
    identity_file = out / f"{job}.run.json"
    identity = records_identity(spec, backend, nsfw, columns, caption_model)
    items = dataset_items(spec, columns)  # a bad source is refused before the folder records a run
    if shard is not None:
        return record_shard(spec, out, shard, identity, backend=backend, workers=workers, chunk=chunk,
                            job=job, nsfw=nsfw, progress=progress, columns=columns,
                            caption_model=caption_model)  # fmt: skip
    store = record_store(path)
    parts = shard_parts(out, job)
    start_or_resume(identity_file, identity, resume=resume or bool(parts), started=store.exists() or bool(parts),
                    what="an audit")  # fmt: skip
    done = RecordedNames(store.iter)
    merged = _merge_parts(parts, done, store)
    if merged:
        log.info("took in %d record(s) written by %d shard(s)", merged, len(parts))
    todo = _not_yet_recorded(items, done)
    try:
        analyse(todo, store.append, backend=backend, nsfw=nsfw, workers=workers, chunk=chunk,
                progress=progress, initial=len(done), caption_model=caption_model)  # fmt: skip
    finally:
        store.close()
    return path


def record_shard(
    spec: str,
    out: Path,
    shard: Shard,
    identity: dict[str, Any],
    *,
    backend: str,
    job: str = "records",
    workers: int | None = None,
    chunk: int = 8,
    nsfw: bool = False,
    progress: bool = True,
    columns: Any = None,
    analyzer: Any = None,
    checker: Any = None,
    caption_model: str | None = "embedded",
) -> Path:
    """Shard ``shard``'s records into ``out/shards/<job>/<K>-of-<N>.jsonl``, then its marker. A finished
    shard is left as it is; a torn one continues from its complete lines. Returns the part file."""
    from audit.dataset.record_store import JsonlRecords
    from audit.scale.shards import ShardMarker, shard_folder

    adopt_identity(out / f"{job}.run.json", identity, what="an audit")
    marker = ShardMarker(out, job, shard)
    part = JsonlRecords(shard_folder(out, job) / f"{shard.name}.jsonl")
    if marker.done():
        log.info("shard %s is already done (%s): nothing to do", shard, marker.path)
        return part.path
    part.path.parent.mkdir(parents=True, exist_ok=True)
    indices = shard.range(count_items(spec, columns))
    done = RecordedNames(part.iter)
    todo = _not_yet_recorded(dataset_items(spec, columns, start=indices.start), done, stop=indices.stop)
    try:
        analyse(todo, part.append, backend=backend, nsfw=nsfw, workers=workers, chunk=chunk, progress=progress,
                initial=len(done), total=len(indices), what=f"audit shard {shard}", analyzer=analyzer,
                checker=checker, caption_model=caption_model)  # fmt: skip
    finally:
        part.close()
    written = len(RecordedNames(part.iter))
    if written != len(indices):  # the source shrank under us, or a record was lost: never mark it done
        raise InputError(f"shard {shard}: {written} of {len(indices)} records written; run the shard again")
    marker.write(range=[indices.start, indices.stop], records=written)
    return part.path


def shard_parts(out: Path, job: str) -> list[Path]:
    """The part files shards wrote for ``job`` (finished or not), in shard order."""
    from audit.scale.shards import shard_folder

    folder = shard_folder(out, job)
    return sorted(folder.glob("*-of-*.jsonl")) if folder.is_dir() else []


def _merge_parts(parts: list[Path], done: RecordedNames, store: Any) -> int:
    """Append to ``store`` every complete shard record it does not hold yet, part by part (a record at a
    time: nothing is held but ``done``); a part record that names another file than the store's record
    at the same index means two datasets."""
    from audit.dataset.record_store import JsonlRecords

    merged = 0
    for part in parts:
        for record in JsonlRecords(part).iter():
            index = record["index"]
            if index not in done:
                store.append(record)
                done.add(index, record["image"])
                merged += 1
            elif not done.names(index, record["image"]):
                raise InputError(
                    f"{part} records item {index} as {record['image']!r}, but this audit has "
                    f"{done.name(index)!r} there: the shards ran on another dataset; use a new --out"
                )
    return merged


class RecordedNames:
    """Which source positions hold a record, and a 64-bit hash of the name recorded at each: 9 bytes a
    position, so an audit of millions resumes without holding its records. ``records`` (a callable giving
    the records again) finds a name itself, for an error message."""

    def __init__(self, records: Any) -> None:
        import numpy as np

        self._records = records
        self._hashes = np.zeros(1024, dtype=np.uint64)
        self._present = np.zeros(1024, dtype=bool)
        self._count = 0
        for record in records():
            if record["index"] not in self:
                self.add(record["index"], record["image"])

    def add(self, index: int, name: str) -> None:
        import numpy as np

        if index >= len(self._present):
            size = max(index + 1, 2 * len(self._present))
            self._hashes = np.concatenate([self._hashes, np.zeros(size - len(self._hashes), dtype=np.uint64)])
            self._present = np.concatenate([self._present, np.zeros(size - len(self._present), dtype=bool)])
        self._count += not self._present[index]
        self._hashes[index], self._present[index] = _name_hash(name), True

    def __contains__(self, index: int) -> bool:
        return 0 <= index < len(self._present) and bool(self._present[index])

    def __len__(self) -> int:
        return self._count

    def names(self, index: int, name: str) -> bool:
        """Whether the record at ``index`` names ``name`` (False where there is none)."""
        return index in self and int(self._hashes[index]) == _name_hash(name)

    def name(self, index: int) -> str | None:
        """The name recorded at ``index``, read back from the records (for messages only)."""
        return next((r["image"] for r in self._records() if r["index"] == index), None)


def _name_hash(name: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def adopt_identity(path: Path, identity: dict[str, Any], *, what: str) -> None:
    """A shard's check: join the run ``path`` names (same identity) or start it; never a "pass --resume"
    error, since shards of one run start in any order and at once (they write the same bytes)."""
    from audit.atomic import create_json_atomic
    from audit.run_identity import check_identity

    if not create_json_atomic(path, identity):  # started by another shard (or earlier): the same run, or refused
        check_identity(path, identity, what=what)


def count_items(spec: str, columns: Any = None) -> int:
    """How many items ``spec`` holds, as cheaply as the source allows (Parquet: its footers; a tar: its
    headers; a folder: its listing)."""
    from audit.io import archives

    if not spec.startswith("builtin:") and archives.is_parquet(spec):
        return archives.parquet_rows(spec, columns)
    if spec == "builtin:faces-demo":
        from audit.dataset.builtin import faces_demo

        return sum(1 for _ in faces_demo())
    return sum(1 for _ in dataset_items(spec, columns))


def analyse(
    todo: Iterator[Item],
    write: Any,
    *,
    backend: str,
    nsfw: bool,
    workers: int | None,
    chunk: int = 8,
    progress: bool = True,
    initial: int = 0,
    total: int | None = None,
    what: str | None = None,
    analyzer: Any = None,
    checker: Any = None,
    caption_model: str | None = None,
) -> None:
    """Analyse ``todo`` in order, calling ``write(record)`` for each, in ``workers`` processes (one: in this
    process, with ``analyzer`` and ``checker`` when given, already built)."""
    from tqdm.auto import tqdm

    first = next(todo, None)
    if first is None:  # nothing left (a merge after shards): no model is loaded, no worker started
        return
    todo = itertools.chain([first], todo)
    workers = workers or min(2, os.cpu_count() or 1)
    bar = tqdm(desc=what or f"audit ({backend})", unit="img", initial=initial, total=total, disable=not progress)
    try:
        if workers <= 1:
            from audit.dataset.backends import get_analyzer

            analyzer = analyzer or get_analyzer(backend)
            checker = checker if checker is not None else _nsfw_checker(nsfw)
            captioner = _caption_scorer(caption_model)
            for item in todo:
                write(analyze_item(item, analyzer, checker, captioner))
                bar.update(1)
            return
        import multiprocessing

        pending: deque[Future[list[dict[str, Any]]]] = deque()
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(backend, nsfw, caption_model)
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
                    bar.update(1)
    finally:
        bar.close()


def records_identity(
    spec: str, backend: str, nsfw: bool, columns: Any = None, caption_model: str | None = "embedded"
) -> dict[str, Any]:
    """Everything that changes a record (see :mod:`audit.run_identity`)."""
    from audit.dataset.backends import check_spec
    from audit.io.images import default_max_pixels
    from audit.provenance import package_versions
    from audit.run_identity import RECORD_PACKAGES, dataset_identity

    return {
        "job": "audit records",
        "records_schema": RECORDS_SCHEMA,
        "dataset": dataset_identity(spec),
        "columns": None if columns is None else vars(columns),
        "backend": check_spec(backend),
        "nsfw": nsfw,
        "caption_model": caption_model,
        "max_pixels": default_max_pixels(),
        "versions": package_versions(RECORD_PACKAGES),
    }


def _not_yet_recorded(items: Iterator[Item], done: RecordedNames, stop: int | None = None) -> Iterator[Item]:
    """The items (before index ``stop``) whose index has no record; each recorded index must still name the
    same file."""
    for item in items:
        if stop is not None and item.index >= stop:
            return
        if item.index not in done:
            yield item
        elif not done.names(item.index, item.relpath):
            raise InputError(
                f"the dataset changed since this audit started: item {item.index} was {done.name(item.index)!r} "
                f"and is now {item.relpath!r}; audit it again with a new --out"
            )
