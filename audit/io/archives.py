"""Datasets read where they lie, never extracted: webdataset tar shards and Parquet tables of image bytes.

**webdataset** (``data/shard-{0000..0099}.tar``, a path or a brace pattern; see docs/scale-out.md): a
sample is the run of consecutive members that share a key (the member name up to the first dot of its
base name). Its image member (``jpg``, ``png``, ``webp``, ...) is the image; ``cls`` is the label (text
or an integer), ``txt`` the caption, ``json`` metadata kept with the record. An uncompressed tar is read
by offsets: the walk reads headers only and each image is decoded from its byte span by the worker that
analyses it (:func:`audit.io.images.load_image` with ``span``), through the same checks as any file. A
compressed tar (``.tar.gz``) is streamed and the bytes travel with the record.

Hostile members get a reason, never a write or an escape: a member with an absolute name or a ``..``
part is ``outside_root``; a link, device or FIFO member is ``not_a_file``; a sample with no image is
``not_an_image``; a tar that ends mid-member is one ``truncated`` record and the walk goes on with the
next shard.

**Parquet** (a ``.parquet`` file or a folder of them, e.g. img2dataset's output or a HuggingFace dataset
export): the image column holds bytes, either as a binary column or as HuggingFace's ``{bytes, path}``
struct. A column of URLs is refused with one line: genaudit never fetches images. A file that cannot be
opened is one refused record and a damaged row group one per row (see :func:`parquet_source`). Jobs that
come back to an image later (the deepfake check decodes a chunk at a time, and a shard only its range)
list rows without reading their bytes (:func:`parquet_listing`: each record's ``span`` is a
:class:`TableRow`) and read them back by row with :func:`load_at`, one row group held at a time.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import InputError
from audit.io.images import (
    DEFAULT_MAX_BYTES,
    EMPTY,
    NOT_A_FILE,
    NOT_AN_IMAGE,
    OUTSIDE_ROOT,
    TOO_LARGE,
    TRUNCATED,
    UNREADABLE,
    LoadResult,
    decode_image,
    file_problem,
    load_image,
    refuse,
)
from audit.io.names import clean_text, escape_name
from audit.io.sources import IMAGE_SUFFIXES, ImageRecord, resolves_inside

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
WEBDATASET_IMAGE_EXTS = frozenset(s.lstrip(".") for s in IMAGE_SUFFIXES)
MAX_TEXT_BYTES = 1 << 20  # a cls, txt or json member larger than this is not read
PARQUET_BATCH = 64  # rows turned into records at once from a Parquet file
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


@dataclass(frozen=True)
class Columns:
    """Which Parquet columns hold the image, the label and the caption (None: the default when present)."""

    image: str = "image"
    label: str | None = None
    caption: str | None = None


MAX_SHARD_NAMES = 10_000_000  # names one brace pattern may give: counted before any is made


def expand_braces(pattern: str) -> list[str]:
    """Bash-style brace expansion, as webdataset shard lists are written: ``a-{0000..0002}.tar`` gives
    three names (zero padding kept), ``{train,val}`` two; several groups multiply, left to right. Checked
    before any name is made: nested groups (``{a,{b,c}}``) are refused, since one level is what shard
    lists use and bash's nesting rules are not reproduced here; so is a pattern naming more than
    :data:`MAX_SHARD_NAMES` (groups multiply: two ranges of 100,000 would be 10 billion names)."""
    count = brace_count(pattern)
    if count > MAX_SHARD_NAMES:
        raise InputError(f"{pattern!r} names {count:,} files, more than {MAX_SHARD_NAMES:,}: split the run")
    return _expand(pattern)


def brace_count(pattern: str) -> int:
    """How many names ``pattern`` expands to, without making them: the product of its groups' sizes (one
    level of groups: an option has no brace, so no substitution can open a new group)."""
    count = 1
    for match in _BRACE.finditer(pattern):
        count *= len(_options(match.group(1))[0])
    rest = _BRACE.sub("", pattern)
    opening = rest.find("{")
    if opening >= 0 and "}" in rest[opening:]:
        raise InputError(f"{pattern!r}: nested or unbalanced braces; give one level of {{a,b}} or {{0..9}} groups")
    return count


def _options(body: str) -> tuple[list[str] | range, int]:
    """A group's options and the width its numbers are zero-padded to (0: none): a range stays a
    ``range`` (never a list of millions), a comma list is its items."""
    rng = _RANGE.match(body)
    if rng is None:
        return body.split(","), 0
    a, b = int(rng.group(1)), int(rng.group(2))
    width = len(rng.group(1)) if rng.group(1).lstrip("-").startswith("0") else 0  # padding kept, as bash does
    return (range(a, b + 1) if b >= a else range(a, b - 1, -1)), width


def _expand(pattern: str) -> list[str]:
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    options, width = _options(match.group(1))
    texts = [f"{v:0{width}d}" for v in options] if isinstance(options, range) else options
    return [name for text in texts for name in _expand(head + text + tail)]


def is_webdataset(spec: str) -> bool:
    """A tar shard or a brace pattern of them."""
    return any(spec.lower().endswith(s) for s in TAR_SUFFIXES) or (
        _BRACE.search(spec) is not None and any(s in spec.lower() for s in TAR_SUFFIXES)
    )


def is_parquet(spec: str) -> bool:
    """A ``.parquet`` file, or a folder with ``.parquet`` files and no images at its top level."""
    path = Path(spec)
    if path.is_file():
        return path.suffix.lower() == ".parquet"
    if not path.is_dir():
        return False
    try:
        names = os.listdir(path)
    except OSError:
        return False
    if any(Path(n).suffix.lower() in IMAGE_SUFFIXES for n in names):
        return False
    return any(True for _ in itertools.islice(_parquet_files(path), 1))


def shard_files(spec: str) -> list[Path]:
    """The tar files a webdataset spec names, every one checked to be a regular file now (before any work)."""
    from audit.io.images import require_file

    files = [Path(p) for p in expand_braces(spec)]
    for f in files:
        require_file(f, "webdataset shard")
    return files


def webdataset_source(spec: str) -> Iterator[ImageRecord]:
    """One record per sample of every shard, in shard order then member order."""
    files = shard_files(spec)
    return itertools.chain.from_iterable(_tar_records(f) for f in files)


def _sample_key(name: str) -> tuple[str, str]:
    """(key, extension) as webdataset splits a member name: at the first dot of the base name."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), (ext.lower() if dot else "")


def _unsafe(name: str) -> bool:
    return name.startswith("/") or ".." in name.split("/")


_TAR_ERRORS = (tarfile.TarError, OSError, EOFError)  # what a damaged or cut archive raises while read


def _tar_records(path: Path) -> Iterator[ImageRecord]:
    streamed = not path.name.lower().endswith(".tar")
    try:
        tar = tarfile.open(path, "r|*" if streamed else "r:")  # noqa: SIM115 (closed by the with below)
    except _TAR_ERRORS as exc:
        yield _refused(path, escape_name(path.name), TRUNCATED if isinstance(exc, EOFError) else NOT_AN_IMAGE,
                       f"not a readable tar archive: {exc}")  # fmt: skip
        return
    with tar:
        group: list[tuple[tarfile.TarInfo, bytes | None]] = []
        members = iter(tar)
        cut: str | None = None  # why the archive ended early, if it did
        while True:
            try:
                member = next(members)
            except StopIteration:
                if not streamed and not _ends_cleanly(path, tar.offset):
                    cut = "the archive is cut short: it ends without its end-of-archive blocks, so members after this "
                    cut += "point are lost"
                break
            except _TAR_ERRORS as exc:
                cut = f"the archive is cut short or damaged: {exc}"
                break
            if member.isdir():
                continue
            if group and _sample_key(group[0][0].name)[0] != _sample_key(member.name)[0]:
                yield from _sample(path, group, streamed, tar)
                group = []
            # a streamed archive cannot be read back later: keep the bytes of its members as they pass
            try:
                data = _read_member(tar, member, DEFAULT_MAX_BYTES) if streamed and member.isfile() else None
            except _TAR_ERRORS as exc:
                cut = f"the archive is cut short or damaged: {exc}"
                break
            group.append((member, data))
            if not streamed:
                tar.members = []  # headers are not kept: memory stays flat over a shard of any length
        yield from _sample(path, group, streamed, tar)
        if cut is not None:
            yield _refused(path, f"{escape_name(path.name)}/(end)", TRUNCATED, cut)


def _ends_cleanly(path: Path, offset: int) -> bool:
    """Whether the archive has a zero block where its next header would be (``offset``, after the last
    member's data). tarfile reads an archive cut at a member boundary, or inside its last member's data,
    as a complete one: only the missing end-of-archive blocks tell."""
    with path.open("rb") as fh:
        fh.seek(offset)
        block = fh.read(tarfile.BLOCKSIZE)
    return len(block) == tarfile.BLOCKSIZE and not block.strip(b"\0")


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes | None:
    if member.size > limit:
        return None
    fh = tar.extractfile(member)
    return None if fh is None else fh.read(limit + 1)


def _sample(
    path: Path, group: list[tuple[tarfile.TarInfo, bytes | None]], streamed: bool, tar: tarfile.TarFile
) -> Iterator[ImageRecord]:
    if not group:
        return
    key, _ = _sample_key(group[0][0].name)
    name = f"{escape_name(path.name)}/{escape_name(key)}"
    by_ext = {}
    for member, data in group:
        if _unsafe(member.name):
            message = f"member {escape_name(member.name)!r} has an absolute or '..' name"
            yield _refused(path, name, OUTSIDE_ROOT, message)
            return
        if not member.isfile():
            message = f"member {escape_name(member.name)!r} is a link or device, not a file"
            yield _refused(path, name, NOT_A_FILE, message)
            return
        by_ext.setdefault(_sample_key(member.name)[1], (member, data))
    image_ext = next((e for e in by_ext if e.rpartition(".")[2] in WEBDATASET_IMAGE_EXTS), None)
    if image_ext is None:
        yield _refused(path, name, NOT_AN_IMAGE, f"sample has no image member (members: {sorted(by_ext)[:8]})")
        return
    member, data = by_ext[image_ext]

    def text(ext: str) -> str | None:
        if ext not in by_ext:
            return None
        m, raw = by_ext[ext]
        if raw is None and not streamed:
            try:
                raw = _read_member(tar, m, MAX_TEXT_BYTES) if m.size <= MAX_TEXT_BYTES else None
            except _TAR_ERRORS:  # cut short: the archive's "(end)" record says so
                extra[f"{ext}_error"] = f"the sample's {ext} member is cut short or damaged"
                return None
        if raw is None or len(raw) > MAX_TEXT_BYTES:
            return None
        return raw.decode("utf-8", errors="surrogateescape").strip()

    extra: dict[str, Any] = {"member": escape_name(member.name)}
    label, caption, meta = text("cls"), text("txt"), text("json")
    if meta is not None:
        try:
            parsed = json.loads(meta)
            extra["json"] = parsed if isinstance(parsed, dict) else {"value": parsed}
        except (json.JSONDecodeError, RecursionError):
            extra["json_error"] = "the sample's json member is not valid JSON"
    record = ImageRecord(
        path=path,
        relpath=f"{name}.{escape_name(image_ext)}",
        label=clean_text(label) if label else None,
        caption=clean_text(caption) if caption else None,
        extra=extra,
    )
    if member.size > DEFAULT_MAX_BYTES:
        record.refusal, record.refusal_message = TOO_LARGE, f"member is {member.size} bytes, over the limit"
    elif streamed:
        record.data = data
    else:
        record.span = (member.offset_data, member.size)
    yield record


def _refused(path: Path, name: str, reason: str, message: str) -> ImageRecord:
    return ImageRecord(path=path, relpath=name, refusal=reason, refusal_message=message)


# ---------------------------------------------------------------------------------------------------- Parquet


def _parquet_files(path: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        for f in sorted(files):
            if f.lower().endswith(".parquet") and not f.startswith((".", "_")):
                yield Path(root) / f


def parquet_files(spec: str) -> list[Path]:
    path = Path(spec)
    files = [path] if path.is_file() else list(_parquet_files(path))
    if not files:
        raise InputError(f"no .parquet files in {spec}")
    return files


def _pyarrow() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise InputError('reading Parquet needs pyarrow: pip install "genaudit[parquet]"') from exc
    return pq


@dataclass(frozen=True)
class ParquetPlan:
    """How one Parquet file of a source is read: its image, label, caption and key columns, checked against
    its schema, and its row count from the footer; or, for a file that cannot be read at all, the reason
    (``problem``) that its one record carries instead of rows."""

    file: Path
    image: str = "image"
    label: str | None = None
    caption: str | None = None
    key: str | None = None
    rows: int = 0
    problem: tuple[str, str] | None = None  # (reason, message): the file is one refused record

    @property
    def records(self) -> int:
        """Records the file gives: one per row, or one for the whole file when it cannot be read."""
        return 1 if self.problem else self.rows

    def refused(self) -> ImageRecord:
        """The one record of a file that cannot be read, named ``FILE/(file)``."""
        assert self.problem is not None
        return _refused(self.file, f"{escape_name(self.file.name)}/(file)", *self.problem)

    def row_name(self, row: int, key: Any = None, inner_path: Any = None) -> str:
        name = key if key not in (None, "") else inner_path if inner_path else f"{row:06d}"
        return f"{escape_name(self.file.name)}/{escape_name(str(name))}"


def _parquet_plans(spec: str, columns: Columns) -> list[ParquetPlan]:
    """Every file's plan, in order. A file that cannot be opened (cut short, not Parquet, empty, no read
    permission, not a regular file) or, in a folder, a link that leaves the folder, is planned as one
    refused record and the others are read (a folder of a thousand shards is not lost to one torn file);
    a schema that does not fit ``columns`` (no image column, URLs instead of bytes) is a usage error,
    raised now."""
    root = Path(os.path.realpath(spec)) if Path(spec).is_dir() else None
    plans = []
    for file in parquet_files(spec):
        if root is not None and not resolves_inside(file, root):  # a link loop stays inside: refused below
            plans.append(ParquetPlan(file, problem=(OUTSIDE_ROOT, "symlink resolves outside the dataset folder")))
        elif (problem := file_problem(file)) is not None:  # a FIFO, device or loop: never opened, never a hang
            plans.append(ParquetPlan(file, problem=(problem.reason or UNREADABLE, problem.message or "")))
        else:
            plans.append(_parquet_plan(file, columns))
    return plans


def _parquet_plan(file: Path, columns: Columns) -> ParquetPlan:
    """``file``'s plan: its columns checked against its schema (see :func:`_parquet_plans`)."""
    import pyarrow as pa

    pq = _pyarrow()
    try:
        metadata = pq.ParquetFile(file, pre_buffer=False).metadata
        schema = metadata.schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as exc:
        reason = EMPTY if _is_empty(file) else UNREADABLE
        message = f"not a readable Parquet file ({_one_line(exc)}); its rows are not read"
        return ParquetPlan(file, problem=(reason, message))
    names = schema.names
    if columns.image not in names:
        raise InputError(f"{file}: no image column {columns.image!r} (columns: {names[:12]}); set --image-column")
    kind = schema.field(columns.image).type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        sample = pq.read_table(file, columns=[columns.image]).column(0).drop_null()
        first = str(sample[0]) if len(sample) else ""
        if re.match(r"^[a-z][a-z0-9+.-]*://", first, re.IGNORECASE):
            raise InputError(
                f"{file}: column {columns.image!r} holds URLs, not image bytes; genaudit never fetches images: "
                "download them first (e.g. img2dataset --output_format parquet), then audit that output"
            )
        raise InputError(
            f"{file}: column {columns.image!r} holds text, not image bytes; list local files in a manifest instead"
        )
    if not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or _is_image_struct(kind)):
        raise InputError(f"{file}: column {columns.image!r} is {kind}, not image bytes or a {{bytes, path}} struct")

    def optional(asked: str | None, default: str) -> str | None:
        if asked is not None and asked not in names:
            raise InputError(f"{file}: no column {asked!r} (columns: {names[:12]})")
        return asked or (default if default in names else None)

    key = "key" if "key" in names else None
    label, caption = optional(columns.label, "label"), optional(columns.caption, "caption")
    return ParquetPlan(file, columns.image, label, caption, key, rows=metadata.num_rows)


def _is_empty(file: Path) -> bool:
    try:
        return file.stat().st_size == 0
    except OSError:
        return False


def _is_image_struct(kind: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0


def parquet_rows(spec: str, columns: Columns | None = None) -> int:
    """How many records the Parquet spec gives (one per row, one per unreadable file), from the files'
    footers (no data read)."""
    return sum(plan.records for plan in _parquet_plans(spec, columns or Columns()))


def parquet_source(spec: str, columns: Columns | None = None, *, start: int = 0) -> Iterator[ImageRecord]:
    """One record per row of every file (sorted), in row order, read a batch at a time. Every file's schema
    is checked now; ``start`` skips that many records, whole row groups without reading them. A file that
    cannot be opened is one refused record; a row group that cannot be read gives each of its rows a
    refused record, so record i is the same row whatever fails around it."""
    plans = _parquet_plans(spec, columns or Columns())
    return _parquet_records(plans, start)


def _parquet_records(plans: list[ParquetPlan], start: int) -> Iterator[ImageRecord]:
    import pyarrow as pa

    pq = _pyarrow()
    skip = start
    for plan in plans:
        if plan.problem:
            if skip:
                skip -= 1
            else:
                yield plan.refused()
            continue
        # one row group at a time, not pre-buffered: pyarrow reads a binary column chunk whole, so memory holds
        # about one row group (measured in docs/scale-out.md), whatever the number of files or rows
        reader = pq.ParquetFile(plan.file, pre_buffer=False)
        wanted = [c for c in (plan.image, plan.label, plan.caption, plan.key) if c]
        row = 0
        for group in range(reader.metadata.num_row_groups):
            rows = reader.metadata.row_group(group).num_rows
            first, end = row, row + rows
            if skip >= rows:  # a whole row group before the start: skipped unread
                skip -= rows
                row = end
                continue
            try:
                for batch in reader.iter_batches(batch_size=PARQUET_BATCH, row_groups=[group], columns=wanted):
                    for values in batch.to_pylist():
                        if skip:
                            skip -= 1
                        else:
                            yield _parquet_record(plan, row, values)
                        row += 1
            except (OSError, pa.ArrowException) as exc:  # a damaged row group: its unread rows get a reason
                keys = _group_column(reader, group, plan.key, rows)
                inner = _group_inner_paths(reader, group, plan.image, rows)
                labels = _group_column(reader, group, plan.label, rows)
                for r in range(row, end):
                    if skip:
                        skip -= 1
                        continue
                    record = _refused(
                        plan.file,
                        plan.row_name(r, keys[r - first], inner[r - first]),
                        UNREADABLE,
                        f"row {r}: its row group ({group}) could not be read ({_one_line(exc)})",
                    )
                    record.label = _text(labels[r - first])
                    yield record
                row = end


def _group_column(reader: Any, group: int, column: str | None, rows: int) -> list[Any]:
    """One column of one row group when it can be read (a damaged image column can leave the key and label
    columns intact), else None for every row (rows are then named by number and unlabelled)."""
    import pyarrow as pa

    if column:
        try:
            values = reader.read_row_group(group, columns=[column]).column(0).to_pylist()
            if len(values) == rows:
                return values
        except (OSError, pa.ArrowException):
            pass
    return [None] * rows


def _group_inner_paths(reader: Any, group: int, image: str, rows: int) -> list[Any]:
    """The ``path`` of each row's image struct (HuggingFace datasets' ``{bytes, path}``) in one row group,
    read without the bytes (only that child column), else None for every row: rows are named by it where
    there is no key, in a listing as when the rows are read (:meth:`ParquetPlan.row_name`)."""
    import pyarrow as pa

    field = reader.schema_arrow.field(image) if image in reader.schema_arrow.names else None
    if field is None or not pa.types.is_struct(field.type) or field.type.get_field_index("path") < 0:
        return [None] * rows
    values = _group_column(reader, group, f"{image}.path", rows)
    return [v.get("path") if isinstance(v, dict) else None for v in values]


def _one_line(exc: BaseException) -> str:
    """An exception's text on one line, without control characters (pyarrow's messages can hold raw bytes)."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", str(exc)).strip()


def _text(value: Any) -> str | None:
    """A label or caption cell as text (None when missing or empty)."""
    return None if value in (None, "") else clean_text(str(value))


def _parquet_record(plan: ParquetPlan, row: int, values: dict[str, Any]) -> ImageRecord:
    cell = values.get(plan.image)
    inner_path = None
    if isinstance(cell, dict):
        inner_path = cell.get("path")
        cell = cell.get("bytes")
    key = values.get(plan.key) if plan.key else None
    record = ImageRecord(
        path=plan.file,
        relpath=plan.row_name(row, key, inner_path),
        label=_text(values.get(plan.label) if plan.label else None),
        caption=_text(values.get(plan.caption) if plan.caption else None),
        extra={"row": row},
    )
    refusal = _cell_refusal(cell, row)
    if refusal:
        record.refusal, record.refusal_message = refusal
    else:
        record.data = bytes(cell)
    return record


@dataclass(frozen=True)
class TableRow:
    """Where one image's bytes lie in a Parquet file: its row (0-based, within the file) and column."""

    row: int
    column: str


def parquet_listing(spec: str, columns: Columns | None = None) -> Iterator[ImageRecord]:
    """One record per row of every file (sorted), in row order, WITHOUT its image bytes: the record's
    ``span`` is a :class:`TableRow` for :func:`load_at`. Only the ``key`` column (when present) and an image
    struct's ``path`` are read; rows are named as :func:`parquet_source` names them (``file/key``, else
    ``file/path`` for a struct's path, else ``file/row``). Every file's schema is checked now, as for
    reading; a file that cannot be opened is one refused record, and a damaged row group is found when its
    rows are read."""
    pq = _pyarrow()
    for plan in _parquet_plans(spec, columns or Columns()):
        if plan.problem:
            yield plan.refused()
            continue
        reader = pq.ParquetFile(plan.file, pre_buffer=False)
        row = 0
        for group in range(reader.metadata.num_row_groups):
            rows = reader.metadata.row_group(group).num_rows
            keys = _group_column(reader, group, plan.key, rows)
            for key, inner in zip(keys, _group_inner_paths(reader, group, plan.image, rows), strict=True):
                yield ImageRecord(
                    path=plan.file, relpath=plan.row_name(row, key, inner),
                    span=TableRow(row, plan.image), extra={"row": row},
                )  # fmt: skip
                row += 1


_last_row_group: list[Any] = [None]  # (path, stamp, column, first row, end row, values): replaced whole, never edited


def _table_cell(path: Path, where: TableRow) -> Any:
    """The image cell of one row, reading (and keeping) only the row group that holds it: a run of rows
    read in order reads each row group once, and memory holds one row group (see docs/scale-out.md)."""
    pq = _pyarrow()
    st = os.stat(path)
    stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)  # a file rewritten since is read again (listing_digest)
    last = _last_row_group[0]
    if last is not None and last[:3] == (str(path), stamp, where.column) and last[3] <= where.row < last[4]:
        return last[5][where.row - last[3]].as_py()
    reader = pq.ParquetFile(path, pre_buffer=False)
    start = 0
    for group in range(reader.metadata.num_row_groups):
        stop = start + reader.metadata.row_group(group).num_rows
        if where.row < stop:
            values = reader.read_row_group(group, columns=[where.column]).column(0)
            _last_row_group[0] = (str(path), stamp, where.column, start, stop, values)
            return values[where.row - start].as_py()
        start = stop
    raise IndexError(f"row {where.row} is past the end ({start} rows)")


def load_at(path: str | Path, where: Any, *, max_pixels: int | None = None) -> LoadResult:
    """One image by where it lies: a whole file (``where`` None), a tar member's byte span ``(offset,
    size)``, or a Parquet row (:class:`TableRow`); decoded through the same loader checks in every case."""
    if not isinstance(where, TableRow):
        return load_image(path, max_pixels=max_pixels, span=where)
    import pyarrow as pa

    try:
        cell = _table_cell(Path(path), where)
    except (OSError, IndexError, KeyError, pa.ArrowException) as exc:
        return refuse(UNREADABLE, f"{path}: row {where.row} could not be read again ({exc})")
    if isinstance(cell, dict):
        cell = cell.get("bytes")
    refusal = _cell_refusal(cell, where.row)
    return refuse(*refusal) if refusal else decode_image(bytes(cell), max_pixels=max_pixels)


def _cell_refusal(cell: Any, row: int) -> tuple[str, str] | None:
    """(reason, message) for a Parquet image cell that cannot be decoded as it is (empty, over the byte
    limit), else None: one rule for rows read in a stream and rows read back by :func:`load_at`."""
    if not cell:
        return EMPTY, f"row {row} has no image bytes"
    if len(cell) > DEFAULT_MAX_BYTES:
        return TOO_LARGE, f"row {row}: {len(cell)} bytes, over the limit"
    return None
