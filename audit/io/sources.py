"""Dataset sources: a folder (class subfolders or flat) or a manifest (CSV / JSONL).

A source is an iterator of :class:`ImageRecord` in a deterministic order (sorted relative paths for
folders, file order for manifests); nothing is decoded here. Records that cannot be used (a manifest
line without a path, a path escaping the root, a missing file) are still yielded, with ``refusal``
set, so every job can count them with their reasons instead of dropping them silently.

Paths must stay inside the source's root (the folder, or the manifest's folder) after resolving
symlinks and ``..``; pass ``allow_outside_root=True`` to accept others.

Hostile input: every entry with an image suffix that is not a folder (a FIFO, socket, device, dangling
or looping link) is yielded and refused by the loader with its reason, never skipped or opened; a folder
that cannot be listed is a refused record, not an aborted walk. Recorded names go through
:func:`audit.io.names.escape_name` (lossless and UTF-8-safe). A manifest is checked whole when it is
opened, before any image is decoded: a structural error (no ``path`` column, a field over the CSV
limit) is one :class:`InputError` naming the file and line; a bad row (invalid or too deeply nested
JSON, not an object) is a refused record with its line. Bytes that are not UTF-8 are kept as surrogate
escapes, so a manifest in another encoding still names the right files.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.errors import InputError
from audit.io.images import (
    MANIFEST_ERROR,
    MISSING,
    OUTSIDE_ROOT,
    UNREADABLE,
    LoadResult,
    decode_image,
    file_problem,
    refuse,
    require_file,
)
from audit.io.names import clean_text, escape_name

IMAGE_SUFFIXES = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".bmp",
        ".gif",
        ".tif",
        ".tiff",
        ".webp",
        ".avif",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".ico",
        ".tga",
    }
)
MANIFEST_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass
class ImageRecord:
    """One dataset item: where it is, what it is labelled, and why it was refused if it was."""

    path: Path
    relpath: str
    label: str | None = None
    caption: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    refusal: str | None = None
    refusal_message: str | None = None
    span: Any = None  # (offset, size) of the image's bytes in ``path`` (a tar member), or an archives.TableRow
    data: bytes | None = None  # the image's bytes, when they do not lie in a file of their own (Parquet)


def load_record(record: ImageRecord, *, max_pixels: int | None = None) -> LoadResult:
    """Decode one record's image through the one loader, or give back its refusal: a file, a byte span of an
    archive, or bytes read from a table are checked and decoded alike."""
    if record.refusal is not None:
        return refuse(record.refusal, record.refusal_message or record.refusal)
    if record.data is not None:
        return decode_image(record.data, max_pixels=max_pixels)
    from audit.io.archives import load_at

    return load_at(record.path, record.span, max_pixels=max_pixels)


def resolves_inside(path: str | Path, root: Path) -> bool:
    """Whether ``path``, links followed, lies under ``root`` (already a real path). Never raises: a link
    loop stays where it is and is refused later as unreadable."""
    try:
        Path(os.path.realpath(path)).relative_to(root)
    except ValueError:
        return False
    return True


def folder_source(root: str | Path, *, allow_outside_root: bool = False) -> Iterator[ImageRecord]:
    """Images under ``root`` in path order; the first-level subfolder is the class label.

    Files directly in ``root`` get no label (a flat folder). Hidden files and folders (name starting
    with '.') and files without an image suffix are skipped; symlinked folders are not entered, and a
    symlinked file that resolves outside the root is refused.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    real_root = Path(os.path.realpath(root))
    for path, error in _walk_sorted(root):
        rel = path.relative_to(root)
        label = escape_name(rel.parts[0]) if len(rel.parts) > 1 else None
        record = ImageRecord(path=path, relpath=escape_name(rel.as_posix()), label=label)
        if error is not None:
            record.refusal, record.refusal_message = UNREADABLE, error
        elif not allow_outside_root and not resolves_inside(path, real_root):
            record.refusal, record.refusal_message = OUTSIDE_ROOT, "symlink resolves outside the dataset folder"
        yield record


def _walk_sorted(folder: Path) -> Iterator[tuple[Path, str | None]]:
    """Entries with an image suffix under ``folder`` that are not folders, in path order (sorted by name at
    every level), lazily, each with None; a sub-folder that cannot be listed comes with its error instead.
    Symlinked folders are not entered; links, FIFOs and devices are yielded for the loader to refuse."""
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError as exc:
        yield folder, f"cannot list folder: {exc.strerror or exc}"
        return
    for e in entries:
        if e.name.startswith("."):
            continue
        try:
            is_dir = e.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk_sorted(Path(e.path))
        elif Path(e.name).suffix.lower() in IMAGE_SUFFIXES:
            yield Path(e.path), None


def manifest_source(manifest: str | Path, *, allow_outside_root: bool = False) -> Iterator[ImageRecord]:
    """Records from a CSV (header row) or JSONL manifest with a ``path`` and optional ``label``, ``caption``.

    Relative paths resolve against the manifest's folder, which is also the root they must stay in.
    Other columns are kept in ``extra``. A malformed line is yielded as a refused record. The whole file
    is checked here, before the first record is asked for (see the module docstring).
    """
    manifest = Path(manifest)
    kind = MANIFEST_SUFFIXES.get(manifest.suffix.lower())
    if kind is None:
        raise InputError(f"manifest must be .csv or .jsonl, got {manifest.name!r}")
    require_file(manifest, "manifest")
    rows = _csv_rows if kind == "csv" else _jsonl_rows
    for _ in rows(manifest):  # a structural error surfaces now, not after hours of work
        pass
    return _manifest_records(manifest, rows(manifest), allow_outside_root)


def _manifest_records(
    manifest: Path, rows: Iterator[tuple[int, dict[str, Any], str | None]], allow_outside_root: bool
) -> Iterator[ImageRecord]:
    root = manifest.parent
    real_root = Path(os.path.realpath(root))
    for line_no, row, error in rows:
        if error is None and not str(row.get("path") or "").strip():
            error = "no 'path' value"
        if error is not None:
            yield ImageRecord(
                path=manifest,
                relpath=f"{manifest.name}:{line_no}",
                refusal=MANIFEST_ERROR,
                refusal_message=f"line {line_no}: {error}",
            )
            continue
        raw = str(row.pop("path")).strip()
        label, caption = row.pop("label", None), row.pop("caption", None)
        path = Path(raw) if os.path.isabs(raw) else root / raw
        record = ImageRecord(
            path=path,
            relpath=escape_name(raw),
            label=None if label in (None, "") else clean_text(str(label)),
            caption=None if caption in (None, "") else clean_text(str(caption)),
            extra=row,
        )
        if not allow_outside_root and not resolves_inside(path, real_root):
            record.refusal, record.refusal_message = OUTSIDE_ROOT, "path resolves outside the manifest's folder"
        elif not os.path.lexists(path):
            record.refusal, record.refusal_message = MISSING, "file listed in the manifest does not exist"
        elif (problem := file_problem(path)) is not None:
            record.refusal, record.refusal_message = problem.reason, problem.message
        yield record


def _csv_rows(manifest: Path) -> Iterator[tuple[int, dict[str, Any], str | None]]:
    # surrogateescape: bytes that are not UTF-8 stay as they were (a Latin-1 manifest names Latin-1 files)
    with open(manifest, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        reader = csv.DictReader(fh)
        try:
            fields = reader.fieldnames
        except csv.Error as exc:
            raise InputError(f"{manifest}:1: not a readable CSV header ({exc}); fix the file") from None
        if fields is None or "path" not in fields:
            shown = [clean_text(f) for f in fields or []]
            raise InputError(f"manifest {manifest} has no 'path' column (columns: {shown}): add a header row")
        for line, row in checked_csv_rows(reader, manifest):
            extra_cells = row.pop(None, None)  # type: ignore[call-overload]
            yield line, row, "more cells than header columns" if extra_cells else None


def checked_csv_rows(reader: csv.DictReader, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs of a CSV reader; a row the csv module cannot read (e.g. a field over its
    size limit) is one :class:`InputError` naming ``path`` and the line."""
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            # the reader counts the lines it finished: the row it failed on starts on the next one
            raise InputError(f"{path}:{reader.line_num + 1}: not a readable CSV row ({exc}); fix the file") from None
        yield reader.line_num, row


def _jsonl_rows(manifest: Path) -> Iterator[tuple[int, dict[str, Any], str | None]]:
    with open(manifest, encoding="utf-8-sig", errors="surrogateescape") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_no, {}, f"invalid JSON ({exc.msg})"
                continue
            except RecursionError:
                yield line_no, {}, "JSON nested too deeply"
                continue
            if not isinstance(row, dict):
                yield line_no, {}, "a line must be a JSON object"
                continue
            yield line_no, row, None


def open_source(spec: str | Path, *, allow_outside_root: bool = False, columns: Any = None) -> Iterator[ImageRecord]:
    """A folder, a manifest, webdataset tar shards (a path or a brace pattern) or Parquet files -> the
    record iterator (``columns``: :class:`audit.io.archives.Columns` for Parquet)."""
    from audit.io import archives

    if archives.is_webdataset(str(spec)):
        return archives.webdataset_source(str(spec))
    if archives.is_parquet(str(spec)):
        return archives.parquet_source(str(spec), columns)
    path = Path(spec)
    if path.is_dir():
        return folder_source(path, allow_outside_root=allow_outside_root)
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        return manifest_source(path, allow_outside_root=allow_outside_root)
    raise InputError(f"not a dataset folder, a .csv/.jsonl manifest, webdataset .tar shards or Parquet: {spec}")


def listing_digest(spec: str | Path, **options: Any) -> tuple[str, int]:
    """sha256 over a source's listing (each item's name; for each file behind them, its size and its
    modification and change times) and how many items it lists, without decoding any image: a folder,
    manifest or archive whose files changed gets another digest. The change time (ctime) is what catches
    content rewritten with the same size and a restored modification time (``cp -p``, ``rsync -t``,
    ``tar x``, ``os.utime``): no user call can set it back, as git's index relies on (docs/large-samples.md).
    It keys what is kept across runs about a source (the bench's reference features, the near-copy search's
    results). ``options`` go to :func:`open_source`."""
    import hashlib

    from audit.io import archives

    digest = hashlib.sha256(str(spec).encode())
    seen_files: set[str] = set()
    count = 0
    if archives.is_parquet(str(spec)):  # its rows without their image bytes: key and struct path only
        records = archives.parquet_listing(str(spec), options.get("columns"))
    else:
        records = open_source(spec, **options)
    for record in records:
        count += 1
        digest.update(record.relpath.encode() + b"\0")
        path = str(record.path)
        if path not in seen_files:  # an archive's members share its file: stat it once
            seen_files.add(path)
            try:
                st = os.stat(path)
                digest.update(f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}".encode())
            except OSError:
                digest.update(b"missing")
    return digest.hexdigest(), count
