"""The audit's streamed digest: the same statistics, datasheet and thumbnail choice whatever order the
records arrive in, read a record at a time from either store, with nothing per image but a few numbers."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from audit.dataset.digest import RecordDigest, digest_list, digest_store
from audit.dataset.record_store import JsonlRecords, ParquetRecords, SeenKeys, iter_records, read_records


def _records(n: int = 120, seed: int = 0) -> list[dict]:
    """Records of every kind the digest reads: faces with and without a gender, abstentions, exact and
    near duplicates, refusals, NSFW hits, odd names."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = ["a", "b <i>", 'c "q"', "d"][i % 4]
        if i % 17 == 5:
            out.append({"index": i, "image": f"{label}/{i}.png", "class": label, "status": "truncated",
                        "message": "cut", "faces": []})  # fmt: skip
            continue
        faces = [
            {"box": [j, j, j + 9, j + 9], "det_score": 0.9, "age": rng.choice([None, rng.uniform(1, 80)]),
             "p_male": rng.choice([None, rng.random()]), "gender_confidence": rng.uniform(0.4, 1.0),
             "detect_scale": rng.choice([1.0, 2.5])}
            for j in range(rng.choice([0, 0, 1, 2, 3]))
        ]  # fmt: skip
        sha = f"{i % 50:064x}" if i % 9 else f"{7:064x}"  # every ninth image: one exact-duplicate group
        dh = (0xFFFF0000FFFF0000 ^ (1 << (i % 3))) if i % 11 == 0 else rng.getrandbits(64)
        record = {"index": i, "image": f"{label}/{i}.png", "class": label, "status": "ok", "sha256": sha,
                  "dhash": f"{dh:016x}", "format": rng.choice(["PNG", "JPEG", None]), "exif": i % 3 == 0,
                  "gps": i % 13 == 0, "width": 10 + i, "height": 20 + i % 7, "faces": faces}  # fmt: skip
        if i % 2:
            record["nsfw"] = {"labels": {}, "explicit": ["FEMALE_BREAST_EXPOSED"] if i % 10 == 3 else []}
        out.append(record)
    return out


def _everything(digest: RecordDigest, lookup) -> dict:
    return {
        "stats": digest.stats(0.6),
        "composition": digest.composition(lookup),
        "thumbnails": digest.thumbnail_choice(),
        "known": digest.known,
    }


def test_the_digest_does_not_depend_on_the_order_records_arrive_in() -> None:
    records = _records()
    known = {records[4]["image"], records[40]["image"]}
    in_order = _everything(*digest_list(records, known))
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    assert json.dumps(_everything(*digest_list(shuffled, known))) == json.dumps(in_order)  # every bit
    comp = in_order["composition"]
    assert comp["instances"] == 120 and comp["readable"] == 120 - 7  # i % 17 == 5: 5, 22, ..., 107
    assert comp["exact_duplicates"]["groups"] >= 1
    assert [r["image"] for r in in_order["known"]] == [records[4]["image"], records[40]["image"]]
    for chosen in in_order["thumbnails"].values():  # faces first, then source order; never a flagged one
        faces = [r for r in chosen if r["faces"]]
        assert chosen[: len(faces)] == faces and not any(r["index"] % 10 == 3 for r in chosen)
        assert [r["index"] for r in faces] == sorted(r["index"] for r in faces)


def test_the_digest_equals_the_per_record_statistics_worked_by_hand() -> None:
    records = _records()
    stats = digest_list(records)[0].stats(0.6)
    ok = [r for r in records if r["status"] == "ok"]
    faces = [f for r in ok for f in r["faces"]]
    decided = [f for f in faces if f["p_male"] is not None and f["gender_confidence"] >= 0.6]
    female = sum(f["p_male"] < 0.5 for f in decided)
    ages = [f["age"] for f in faces if f["age"] is not None]
    overall = stats["overall"]
    assert (overall["images"], overall["faces"], overall["gendered_faces"]) == (len(ok), len(faces), len(decided))
    assert overall["female_share"] == pytest.approx(female / len(decided), rel=1e-15)
    assert overall["mean_age"] == pytest.approx(sum(ages) / len(ages), rel=1e-13)
    assert overall["children"] == sum(a < 18 for a in ages)
    assert stats["unreadable"]["count"] == 7 and stats["unreadable"]["files"][0]["image"] == "b <i>/5.png"
    assert stats["detection_scales"] == [1.0, 2.5]


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_a_store_is_digested_a_record_at_a_time_as_its_records_in_memory(tmp_path: Path, kind: str) -> None:
    records = _records()
    path = tmp_path / f"records.{kind}"
    store = JsonlRecords(path) if kind == "jsonl" else ParquetRecords(path, rows_per_part=16)
    for r in records[60:] + records[:60]:  # as a merge after shards writes them: not in source order
        store.append(r)
    store.append(records[3])  # written twice (two merges at once): counted once
    if kind == "jsonl":
        store.close()
        with path.open("a", encoding="utf-8") as fh:
            fh.write('{"index": 999, "image": "torn')  # killed mid-line
    else:
        store._journal.close()  # killed before the journal became a part: its rows still count
    from_store = _everything(*digest_store(path))
    from_list = _everything(*digest_list(read_records(path)))
    assert json.dumps(from_store) == json.dumps(from_list)
    assert from_store["composition"]["instances"] == 120
    assert sorted(r["index"] for r in iter_records(path)) == list(range(120))


def test_a_jsonl_store_streamed_cuts_a_torn_tail_longer_than_one_read(tmp_path: Path, monkeypatch) -> None:
    import audit.dataset.record_store as rs

    monkeypatch.setattr(rs, "TAIL_CHUNK", 8)  # the last newline is many reads back from the end
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"index": 0, "image": "x"}) + "\n" + '{"index": 1, "image": "' + "y" * 100, "utf-8")
    assert list(JsonlRecords(path).iter()) == [{"index": 0, "image": "x"}]
    assert path.read_text("utf-8") == json.dumps({"index": 0, "image": "x"}) + "\n"


def test_a_reader_that_must_not_repair_reads_complete_lines_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "part.jsonl"
    text = json.dumps({"index": 0, "image": "x"}) + "\n" + '{"index": 1, "ima'  # another process mid-append
    path.write_text(text, "utf-8")
    assert list(JsonlRecords(path).iter(repair=False)) == [{"index": 0, "image": "x"}]
    assert path.read_text("utf-8") == text  # untouched: the writer's next line completes it


def test_seen_keys_hold_positions_as_bits_and_names_in_a_set() -> None:
    seen = SeenKeys([0, 9, 1000])
    assert (9 in seen, 8 in seen, 1000 in seen, 5000 in seen) == (True, False, True, False)
    assert seen.add(9) is False and seen.add(8) is True and seen.add("old/name.png") is True
    assert seen.add("old/name.png") is False and len(seen.bits) == 1000 // 8 + 1
