"""Per-image audit records on disk, written as they are produced and readable after a kill.

Two formats, chosen by the path's suffix:

- ``records.jsonl``: one JSON line per image, flushed line by line. After a kill, a torn last line is
  cut off and every complete line is kept.
- ``records.parquet``: a folder that any Parquet reader opens as one table (``pyarrow.dataset``,
  ``pandas.read_parquet``, DuckDB). Parquet files cannot be appended to, so rows go first to a
  write-ahead journal (``_journal.jsonl``, flushed line by line, ignored by Parquet readers because of
  its leading underscore) and every :data:`ROWS_PER_PART` rows into a new part file, written atomically,
  after which the journal is emptied. After a kill, the parts and the journal's complete lines together
  hold every record written: nothing is lost, and a record found in both is kept once.

A record's key is its position in the source (``index``), so a file listed twice in a manifest is two
records, never merged; records written before the key existed fall back to their ``image``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from audit.errors import InputError

ROWS_PER_PART = 256
JOURNAL = "_journal.jsonl"
TAIL_CHUNK = 1 << 16  # bytes read at a time from a JSONL file's end to find its last complete line


def record_key(record: dict[str, Any]) -> Any:
    """The key a record is kept once by: its source position (``index``), else its image name."""
    return record.get("index", record["image"])


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete lines of a JSONL file; a torn last line (killed mid-write) is cut off the file."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with path.open("r+b") as fh:
            fh.truncate(end)
    return [json.loads(line) for line in data[:end].decode("utf-8").splitlines() if line.strip()]


def _iter_jsonl(path: Path, repair: bool = True) -> Iterator[dict[str, Any]]:
    """:func:`_read_jsonl` a line at a time: the torn tail is found from the file's end and, with
    ``repair``, cut off first (the file is opened for writing only then, so a read-only store is read as
    it is). Without ``repair`` (a reader of a file another process may be appending to) the lines up to
    the last complete one are read and the file is left alone."""
    if not path.is_file():
        return
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            start = max(0, end - TAIL_CHUNK)
            fh.seek(start)
            newline = fh.read(end - start).rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
    if repair and end < size:
        with path.open("r+b") as fh:
            fh.truncate(end)
    with path.open("rb") as fh:
        consumed = 0
        for line in fh:
            consumed += len(line)
            if consumed > end:
                return
            if line.strip():
                yield json.loads(line)


class JsonlRecords:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> list[dict[str, Any]]:
        return _read_jsonl(self.path)

    def iter(self, repair: bool = True) -> Iterator[dict[str, Any]]:
        """Every complete record, in file order, one at a time (memory flat in the file's size); see
        :func:`_iter_jsonl` for ``repair``."""
        return _iter_jsonl(self.path, repair)

    def append(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _schema() -> Any:
    import pyarrow as pa

    face = pa.struct(
        [
            ("box", pa.list_(pa.int32())),
            ("det_score", pa.float64()),
            ("age", pa.float64()),
            ("p_male", pa.float64()),
            ("gender_confidence", pa.float64()),
            ("detect_scale", pa.float64()),
        ]
    )
    nsfw = pa.struct([("labels", pa.map_(pa.string(), pa.float64())), ("explicit", pa.list_(pa.string()))])
    return pa.schema(
        [
            ("index", pa.int64()),
            ("image", pa.string()),
            ("class", pa.string()),
            ("status", pa.string()),
            ("message", pa.string()),
            ("sha256", pa.string()),
            ("dhash", pa.string()),
            ("format", pa.string()),
            ("exif", pa.bool_()),
            ("gps", pa.bool_()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("faces", pa.list_(face)),
            ("nsfw", nsfw),
            ("caption", pa.string()),
            ("caption_score", pa.float64()),
        ]
    )


def _from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A Parquet row as the record it was written from (absent fields were written as nulls)."""
    record = {k: v for k, v in row.items() if v is not None}
    if "nsfw" in record:
        record["nsfw"] = {"labels": dict(record["nsfw"]["labels"] or []), "explicit": record["nsfw"]["explicit"] or []}
    return record


class ParquetRecords:
    def __init__(self, path: Path, rows_per_part: int = ROWS_PER_PART) -> None:
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise InputError('Parquet records need pyarrow: pip install "genaudit[parquet]"') from exc
        self.path = path
        self.rows_per_part = rows_per_part
        self._journal = JsonlRecords(path / JOURNAL)
        self._pending = 0
        self._in_parts: SeenKeys | None = None  # keys of the records already in part files

    def exists(self) -> bool:
        return self.path.exists()

    def _parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet"))

    def read(self) -> list[dict[str, Any]]:
        import pyarrow.parquet as pq

        records = [_from_row(row) for part in self._parts() for row in pq.read_table(part).to_pylist()]
        self._in_parts = SeenKeys(record_key(r) for r in records)
        journal = self._journal.read()
        self._pending = len(journal)
        return records + [r for r in journal if record_key(r) not in self._in_parts]

    def iter(self) -> Iterator[dict[str, Any]]:
        """:meth:`read` a row group at a time: the journal (at most one part's rows) is read first, so a
        record found in a part and in the journal is given once (from the part)."""
        import pyarrow.parquet as pq

        journal = {record_key(r): r for r in self._journal.read()}
        self._pending = len(journal)
        for part in self._parts():
            for batch in pq.ParquetFile(part).iter_batches(batch_size=ROWS_PER_PART):
                for row in batch.to_pylist():
                    record = _from_row(row)
                    journal.pop(record_key(record), None)
                    yield record
        yield from journal.values()

    def append(self, record: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._journal.append(record)
        self._pending += 1
        if self._pending >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        """Move the journal's rows into a new part file (atomically), then empty the journal."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._journal.close()
        parts = self._parts()
        if self._in_parts is None:
            self._in_parts = SeenKeys(
                record_key(_from_row(r))
                for p in parts
                for batch in pq.ParquetFile(p).iter_batches(columns=["index", "image"])
                for r in batch.to_pylist()
            )
        rows = [r for r in self._journal.read() if record_key(r) not in self._in_parts]
        if rows:
            index = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
            target = self.path / f"part-{index:06d}.parquet"
            tmp = self.path / f"_{target.name}.tmp"
            pq.write_table(pa.Table.from_pylist(rows, schema=_schema()), tmp)
            os.replace(tmp, target)
            for r in rows:
                self._in_parts.add(record_key(r))
        (self.path / JOURNAL).unlink(missing_ok=True)
        self._pending = 0

    def close(self) -> None:
        if self.path.exists():
            self.flush()


def record_store(path: Path) -> JsonlRecords | ParquetRecords:
    """The store for ``path``: Parquet for a ``.parquet`` folder, JSON lines otherwise."""
    return ParquetRecords(path) if path.suffix == ".parquet" else JsonlRecords(path)


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete record at ``path`` (either format), each once (the first written is kept, as by
    :func:`read_records`), in store order, one at a time: what is held is one bit per source position."""
    seen = SeenKeys()
    for record in record_store(path).iter():
        if seen.add(record_key(record)):
            yield record


class SeenKeys:
    """A set of record keys: positions as a growing bitmap (one bit each), names (old records) in a set."""

    def __init__(self, keys: Iterable[Any] = ()) -> None:
        self.bits = bytearray()
        self.names: set[Any] = set()
        for key in keys:
            self.add(key)

    def __contains__(self, key: Any) -> bool:
        if not isinstance(key, int) or key < 0:
            return key in self.names
        byte, bit = divmod(key, 8)
        return byte < len(self.bits) and bool(self.bits[byte] >> bit & 1)

    def add(self, key: Any) -> bool:
        """Add ``key``; False if it was there already."""
        if key in self:
            return False
        if not isinstance(key, int) or key < 0:
            self.names.add(key)
            return True
        byte, bit = divmod(key, 8)
        if byte >= len(self.bits):
            self.bits.extend(bytes(max(byte + 1 - len(self.bits), len(self.bits))))
        self.bits[byte] |= 1 << bit
        return True


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete record at ``path`` (either format), repairing what a kill left, each once, in source
    order (by ``index``: records merged from shards were appended in the order the shards finished)."""
    unique = {record_key(r): r for r in reversed(record_store(path).read())}  # a record written twice (two
    # merges at once) counts once: the first one written is kept
    return sorted(unique.values(), key=lambda r: r.get("index", 0))
