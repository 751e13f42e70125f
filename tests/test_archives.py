"""webdataset tar shards and Parquet tables, read in place: the same records as the same images in a folder,
and a reason for every hostile member."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from audit.errors import InputError
from audit.io import decode_image
from tests.conftest import deadline


def _png(seed: int, size: int = 24) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size + seed % 5, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes, **kind: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in kind.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


def _shard(path: Path, start: int, count: int) -> list[bytes]:
    images = []
    with tarfile.open(path, "w") as tar:
        for i in range(start, start + count):
            png = _png(i)
            images.append(png)
            _add(tar, f"s{i:04d}.png", png)
            _add(tar, f"s{i:04d}.cls", str(i % 3).encode())
            _add(tar, f"s{i:04d}.txt", f"a caption <b>{i}</b>".encode())
            _add(tar, f"s{i:04d}.json", json.dumps({"i": i}).encode())
    return images


def test_brace_patterns_expand_like_the_shell() -> None:
    from audit.io.archives import expand_braces

    assert expand_braces("d/s-{0000..0002}.tar") == ["d/s-0000.tar", "d/s-0001.tar", "d/s-0002.tar"]
    assert expand_braces("{a,b}-{1..2}.tar") == ["a-1.tar", "a-2.tar", "b-1.tar", "b-2.tar"]
    assert expand_braces("x-{3..1}.tar") == ["x-3.tar", "x-2.tar", "x-1.tar"]
    assert expand_braces("plain.tar") == ["plain.tar"]


def test_a_brace_pattern_naming_billions_of_files_is_refused_before_any_is_made() -> None:
    """Groups multiply: 10^10 names would hang the run building the list (and 40 groups of two, counted one
    name at a time, the count itself); refused at once, counted as a product. Nesting is refused too."""
    from audit.errors import InputError
    from audit.io.archives import brace_count, expand_braces

    for pattern in ("d/s-{0000..0002}.tar", "{a,b}-{1..2}-{x,y,z}.tar", "x-{3..-1}.tar", "a{b-{1,2}.tar", "p.tar"):
        assert brace_count(pattern) == len(expand_braces(pattern))
    with pytest.raises(InputError, match="10,000,000,000 files"):
        expand_braces("x-{0..99999}-{0..99999}.tar")
    with pytest.raises(InputError, match="1,099,511,627,776 files"):
        expand_braces("{a,b}" * 40 + ".tar")
    for nested in ("{a,{b,c}}.tar", "{{,}a,b}.tar"):
        with pytest.raises(InputError, match="nested or unbalanced braces"):
            expand_braces(nested)


def test_webdataset_shards_give_every_sample_with_its_label_caption_and_json(tmp_path) -> None:
    from audit.io import archives
    from audit.io.sources import load_record, open_source

    images = _shard(tmp_path / "s-0000.tar", 0, 4) + _shard(tmp_path / "s-0001.tar", 4, 3)
    records = list(open_source(str(tmp_path / "s-{0000..0001}.tar")))
    assert [r.relpath for r in records] == [f"s-000{i // 4}.tar/s{i:04d}.png" for i in range(7)]
    assert [r.label for r in records] == [str(i % 3) for i in range(7)]
    assert records[5].caption == "a caption <b>5</b>" and records[5].extra["json"] == {"i": 5}
    assert all(r.span is not None and r.data is None for r in records)  # read by offset, never extracted
    from audit.io import decode_image

    for record, png in zip(records, images, strict=True):
        loaded, direct = load_record(record), decode_image(png)
        assert loaded.ok and loaded.sha256 == direct.sha256 and np.array_equal(loaded.image, direct.image)
    assert archives.is_webdataset("d/shard-{0..9}.tar") and not archives.is_webdataset("d/images")


def test_compressed_shards_are_streamed_with_the_same_records(tmp_path) -> None:
    from audit.io.sources import load_record, open_source

    _shard(tmp_path / "plain.tar", 0, 3)
    with tarfile.open(tmp_path / "plain.tar") as src, tarfile.open(tmp_path / "packed.tar.gz", "w:gz") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m))
    plain = [load_record(r).sha256 for r in open_source(str(tmp_path / "plain.tar"))]
    packed = list(open_source(str(tmp_path / "packed.tar.gz")))
    assert all(r.data is not None for r in packed)
    assert [load_record(r).sha256 for r in packed] == plain


def test_hostile_tar_members_get_reasons_and_nothing_is_written(tmp_path) -> None:
    from audit.io.sources import load_record, open_source

    path = tmp_path / "hostile.tar"
    with tarfile.open(path, "w") as tar:
        _add(tar, "ok.png", _png(1))
        _add(tar, "/etc/abs.png", _png(2))
        _add(tar, "../up.png", _png(3))
        _add(tar, "link.png", b"", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        _add(tar, "fifo.png", b"", type=tarfile.FIFOTYPE)
        _add(tar, "noimage.cls", b"3")
        _add(tar, "noimage.txt", b"caption only")
        _add(tar, "bad.png", b"not a png at all")
    before = sorted(p.name for p in tmp_path.iterdir())
    outcome = {r.relpath: (load_record(r).reason or "ok") for r in open_source(str(path))}
    assert outcome == {
        "hostile.tar/ok.png": "ok",
        "hostile.tar//etc/abs": "outside_root",
        "hostile.tar/../up": "outside_root",
        "hostile.tar/link": "not_a_file",
        "hostile.tar/fifo": "not_a_file",
        "hostile.tar/noimage": "not_an_image",
        "hostile.tar/bad.png": "not_an_image",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing extracted anywhere


def test_a_truncated_shard_is_one_record_and_the_next_shard_is_read(tmp_path) -> None:
    from audit.io.sources import load_record, open_source

    _shard(tmp_path / "t-0.tar", 0, 4)
    _shard(tmp_path / "t-1.tar", 4, 2)
    data = (tmp_path / "t-0.tar").read_bytes()
    (tmp_path / "t-0.tar").write_bytes(data[: len(data) // 2 + 100])  # cut inside a member
    outcome = [(r.relpath, load_record(r).reason or "ok") for r in open_source(str(tmp_path / "t-{0..1}.tar"))]
    reasons = dict(outcome)
    assert reasons["t-0.tar/s0000.png"] == "ok"
    assert "truncated" in reasons.values()
    assert reasons["t-1.tar/s0004.png"] == "ok" and reasons["t-1.tar/s0005.png"] == "ok"


@pytest.mark.parametrize("cut", ["at a member boundary", "inside a text member", "not at all"])
def test_a_shard_cut_where_tarfile_sees_a_clean_end_still_gets_a_truncated_record(tmp_path, cut: str) -> None:
    """tarfile reads a tar cut between members, or inside a last member that is not an image, as complete:
    without the end-of-archive check the samples after the cut vanish with no reason."""
    from audit.io.sources import load_record, open_source

    shard = tmp_path / "t.tar"
    _shard(shard, 0, 4)
    with tarfile.open(shard) as tar:
        members = {m.name: m for m in tar.getmembers()}
    data = shard.read_bytes()
    ends = {
        "at a member boundary": members["s0002.png"].offset,  # s0002's header: samples 2 and 3 lost
        "inside a text member": members["s0001.json"].offset_data + 3,  # a json cut: samples 2 and 3 lost
        "not at all": len(data),
    }
    shard.write_bytes(data[: ends[cut]])
    outcome = [(r.relpath, load_record(r).reason or "ok") for r in open_source(str(shard))]
    kept = [("t.tar/s0000.png", "ok"), ("t.tar/s0001.png", "ok")]
    if cut == "not at all":
        assert outcome == [*kept, ("t.tar/s0002.png", "ok"), ("t.tar/s0003.png", "ok")]
    else:
        assert outcome == [*kept, ("t.tar/(end)", "truncated")]


def test_a_compressed_shard_cut_inside_a_member_is_a_record_not_a_crash(tmp_path) -> None:
    """A streamed (.tar.gz) shard is read member by member as it passes; a member cut short raised
    tarfile.ReadError out of the whole run."""
    import gzip

    from audit.io.sources import load_record, open_source

    _shard(tmp_path / "t.tar", 0, 4)
    packed = gzip.compress((tmp_path / "t.tar").read_bytes())
    (tmp_path / "t.tar").unlink()
    (tmp_path / "t-0.tar.gz").write_bytes(packed[: len(packed) * 3 // 4])
    _shard(tmp_path / "t-1.tar", 4, 1)
    (tmp_path / "t-1.tar.gz").write_bytes(gzip.compress((tmp_path / "t-1.tar").read_bytes()))
    (tmp_path / "t-1.tar").unlink()
    outcome = [(r.relpath, load_record(r).reason or "ok") for r in open_source(str(tmp_path / "t-{0..1}.tar.gz"))]
    assert outcome[0] == ("t-0.tar.gz/s0000.png", "ok")
    assert outcome[-2:] == [("t-0.tar.gz/(end)", "truncated"), ("t-1.tar.gz/s0004.png", "ok")]
    assert all(reason == "ok" for _, reason in outcome[:-2])


def test_a_missing_shard_in_a_pattern_is_one_error_before_any_work(tmp_path) -> None:
    from audit.io.sources import open_source

    _shard(tmp_path / "m-0.tar", 0, 1)
    with pytest.raises(InputError, match="webdataset shard not found"):
        open_source(str(tmp_path / "m-{0..1}.tar"))


def _parquet(path: Path, rows: list[dict], schema=None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=3)


def test_parquet_binary_and_huggingface_struct_columns_give_the_same_images(tmp_path) -> None:
    from audit.io import decode_image
    from audit.io.archives import load_at, parquet_listing
    from audit.io.sources import load_record, open_source

    pngs = [_png(i) for i in range(7)]
    _parquet(tmp_path / "flat.parquet", [{"key": f"k{i}", "image": p, "label": i % 2} for i, p in enumerate(pngs)])
    (tmp_path / "hf").mkdir()
    _parquet(tmp_path / "hf" / "train-0.parquet", [{"image": {"bytes": p, "path": f"img{i}.png"}, "caption": f"c{i}"}
                                                   for i, p in enumerate(pngs)])  # fmt: skip
    flat = list(open_source(str(tmp_path / "flat.parquet")))
    hf = list(open_source(str(tmp_path / "hf")))
    assert [r.relpath for r in flat] == [f"flat.parquet/k{i}" for i in range(7)]
    assert [r.label for r in flat] == [str(i % 2) for i in range(7)]
    assert [r.relpath for r in hf] == [f"train-0.parquet/img{i}.png" for i in range(7)]
    assert [r.caption for r in hf] == [f"c{i}" for i in range(7)] and hf[0].label is None
    expected = [decode_image(p).sha256 for p in pngs]
    assert [load_record(r).sha256 for r in flat] == expected == [load_record(r).sha256 for r in hf]
    # the deepfake check's listing (no image bytes read) names the rows as the audit does: by the struct's path
    for spec, records in ((tmp_path / "hf", hf), (tmp_path / "flat.parquet", flat)):
        listed = list(parquet_listing(str(spec)))
        assert [r.relpath for r in listed] == [r.relpath for r in records]
        assert [load_at(r.path, r.span).sha256 for r in listed] == expected


def test_parquet_start_skips_rows_and_a_null_cell_gets_a_reason(tmp_path) -> None:
    from audit.io.archives import parquet_rows, parquet_source
    from audit.io.sources import load_record

    rows = [{"image": _png(i) if i != 4 else None} for i in range(8)]
    _parquet(tmp_path / "p.parquet", rows)
    assert parquet_rows(str(tmp_path / "p.parquet")) == 8
    tail = list(parquet_source(str(tmp_path / "p.parquet"), start=4))  # skips a whole row group unread
    assert [r.extra["row"] for r in tail] == [4, 5, 6, 7]
    assert load_record(tail[0]).reason == "empty" and load_record(tail[1]).ok


def test_parquet_of_urls_or_without_the_image_column_is_one_clear_line(tmp_path) -> None:
    from audit.io.archives import Columns
    from audit.io.sources import open_source

    _parquet(tmp_path / "urls.parquet", [{"url": "https://example.org/a.jpg", "caption": "x"}])
    with pytest.raises(InputError, match="never fetches images: download them first"):
        open_source(str(tmp_path / "urls.parquet"), columns=Columns(image="url"))
    with pytest.raises(InputError, match=r"no image column 'image' \(columns: \['url', 'caption'\]\)"):
        open_source(str(tmp_path / "urls.parquet"))
    _parquet(tmp_path / "ok.parquet", [{"image": _png(0)}])
    with pytest.raises(InputError, match="no column 'cls'"):
        open_source(str(tmp_path / "ok.parquet"), columns=Columns(label="cls"))


def _damage_row_group(path: Path, group: int) -> None:
    """Overwrite the first bytes of one row group's image page (its header): the footer stays readable."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata.row_group(group).column(1)  # columns: key, image, label
    data = bytearray(path.read_bytes())
    data[meta.data_page_offset : meta.data_page_offset + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))


def _damaged_parquet_folder(root: Path, outside: Path) -> list[bytes]:
    """A folder of Parquet files as a crashed export (or a hostile user) leaves it: a good file (rows 0-7),
    one with its second row group damaged (rows 8-15), one cut in half, an empty one, a link leaving the
    folder, a FIFO (opening it would block for ever), a link loop and a dangling link."""
    pngs = [_png(i) for i in range(16)]
    root.mkdir()
    for name, part in (("a.parquet", pngs[:8]), ("b.parquet", pngs[8:])):
        _parquet(root / name, [{"key": f"{name[0]}{i}", "image": p, "label": f"L{i % 2}"} for i, p in enumerate(part)])
    _damage_row_group(root / "b.parquet", 1)  # rows 3-5 of b
    whole = (root / "a.parquet").read_bytes()
    (root / "c.parquet").write_bytes(whole[: len(whole) // 2])
    (root / "d.parquet").write_bytes(b"")
    _parquet(outside, [{"image": pngs[0]}])
    (root / "e.parquet").symlink_to(outside)
    os.mkfifo(root / "f.parquet")
    (root / "g.parquet").symlink_to("g.parquet")
    (root / "h.parquet").symlink_to("nowhere.parquet")
    return pngs


FILE_REASONS = {"c": "unreadable", "d": "empty", "e": "outside_root", "f": "not_a_file", "g": "unreadable",
                "h": "missing"}  # fmt: skip


def test_damaged_parquet_files_get_reasons_and_the_rest_is_read(tmp_path) -> None:
    """One torn file in a folder of shards costs its own rows, each with a reason, never the run; every
    record keeps its index whatever fails around it (the shards and the merge count on that)."""
    from audit.io.archives import load_at, parquet_listing, parquet_rows, parquet_source
    from audit.io.sources import load_record

    pngs = _damaged_parquet_folder(tmp_path / "data", tmp_path / "elsewhere.parquet")
    spec = str(tmp_path / "data")
    with deadline(30):
        records = list(parquet_source(spec))
    names = [r.relpath for r in records]
    whole_files = [f"{f}.parquet/(file)" for f in FILE_REASONS]
    assert names == [f"a.parquet/a{i}" for i in range(8)] + [f"b.parquet/b{i}" for i in range(8)] + whole_files
    assert parquet_rows(spec) == len(records) == 22
    reasons = {r.relpath: r.refusal for r in records if r.refusal}
    assert reasons == {"b.parquet/b3": "unreadable", "b.parquet/b4": "unreadable", "b.parquet/b5": "unreadable",
                       **{f"{f}.parquet/(file)": reason for f, reason in FILE_REASONS.items()}}  # fmt: skip
    assert [r.label for r in records[11:14]] == ["L1", "L0", "L1"]  # the damaged group's labels survive
    assert "row group (1) could not be read" in records[11].refusal_message
    assert "\n" not in records[11].refusal_message
    readable = [r for r in records if not r.refusal]
    expected = [decode_image(p).sha256 for i, p in enumerate(pngs) if i not in (11, 12, 13)]
    assert [load_record(r).sha256 for r in readable] == expected
    for start in (0, 4, 11, 13, 16, 17, 19, 22):  # a shard's start, inside or past every kind of damage
        assert [r.relpath for r in parquet_source(spec, start=start)] == names[start:]
    listed = list(parquet_listing(spec))  # the deepfake check's listing: the same names, damage found on read
    assert [r.relpath for r in listed] == names
    assert [r.refusal for r in listed[16:]] == list(FILE_REASONS.values())
    assert load_at(listed[11].path, listed[11].span).reason == "unreadable"
    assert load_at(listed[10].path, listed[10].span).sha256 == decode_image(pngs[10]).sha256
    from detectors.job import list_inputs

    files, refused = list_inputs([spec])
    assert [name for _, name, _ in files] == names[:16]
    assert refused == list(zip(names[16:], FILE_REASONS.values(), strict=True))


def test_an_audit_of_damaged_parquet_completes_and_shards_merge_to_the_same_records(tmp_path) -> None:
    from audit.dataset.job import run_audit
    from audit.scale.shards import Shard

    _damaged_parquet_folder(tmp_path / "data", tmp_path / "elsewhere.parquet")
    spec = str(tmp_path / "data")
    run_audit(spec, tmp_path / "one", backend="opencv-haar", workers=1, progress=False)
    for k in range(3):
        run_audit(spec, tmp_path / "sharded", backend="opencv-haar", workers=1, progress=False, shard=Shard(k, 3))
    run_audit(spec, tmp_path / "sharded", backend="opencv-haar", workers=1, progress=False)

    def rows(out: str) -> list[tuple]:
        lines = (tmp_path / out / "records.jsonl").read_text().splitlines()
        return sorted((r["index"], r["image"], r["status"], r.get("sha256")) for r in map(json.loads, lines))

    one = rows("one")
    assert len(one) == 22 and [r[2] for r in one].count("ok") == 13
    assert rows("sharded") == one


def test_audit_of_tar_and_parquet_equals_the_audit_of_the_same_images_in_a_folder(tmp_path) -> None:
    """The same images through all three sources: identical faces, sizes and hashes per image."""
    from audit.dataset.builtin import faces_demo
    from audit.dataset.job import run_audit

    demo = [b for b in faces_demo() if b.label in ("portrait", "group")][:4]
    pngs = []
    from PIL import Image

    for b in demo:
        buf = io.BytesIO()
        Image.fromarray(b.load()).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    folder = tmp_path / "folder" / "people"
    folder.mkdir(parents=True)
    with tarfile.open(tmp_path / "people.tar", "w") as tar:
        for i, png in enumerate(pngs):
            (folder / f"i{i}.png").write_bytes(png)
            _add(tar, f"i{i}.png", png)
            _add(tar, f"i{i}.cls", b"people")
    _parquet(tmp_path / "people.parquet", [{"image": p, "label": "people"} for p in pngs])
    facts = {}
    for name, spec in (("folder", tmp_path / "folder"), ("tar", tmp_path / "people.tar"),
                       ("parquet", tmp_path / "people.parquet")):  # fmt: skip
        run_audit(str(spec), tmp_path / f"out-{name}", backend="opencv-haar", workers=1, progress=False)
        rows = [json.loads(line) for line in (tmp_path / f"out-{name}" / "records.jsonl").read_text().splitlines()]
        facts[name] = [(r["class"], r["sha256"], r["width"], r["height"], r["faces"]) for r in rows]
        doc = json.loads((tmp_path / f"out-{name}" / "audit-results.json").read_text())
        facts[name + "-overall"] = doc["data"]["overall"]
    assert len(facts["folder"]) == 4 and any(f[4] for f in facts["folder"])  # faces were found
    assert facts["tar"] == facts["folder"] == facts["parquet"]
    assert facts["tar-overall"] == facts["folder-overall"] == facts["parquet-overall"]


def test_a_bench_reference_from_tar_or_parquet_equals_the_folder(tmp_path) -> None:
    from audit.bench.run import load_reference

    pngs = [_png(i, size=16) for i in (0, 5, 10)]  # one size: load_reference stacks them into one array
    (tmp_path / "ref").mkdir()
    with tarfile.open(tmp_path / "ref.tar", "w") as tar:
        for i, png in enumerate(pngs):
            (tmp_path / "ref" / f"{i}.png").write_bytes(png)
            _add(tar, f"{i}.png", png)
    _parquet(tmp_path / "ref.parquet", [{"image": p} for p in pngs])
    folder, _ = load_reference(str(tmp_path / "ref"))
    assert folder.shape == (3, 16, 16, 3)
    for spec in ("ref.tar", "ref.parquet"):
        images, info = load_reference(str(tmp_path / spec))
        assert np.array_equal(images, folder) and info["n"] == 3
