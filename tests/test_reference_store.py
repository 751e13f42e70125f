"""Reference features kept across bench runs (``audit.bench.reference_store``): read back instead of
extracted, equal to a fresh pass; a changed reference, another extractor, a damaged file, the cache turned
off, an unwritable cache and a built-in reference each handled."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from audit.bench import BenchConfig, reference_store, run_bench
from audit.bench import run as bench_run
from audit.bench.reference_store import ReferenceStore
from audit.cache_dir import cache_root
from audit.features import get_extractor
from audit.scale.shards import Shard
from audit.zoo import digits

COMMON = {"schedules": ({"name": "static"},), "scales": (1.0,), "n": 130, "steps": 4, "bootstrap": 0, "baseline": False}


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    """The held-out digits at 8, 16 and 24 px, as files."""
    held, _ = digits.load_split("heldout")
    folder = tmp_path / "ref"
    folder.mkdir()
    for i, image in enumerate(held):
        k = 1 + i % 3
        Image.fromarray(np.kron(image, np.ones((k, k), dtype=np.uint8))).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture
def kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GENAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "reference-features"


def _bench(reference: Path, out: Path, **kw) -> dict:
    path = run_bench(BenchConfig(**COMMON, reference=str(reference)), out, progress=False, **kw)
    return json.loads(Path(path).read_text())


def _no_pass(*args, **kwargs):
    raise AssertionError("the reference was read again")


def test_a_second_run_reads_the_kept_features_and_scores_the_same(reference, kept, tmp_path, monkeypatch) -> None:
    first = _bench(reference, tmp_path / "a")
    files = list(kept.glob("*.npz"))
    assert len(files) == 1
    assert first["provenance"]["preprocessing"]["reference_features"] == f"extracted now, kept in {files[0]}"
    monkeypatch.setattr(bench_run, "reference_chunks", _no_pass)
    alias = tmp_path / "alias"
    alias.symlink_to(reference)  # the same folder by another name: the same kept file, named as given
    second = _bench(alias, tmp_path / "b")
    assert second["provenance"]["preprocessing"]["reference_features"] == f"read from {files[0]}"
    assert second["data"]["cells"][0]["metrics"] == first["data"]["cells"][0]["metrics"]
    assert first["data"]["reference"] == {"spec": str(reference), "n": 297, "refused": [], "sizes": 3}
    assert second["data"]["reference"] == {**first["data"]["reference"], "spec": str(alias)}
    # shards skip their share of the reference too; the merge equals the one-process run
    for k in range(2):
        assert run_bench(BenchConfig(**COMMON, reference=str(reference)), tmp_path / "c", shard=Shard(k, 2),
                         progress=False) is None  # fmt: skip
    merged = _bench(reference, tmp_path / "c")
    assert merged["data"]["cells"][0]["metrics"] == first["data"]["cells"][0]["metrics"]


def test_a_changed_reference_or_another_extractor_is_extracted_again(reference, kept, tmp_path) -> None:
    embedded = get_extractor("embedded")
    before = ReferenceStore(str(reference), embedded).path
    assert before is not None and before.parent == kept

    class Other:
        id, outputs = "other-extractor@8x8", ("features",)

        def models(self) -> list[dict]:
            return [{"id": "other", "sha256": "0" * 64}]

    assert ReferenceStore(str(reference), Other()).path != before
    Image.new("RGB", (8, 8)).save(reference / "297.png")  # one more image
    assert ReferenceStore(str(reference), embedded).path != before
    (reference / "297.png").unlink()
    assert ReferenceStore(str(reference), embedded).path == before
    stamp = os.stat(reference / "000.png").st_mtime_ns
    os.utime(reference / "000.png", ns=(stamp + 10**9, stamp + 10**9))  # rewritten in place
    assert ReferenceStore(str(reference), embedded).path != before


def test_content_rewritten_with_its_size_and_modification_time_put_back_gets_a_new_key(reference, kept) -> None:
    """``cp -p``, ``rsync -t`` or ``tar x`` put a file's modification time back; its change time moves."""
    embedded = get_extractor("embedded")
    first, second = reference / "000.png", reference / "001.png"
    before = ReferenceStore(str(reference), embedded).path
    old = os.stat(first)
    data = first.read_bytes()
    replacement = second.read_bytes()  # another digit, cut or padded to the same size (the key reads no pixels)
    replacement = (replacement + data)[: len(data)]
    assert replacement != data
    first.write_bytes(replacement)
    os.utime(first, ns=(old.st_atime_ns, old.st_mtime_ns))
    new = os.stat(first)
    assert (new.st_size, new.st_mtime_ns) == (old.st_size, old.st_mtime_ns)  # what rsync's quick check compares
    assert ReferenceStore(str(reference), embedded).path != before


def test_a_damaged_kept_file_is_extracted_again_and_replaced(reference, kept, tmp_path, caplog) -> None:
    first = _bench(reference, tmp_path / "a")
    (path,) = kept.glob("*.npz")
    path.write_bytes(path.read_bytes()[:300])
    with caplog.at_level(logging.WARNING, logger="audit.bench.reference_store"):
        second = _bench(reference, tmp_path / "b")
    assert "unreadable (BadZipFile): extracting again" in caplog.text
    assert second["provenance"]["preprocessing"]["reference_features"].startswith("extracted now, kept in")
    assert second["data"]["cells"][0]["metrics"] == first["data"]["cells"][0]["metrics"]
    outputs, info = ReferenceStore(str(reference), get_extractor("embedded")).load()
    assert info == first["data"]["reference"] and outputs["features"].shape == (297, 128)


def test_nothing_is_kept_when_off_unwritable_or_built_in(reference, tmp_path, monkeypatch, caplog) -> None:
    embedded = get_extractor("embedded")
    monkeypatch.setenv("GENAUDIT_CACHE_DIR", "off")
    assert cache_root() is None and ReferenceStore(str(reference), embedded).path is None
    assert _bench(reference, tmp_path / "a")["provenance"]["preprocessing"]["reference_features"] == "extracted now"
    monkeypatch.setenv("GENAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    assert ReferenceStore("embedded:digits-heldout", embedded).path is None  # ships with the package
    (tmp_path / "cache").write_text("a file where the cache folder would be")
    with caplog.at_level(logging.WARNING, logger="audit.bench.reference_store"):
        doc = _bench(reference, tmp_path / "b")
    assert "could not keep the reference features" in caplog.text and doc["data"]["cells"][0]["metrics"]
    (tmp_path / "cache").unlink()
    caplog.clear()

    class DiskFull:  # numpy, whose savez fills the cache's disk halfway through the file
        def __getattr__(self, name: str):
            return getattr(np, name)

        @staticmethod
        def savez(fh, **arrays) -> None:
            fh.write(b"PK\x03\x04 half a file")
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(reference_store, "np", DiskFull())
    with caplog.at_level(logging.WARNING, logger="audit.bench.reference_store"):
        doc = _bench(reference, tmp_path / "c")
    assert "No space left on device" in caplog.text and doc["data"]["cells"][0]["metrics"]
    assert not list((tmp_path / "cache" / "reference-features").iterdir())  # no half-written file left
    monkeypatch.delenv("GENAUDIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "genaudit"
