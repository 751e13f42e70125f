"""Dataset sources: folders and manifests, labels, deterministic order, root escapes, malformed lines."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from audit.errors import InputError
from audit.io import folder_source, iter_images, manifest_source, open_source
from audit.io.images import MANIFEST_ERROR, MISSING, OUTSIDE_ROOT
from tests.conftest import HOSTILE, png_bytes, write

PIXEL = png_bytes(np.full((4, 4, 3), 200, np.uint8))


def test_folder_with_class_subfolders(tmp_path: Path) -> None:
    for rel in ("cat/b.png", "cat/a.jpg", "dog/deep/x.png", "flat.png", ".hidden/h.png", "cat/.h.png", "notes.txt"):
        write(tmp_path / rel, PIXEL)
    records = list(folder_source(tmp_path))
    assert [(r.relpath, r.label) for r in records] == [
        ("cat/a.jpg", "cat"),
        ("cat/b.png", "cat"),
        ("dog/deep/x.png", "dog"),
        ("flat.png", None),
    ]


def test_flat_folder_has_no_labels(tmp_path: Path) -> None:
    for name in ("b.png", "a.png", "C.png"):
        write(tmp_path / name, PIXEL)
    assert [(r.relpath, r.label) for r in folder_source(tmp_path)] == [
        ("C.png", None),
        ("a.png", None),
        ("b.png", None),
    ]


def test_hostile_names_are_kept_verbatim(tmp_path: Path) -> None:
    name = "x\"'<b>\u00e9\u4e2d \U0001f600.png"
    write(tmp_path / "<script>" / name, PIXEL)
    (record,) = list(folder_source(tmp_path))
    assert record.label == "<script>" and record.relpath == f"<script>/{name}"
    (item,) = list(iter_images([record]))
    assert item.ok


def test_symlink_escaping_the_root_is_refused(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "secret.png", PIXEL)
    root = tmp_path / "data"
    write(root / "ok.png", PIXEL)
    os.symlink(outside, root / "link.png")
    refused = {r.relpath: r.refusal for r in folder_source(root)}
    assert refused == {"link.png": OUTSIDE_ROOT, "ok.png": None}
    allowed = {r.relpath: r.refusal for r in folder_source(root, allow_outside_root=True)}
    assert allowed == {"link.png": None, "ok.png": None}


def test_csv_manifest_labels_captions_and_refusals(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write(root / "img" / "a.png", PIXEL)
    write(tmp_path / "escape.png", PIXEL)
    manifest = root / "m.csv"
    manifest.write_text(
        "path,label,caption,extra\n"
        f'img/a.png,seven,"{HOSTILE.replace(chr(34), chr(34) * 2)}",1\n'
        "../escape.png,x,,\n"
        f"{tmp_path / 'escape.png'},x,,\n"
        "img/missing.png,y,,\n"
        ",z,,\n",
        encoding="utf-8",
    )
    records = list(manifest_source(manifest))
    assert [(r.refusal, r.label) for r in records] == [
        (None, "seven"),
        (OUTSIDE_ROOT, "x"),
        (OUTSIDE_ROOT, "x"),
        (MISSING, "y"),
        (MANIFEST_ERROR, None),
    ]
    assert records[0].caption == HOSTILE and records[0].extra == {"extra": "1"}
    assert records[0].path == root / "img" / "a.png"
    assert "line 6" in records[4].refusal_message
    allowed = [r.refusal for r in manifest_source(manifest, allow_outside_root=True)]
    assert allowed == [None, None, None, MISSING, MANIFEST_ERROR]


def test_jsonl_manifest_with_a_malformed_line(tmp_path: Path) -> None:
    write(tmp_path / "a.png", PIXEL)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"path": "a.png", "label": 3, "caption": "the number 3"}) + "\n{not json\n\n[1, 2]\n",
        encoding="utf-8",
    )
    records = list(manifest_source(manifest))
    assert [(r.refusal, r.label) for r in records] == [(None, "3"), (MANIFEST_ERROR, None), (MANIFEST_ERROR, None)]
    assert "line 2" in records[1].refusal_message and "line 4" in records[2].refusal_message
    items = list(iter_images(records))
    assert [i.result.reason for i in items] == [None, MANIFEST_ERROR, MANIFEST_ERROR]


def test_manifest_without_path_column_is_an_error(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,label\na.png,1\n", encoding="utf-8")
    with pytest.raises(InputError, match="no 'path' column"):
        list(manifest_source(manifest))


def test_open_source_dispatch(tmp_path: Path) -> None:
    write(tmp_path / "a.png", PIXEL)
    assert [r.relpath for r in open_source(tmp_path)] == ["a.png"]
    with pytest.raises(InputError, match="not a dataset folder"):
        open_source(tmp_path / "a.png")
    with pytest.raises(InputError, match="not found"):
        list(folder_source(tmp_path / "missing"))


def test_sources_are_streamed(tmp_path: Path) -> None:
    """A source is a lazy iterator: taking the first record does not walk the whole folder."""
    for i in range(50):
        write(tmp_path / f"{i:03d}.png", PIXEL)
    it = folder_source(tmp_path)
    first = next(it)
    assert first.relpath == "000.png"
    loaded = iter_images(it)
    assert next(loaded).record.relpath == "001.png"


def test_streaming_memory_does_not_grow_with_the_number_of_images(tmp_path: Path) -> None:
    big = png_bytes(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    for i in range(120):
        write(tmp_path / f"{i:03d}.png", big)

    def peak(n: int) -> int:
        tracemalloc.start()
        for _ in iter_images(list(folder_source(tmp_path))[:n]):
            pass
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(20), peak(120)
    assert large < small * 1.5 + 1_000_000  # one decoded image is 196,608 bytes; 120 would be 23.6 MB
