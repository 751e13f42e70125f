"""Per-image records as JSON lines or a Parquet folder: exact round trips, and nothing lost after a kill."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from audit.dataset.record_store import JOURNAL, ParquetRecords, read_records

RECORDS = [
    {"index": 0, "image": "a/1.png", "class": "a", "status": "ok", "sha256": "00ff", "dhash": "8f00000000000001",
     "format": "PNG", "exif": False, "gps": False, "width": 64, "height": 48,
     "faces": [{"box": [1, 2, 30, 40], "det_score": 1.25, "age": 31.0, "p_male": 0.9, "gender_confidence": 0.9,
                "detect_scale": 6.25}]},
    {"index": 1, "image": "a/2.jpg", "class": "a", "status": "truncated", "message": "image file is truncated",
     "faces": []},
    {"index": 2, "image": "b/<script>'\"é.png", "class": "b \"q\"", "status": "ok", "sha256": "11", "dhash": "0",
     "format": None, "exif": True, "gps": True, "width": 8, "height": 8, "faces": [],
     "nsfw": {"labels": {"FACE_MALE": 0.6}, "explicit": []}},
    {"index": 3, "image": "b/4.png", "class": "b", "status": "ok", "sha256": "22", "dhash": "1", "format": "PNG",
     "exif": False, "gps": False, "width": 8, "height": 8, "faces": [], "nsfw": {"labels": {}, "explicit": []}},
]  # fmt: skip


def _without_nulls(record: dict) -> dict:
    return {k: v for k, v in record.items() if v is not None}


def test_parquet_folder_round_trips_every_record(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    store = ParquetRecords(tmp_path / "records.parquet", rows_per_part=3)
    for record in RECORDS:
        store.append(record)
    assert len(list(store.path.glob("part-*.parquet"))) == 1 and (store.path / JOURNAL).is_file()
    store.close()
    assert sorted(p.name for p in store.path.iterdir()) == ["part-000000.parquet", "part-000001.parquet"]
    assert read_records(store.path) == [_without_nulls(r) for r in RECORDS]
    table = pq.read_table(store.path)  # any Parquet reader sees one table
    assert table.num_rows == 4 and table.column("class").to_pylist() == ["a", "a", 'b "q"', "b"]


def test_parquet_after_a_kill_keeps_parts_and_journal_once_each(tmp_path: Path) -> None:
    store = ParquetRecords(tmp_path / "records.parquet", rows_per_part=2)
    for record in RECORDS[:3]:
        store.append(record)
    # killed after the part was renamed into place but before the journal was emptied, mid-line
    journal = store.path / JOURNAL
    journal.write_text(json.dumps(RECORDS[0]) + "\n" + json.dumps(RECORDS[2]) + "\n" + '{"image": "b/4', "utf-8")
    again = ParquetRecords(store.path, rows_per_part=2)
    assert [r["image"] for r in again.read()] == [r["image"] for r in RECORDS[:3]]
    again.append(RECORDS[3])
    again.close()
    assert read_records(store.path) == [_without_nulls(r) for r in RECORDS]


def test_jsonl_and_parquet_audits_agree_and_parquet_resumes_after_kill_9(tmp_path: Path) -> None:
    from PIL import Image
    from skimage import data

    from audit.dataset.job import run_audit

    root = tmp_path / "ds"
    (root / "people").mkdir(parents=True)
    (root / "things").mkdir()
    for i, image in enumerate((data.astronaut(), data.coffee(), data.chelsea(), data.astronaut()[::2, ::2])):
        Image.fromarray(image).save(root / ("people" if i % 3 == 0 else "things") / f"{i}.png")
    (root / "things" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    jsonl = json.loads(run_audit(str(root), tmp_path / "j", workers=1, progress=False).read_text())["data"]
    script = (
        "import os, sys; from audit.dataset import run\n"
        "real = run.analyze_item\n"
        "def analyze(item, *a):\n"
        "    if item.relpath == 'things/2.png': os.kill(os.getpid(), 9)\n"
        "    return real(item, *a)\n"
        "run.analyze_item = analyze\n"
        f"run.run_records({str(root)!r}, __import__('pathlib').Path({str(tmp_path / 'p')!r}), workers=1, "
        "records_name='records.parquet', progress=False)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert killed.returncode == -9
    assert len(read_records(tmp_path / "p" / "records.parquet")) == 3  # journalled before the kill
    with pytest.raises(Exception, match=r"records\.parquet: resume it in that format"):
        run_audit(str(root), tmp_path / "p", workers=1, resume=True, progress=False)
    resumed = run_audit(str(root), tmp_path / "p", workers=2, resume=True, records_format="parquet", progress=False)
    parquet = json.loads(resumed.read_text())["data"]
    assert parquet["classes"] == jsonl["classes"] and parquet["overall"] == jsonl["overall"]
    assert parquet["datasheet"]["measured_composition"] == jsonl["datasheet"]["measured_composition"]
    assert len(read_records(tmp_path / "p" / "records.parquet")) == 5


def test_a_record_written_twice_is_read_once_in_source_order(tmp_path) -> None:
    from audit.dataset.record_store import JsonlRecords, read_records

    store = JsonlRecords(tmp_path / "records.jsonl")
    for line, index in enumerate((2, 0, 1, 0)):  # merged out of order; index 0 appended by two merges at once
        store.append({"index": index, "image": f"{index}.png", "status": "ok", "faces": [], "line": line})
    store.close()
    records = read_records(tmp_path / "records.jsonl")
    assert [r["index"] for r in records] == [0, 1, 2]
    assert records[0]["line"] == 1  # the first line written for index 0 is the one kept
