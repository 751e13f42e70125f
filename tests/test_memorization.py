"""``bench --training``: near-copies of training images found exactly, the blocked search against brute
force, the criteria's arithmetic, resume without rescoring."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from audit.bench import BenchConfig, run_bench
from audit.bench import memorization as memo
from audit.dataset.demographics import wilson_interval
from audit.errors import InputError
from audit.zoo import digits

N = 140
EXACT = {5: 11, 17: 402, 60: 1234}  # cell index -> training image copied as it is
NOISY = {33: 77, 90: 900}  # copied with Gaussian noise (sigma 10 levels)
TONED = {121: 1499}  # copied with contrast 0.8 and brightness +30 levels
PLANTED = {**EXACT, **NOISY, **TONED}


def test_search_merged_block_by_block_equals_brute_force(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(101, 6)).astype(np.float32)
    queries = np.concatenate([rng.normal(size=(30, 6)), base[[3, 50]]]).astype(np.float32)
    monkeypatch.setattr(memo, "TRAIN_BLOCK", 13)
    dist, index = memo.nearest(queries, base, 5)
    full = np.sqrt(((queries[:, None, :].astype(np.float64) - base[None]) ** 2).sum(-1))
    expected = np.argsort(full, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_allclose(dist, np.take_along_axis(full, expected, axis=1), atol=1e-5)
    assert index[-2, 0] == 3 and index[-1, 0] == 50 and dist[-1, 0] == pytest.approx(0.0, abs=1e-3)


def test_the_query_index_finds_every_exact_copy_and_most_neighbours(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 16))
    base = memo._unit((centres[rng.integers(0, 40, 6000)] + 0.3 * rng.normal(size=(6000, 16))).astype(np.float32))
    novel = memo._unit((centres[rng.integers(0, 40, 1800)] + 0.3 * rng.normal(size=(1800, 16))).astype(np.float32))
    copies = rng.choice(6000, 200, replace=False)
    queries = np.concatenate([novel, base[copies]])  # the last 200 are exact copies of training vectors
    monkeypatch.setattr(memo, "TRAIN_BLOCK", 1000)
    exact = memo.NearestStream(queries, 10)
    indexed = memo.NearestStream(queries, 10, lists=45, probes=4)
    assert indexed.index is not None and len(indexed.index.members) == 45
    for start in range(0, 6000, 256):
        chunk = slice(start, start + 256)
        exact.update(base[chunk], np.arange(6000)[chunk])
        indexed.update(base[chunk], np.arange(6000)[chunk])
    (d_exact, i_exact), (d_index, i_index) = exact.result(), indexed.result()
    np.testing.assert_array_equal(i_index[1800:, 0], copies)  # every exact copy meets its training vector
    assert d_index[1800:, 0] == pytest.approx(np.zeros(200), abs=1e-3)
    top1 = np.mean(i_index[:, 0] == i_exact[:, 0])
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i_index, i_exact, strict=True)])
    assert top1 > 0.95 and recall > 0.9, (top1, recall)
    assert np.all(d_index >= d_exact - 1e-5)  # an index can miss neighbours, never find closer ones
    assert memo.index_lists(5_000, 100_000) == 0 and memo.index_lists(5_000, 1_000_000) == 70


def test_pixel_vectors_are_centred_unit_and_blind_to_brightness_and_size() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 200, size=(8, 8, 3)).astype(np.uint8)
    brighter = np.clip(image.astype(int) + 40, 0, 255).astype(np.uint8)
    bigger = np.kron(image, np.ones((4, 4, 1), dtype=np.uint8))  # 32 x 32, each pixel a 4 x 4 block
    a, b = memo.pixel_vectors(np.stack([image, brighter])), memo.pixel_vectors(bigger[None])
    assert np.linalg.norm(a, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert a.sum(axis=1) == pytest.approx([0.0, 0.0], abs=1e-4)
    np.testing.assert_allclose(a[0], a[1], atol=1e-5)
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)
    flat = memo.pixel_vectors(np.full((1, 8, 8), 7, dtype=np.uint8))
    assert not flat.any()  # a flat image is the zero vector, not a division by zero


def test_streamed_search_over_chunks_equals_one_pass() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(size=(300, 5)).astype(np.float32)
    queries = rng.normal(size=(40, 5)).astype(np.float32)
    stream = memo.NearestStream(queries, 7)
    for start in range(0, 300, 64):  # positions 1000.. : ids are whatever the source calls them
        stream.update(base[start : start + 64], np.arange(1000 + start, 1000 + min(start + 64, 300)))
    dist, ids = stream.result()
    one_dist, one_ids = memo.nearest(queries, base, 7)
    np.testing.assert_array_equal(ids, one_ids + 1000)
    np.testing.assert_allclose(dist, one_dist, atol=1e-6)
    few = memo.NearestStream(queries, 7)
    few.update(base[:3], np.arange(3))
    assert few.result()[1].shape == (40, 3)  # fewer training images than neighbours asked for
    with pytest.raises(InputError, match="training set is empty"):
        memo.NearestStream(queries, 7).result()


def test_ratio_and_similarity_worked_by_hand() -> None:
    # pixel space: nearest distances given directly. Query 0: 0.1, 0.9, 2.9 -> ratio 0.1 / (3.9 / 3); query 1:
    # 1, 1, 2 -> 0.75. Feature space: distances 0.02 and 1.0 -> cosine 1 - d^2 / 2 = 0.9998 and 0.5
    pixels = (np.array([[0.1, 0.9, 2.9], [1.0, 1.0, 2.0]]), np.array([[4, 5, 6], [7, 8, 9]]))
    features = (np.array([[0.02], [1.0]]), np.array([[40], [70]]))
    criteria = memo.Criteria(ratio=0.25, similarity=0.999, neighbours=3)
    result = memo.cell_memorization(pixels, features, criteria, side=8)
    assert [c["index"] for c in result["copies"]] == [0]
    copy = result["copies"][0]
    assert copy["training"] == 4 and copy["distance"] == pytest.approx(0.1)
    assert copy["ratio"] == pytest.approx(0.1 / 1.3) and copy["similarity"] == pytest.approx(0.9998)
    assert result["share"] == 0.5 and result["count"] == 1
    assert result["ci95"] == pytest.approx(list(wilson_interval(1, 2)))
    assert result["criteria"]["similarity"]["count"] == 1
    assert result["nearest"]["ratio_quantiles"]["max"] == pytest.approx(0.75)
    by_features = memo.cell_memorization(pixels, features, memo.Criteria(criterion="similarity"), side=8)
    assert [(c["index"], c["training"]) for c in by_features["copies"]] == [(0, 40)]  # the feature space's nearest
    with pytest.raises(InputError, match="similarity criterion needs"):
        memo.cell_memorization(pixels, None, memo.Criteria(criterion="similarity"), side=8)


def test_criteria_are_checked() -> None:
    with pytest.raises(InputError, match="criterion must be one of"):
        BenchConfig(memorization={"criterion": "sscd"})
    with pytest.raises(InputError, match="thresholds"):
        memo.Criteria(ratio=1.5)
    with pytest.raises(InputError, match="memorization options are criterion, ratio, similarity, neighbours"):
        memo.Criteria.from_options({"ratios": 0.2})


def _planted_folder(root: Path) -> Path:
    """A ``folder:`` generator's one cell (static @ 1): held-out digits (novel to the training set) with the
    planted copies of training digits among them, in the layout the folder generator reads."""
    train, _ = digits.load_split("train")
    heldout, heldout_labels = digits.load_split("heldout")
    rng = np.random.default_rng(7)
    cell = root / "static" / "1.0"
    cell.mkdir(parents=True)
    rows = []
    for i in range(N):
        image = heldout[i]
        if i in EXACT:
            image = train[EXACT[i]]
        elif i in NOISY:
            image = np.clip(train[NOISY[i]].astype(float) + rng.normal(0, 10, (8, 8)), 0, 255).astype(np.uint8)
        elif i in TONED:
            image = np.clip(train[TONED[i]] * 0.8 + 30, 0, 255).astype(np.uint8)
        rgb = np.repeat(image[..., None], 3, axis=-1)
        Image.fromarray(rgb).save(cell / f"{i:03d}.png")
        rows.append({"path": f"{i:03d}.png", "seed": i, "label": int(heldout_labels[i] if i not in PLANTED else 0)})
    with open(cell / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "seed", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory) -> tuple[Path, BenchConfig]:
    root = _planted_folder(tmp_path_factory.mktemp("planted") / "gen")
    manifest = (root / "static" / "1.0" / "manifest.csv").read_text(encoding="utf-8").splitlines()
    labels = [int(r["label"]) for r in csv.DictReader(manifest)]
    config = BenchConfig(
        generator=f"folder:{root}", schedules=({"name": "static"},), scales=(1.0,), n=N, steps=4, bootstrap=0,
        baseline=False, labels=tuple(labels),
    )  # fmt: skip
    out = tmp_path_factory.mktemp("planted") / "run"
    run_bench(config, out, progress=False)  # first without --training: the copies are looked for on resume
    return out, config


def test_planted_copies_are_found_exactly_and_a_finished_run_gains_them_on_resume(planted_run) -> None:
    out, config = planted_run
    before = json.loads((out / "bench-results.json").read_text())["data"]
    assert before["memorization"] is None and "memorization" not in before["cells"][0]
    path = run_bench(
        BenchConfig(**{**config.to_dict(), "training": "builtin:digits-train"} | _tuples(config)),
        out, resume=True, progress=False,
    )  # fmt: skip
    data = json.loads(Path(path).read_text())["data"]
    cell = data["cells"][0]
    assert cell["metrics"] == before["cells"][0]["metrics"]  # nothing rescored
    found = cell["memorization"]
    assert {c["index"]: c["training"] for c in found["copies"]} == {
        i: f"digits-train/{j:04d}" for i, j in PLANTED.items()
    }
    exact = [c for c in found["copies"] if c["index"] in EXACT]
    assert all(c["distance"] == pytest.approx(0.0, abs=1e-5) and c["ratio"] < 1e-4 for c in exact)
    assert found["count"] == len(PLANTED) and found["share"] == pytest.approx(len(PLANTED) / N)
    assert found["ci95"] == pytest.approx(list(wilson_interval(len(PLANTED), N)))
    assert found["criteria"]["ratio"]["criterion"].startswith("ratio: pixel distance (8x8 grey")
    assert data["memorization"]["training"] == {
        "spec": "builtin:digits-train", "source": data["memorization"]["training"]["source"], "images": 1500,
        "refused": 0, "search": "exact",
    }  # fmt: skip
    assert data["memorization"]["thresholds"]["ratio"] == 0.25
    assert found["pairs_png"] and "_closest_training" not in found
    kept = json.loads((out / "cells" / "static" / "1.0" / memo.MemorizationCheck.FILE).read_text())
    assert kept["result"]["copies"] == found["copies"]


def test_a_resumed_run_reads_no_training_image_again(planted_run, monkeypatch) -> None:
    out, config = planted_run
    again = BenchConfig(**{**config.to_dict(), "training": "builtin:digits-train"} | _tuples(config))
    first = json.loads(Path(run_bench(again, out, resume=True, progress=False)).read_text())["data"]

    def only_the_size_probe(spec, info, chunk=256, part=None):
        """The first 64 training images set the pixel side; any other read of the training set fails."""
        if chunk != 64:
            raise AssertionError("the training set was read again")
        yield np.arange(1), [np.zeros((8, 8, 3), np.uint8)]

    monkeypatch.setattr(memo, "training_chunks", only_the_size_probe)
    second = json.loads(Path(run_bench(again, out, resume=True, progress=False)).read_text())["data"]
    assert second["cells"][0]["memorization"] == first["cells"][0]["memorization"]
    assert second["memorization"]["training"]["images"] == 1500


def test_the_similarity_criterion_lists_the_exact_copies(planted_run, tmp_path) -> None:
    out, config = planted_run
    options = {"criterion": "similarity", "similarity": 0.99999}
    path = run_bench(
        BenchConfig(**{**config.to_dict(), "training": "builtin:digits-train", "memorization": options}
                    | _tuples(config)),
        out, resume=True, progress=False,
    )  # fmt: skip
    found = json.loads(Path(path).read_text())["data"]["cells"][0]["memorization"]
    assert {c["index"] for c in found["copies"]} >= set(EXACT)
    assert all(c["similarity"] >= 0.99999 for c in found["copies"])
    assert found["criterion"].startswith("similarity:")


def test_a_training_set_of_many_sizes_finds_a_copy_kept_at_another_size(planted_run, tmp_path) -> None:
    """Training images of several sizes each go to the pixel space and the extractor from their own size, so
    a training image kept at 3x the generated size (each pixel a 3 x 3 block) is the generated image exactly:
    distance 0, similarity 1 (resizing it to the first training image's size first would blur it)."""
    out, config = planted_run
    train, _ = digits.load_split("train")
    folder = tmp_path / "training"
    folder.mkdir()
    for j in range(20):  # the first training images are 8 x 8: other sizes are not brought to theirs
        Image.fromarray(train[1000 + j]).save(folder / f"a-{j:02d}.png")
    for i, j in EXACT.items():
        Image.fromarray(np.kron(train[j], np.ones((3, 3), dtype=np.uint8))).save(folder / f"b-copy-{i:03d}.png")
    assert pixel_vectors_equal(np.kron(train[11], np.ones((3, 3), dtype=np.uint8)), train[11])
    options = {"criterion": "similarity", "similarity": 0.99999}
    for memorization in (None, options):
        extra = {"training": str(folder)} | ({"memorization": memorization} if memorization else {})
        path = run_bench(
            BenchConfig(**{**config.to_dict(), **extra} | _tuples(config)), out, resume=True, progress=False
        )
        found = json.loads(Path(path).read_text())["data"]["cells"][0]["memorization"]
        copies = {c["index"]: c for c in found["copies"] if c["index"] in EXACT}
        assert {i: c["training"] for i, c in copies.items()} == {i: f"b-copy-{i:03d}.png" for i in EXACT}
        assert all(c["distance"] == pytest.approx(0.0, abs=1e-5) for c in copies.values())
        if memorization:
            assert all(c["similarity"] == pytest.approx(1.0, abs=1e-6) for c in copies.values())


def pixel_vectors_equal(big: np.ndarray, small: np.ndarray) -> bool:
    """Whether two images, each brought from its own size, are one vector in the pixel space."""
    return bool(np.allclose(*memo.pixel_vectors([big, small]), atol=1e-6))


def _tuples(config: BenchConfig) -> dict:
    return {"schedules": config.schedules, "scales": config.scales, "labels": config.labels}


def test_the_embedded_generator_is_checked_against_its_training_digits_by_default() -> None:
    from audit.bench.cli import _bench_config
    from audit.cli import build_parser

    def config(*extra: str) -> BenchConfig:
        return _bench_config(build_parser().parse_args(["bench", *extra]))

    assert config().training == "builtin:digits-train"
    assert config("--training", "none").training is None
    assert config("--generator", "folder:/data/gen").training is None
    assert config("--generator", "folder:/data/gen", "--training", "/data/train").training == "/data/train"
    assert config("--copy-criterion", "similarity", "--copy-ratio", "0.2").memorization == {
        "criterion": "similarity", "ratio": 0.2,
    }  # fmt: skip
