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
from pathlib import Path
from typing import Any

from audit.errors import InputError

ROWS_PER_PART = 256
JOURNAL = "_journal.jsonl"


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


class JsonlRecords:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> list[dict[str, Any]]:
        return _read_jsonl(self.path)

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
        self._in_parts: set[Any] | None = None  # keys of the records already in part files

    def exists(self) -> bool:
        return self.path.exists()

    def _parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet"))

    def read(self) -> list[dict[str, Any]]:
        import pyarrow.parquet as pq

        records = [_from_row(row) for part in self._parts() for row in pq.read_table(part).to_pylist()]
        self._in_parts = {record_key(r) for r in records}
        journal = self._journal.read()
        self._pending = len(journal)
        return records + [r for r in journal if record_key(r) not in self._in_parts]

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
            self._in_parts = {
                record_key(_from_row(r))
                for p in parts
                for r in pq.read_table(p, columns=["index", "image"]).to_pylist()
            }
        rows = [r for r in self._journal.read() if record_key(r) not in self._in_parts]
        if rows:
            index = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
            target = self.path / f"part-{index:06d}.parquet"
            tmp = self.path / f"_{target.name}.tmp"
            pq.write_table(pa.Table.from_pylist(rows, schema=_schema()), tmp)
            os.replace(tmp, target)
            self._in_parts.update(record_key(r) for r in rows)
        (self.path / JOURNAL).unlink(missing_ok=True)
        self._pending = 0

    def close(self) -> None:
        if self.path.exists():
            self.flush()


def record_store(path: Path) -> JsonlRecords | ParquetRecords:
    """The store for ``path``: Parquet for a ``.parquet`` folder, JSON lines otherwise."""
    return ParquetRecords(path) if path.suffix == ".parquet" else JsonlRecords(path)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete record at ``path`` (either format), repairing what a kill left, each once, in source
    order (by ``index``: records merged from shards were appended in the order the shards finished)."""
    unique = {record_key(r): r for r in reversed(record_store(path).read())}  # a record written twice (two
    # merges at once) counts once: the first one written is kept
    return sorted(unique.values(), key=lambda r: r.get("index", 0))
