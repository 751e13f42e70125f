"""The one-pass evaluator: features once per image, every metric from them, sound intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audit.errors import InputError
from audit.features import FeatureExtractor, get_extractor
from audit.metrics import density_coverage, fid, inception_score, precision_recall, vendi_score
from audit.metrics.evaluator import FeatureCache, evaluate, extract_all
from audit.zoo import ddpm, digits, registry


class CountingExtractor:
    """Wraps the embedded extractor and counts the images it is asked to process."""

    def __init__(self) -> None:
        self.inner = get_extractor("embedded")
        self.id, self.outputs = self.inner.id, self.inner.outputs
        self.seen = 0

    def __call__(self, images):
        self.seen += len(images)
        return self.inner(images)

    def encode_texts(self, texts):
        return self.inner.encode_texts(texts)


@pytest.fixture(scope="module")
def sets() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    real = np.repeat(digits.load_split("heldout")[0][..., None], 3, axis=-1)
    labels = np.repeat(np.arange(10), 30)
    fake = ddpm.sample(registry.load("digits-ddpm"), labels, steps=20, seed=0)
    return real, np.repeat(fake[..., None], 3, axis=-1), labels


def test_every_metric_from_one_pass_equals_the_direct_call(sets) -> None:
    real, fake, labels = sets
    ext = CountingExtractor()
    assert isinstance(ext, FeatureExtractor)
    captions = [ext.inner.label_caption(int(label)) for label in labels]
    result = evaluate(real, fake, ext, labels=labels, captions=captions, bootstrap=20)
    assert ext.seen == len(real) + len(fake)  # one feature pass per image, for all ten metrics
    f_real, f_fake = ext.inner(real), ext.inner(fake)
    assert result["fid"]["value"] == pytest.approx(fid(f_real["features"], f_fake["features"]), rel=1e-9)
    assert result["precision"]["value"] == precision_recall(f_real["features"], f_fake["features"])[0]
    assert result["recall"]["value"] == precision_recall(f_real["features"], f_fake["features"])[1]
    assert result["coverage"]["value"] == density_coverage(f_real["features"], f_fake["features"])[1]
    assert result["inception_score"]["value"] == pytest.approx(inception_score(f_fake["probs"])[0], rel=1e-9)
    assert result["vendi"]["value"] == pytest.approx(vendi_score(f_fake["features"]), rel=1e-9)
    assert result["class_adherence"]["value"] >= 0.9
    assert 0 < result["clip_score"]["value"] <= 100
    assert (result["n_real"], result["n_fake"], result["extractor"]) == (297, 300, ext.id)


def test_every_figure_has_an_interval_around_its_point(sets) -> None:
    real, fake, labels = sets
    result = evaluate(real, fake, get_extractor("embedded"), labels=labels, bootstrap=200, seed=1)
    methods = {k: v["ci_method"] for k, v in result.items() if isinstance(v, dict) and "value" in v}
    assert methods == {
        "fid": "bootstrap",
        "fd_clip": "bootstrap",
        "precision": "bootstrap",
        "density": "bootstrap",
        "class_adherence": "bootstrap",
        "recall": "half-sample",
        "coverage": "half-sample",
        "vendi": "half-sample",
        "inception_score": "half-sample",
        "kid": "half-sample",
    }
    for name in methods:
        lo, hi = result[name]["ci95"]
        assert lo <= result[name]["value"] <= hi, name
        if name != "class_adherence":  # adherence can be exactly 1.0 in every draw
            assert hi > lo, name


class FeaturesAreTheImage:
    """An extractor whose features are the input rows themselves (for statistical checks)."""

    id = "identity"
    outputs = ("features",)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return {"features": np.asarray(images, dtype=np.float64).reshape(len(images), -1)}


def test_half_sample_intervals_match_the_spread_over_fresh_samples() -> None:
    """Calibration: the half-sample interval of recall/coverage/Vendi/KID on one generated set should be
    as wide as the spread of the figure over independent generated sets from the same distribution."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 8))
    fresh = {name: [] for name in ("recall", "coverage", "vendi", "kid")}
    widths = {name: [] for name in fresh}
    for _ in range(30):
        fake = rng.normal(loc=0.3, size=(300, 8))
        r = evaluate(real, fake, FeaturesAreTheImage(), bootstrap=60, seed=int(rng.integers(1 << 30)))
        for name in fresh:
            fresh[name].append(r[name]["value"])
            widths[name].append(r[name]["ci95"][1] - r[name]["ci95"][0])
    for name in fresh:
        expected = 2 * 1.96 * np.std(fresh[name], ddof=1)  # width of a 95% normal interval
        ratio = np.mean(widths[name]) / expected
        assert 0.6 < ratio < 1.6, (name, ratio)


def test_kid_half_sample_kernel_sums_equal_the_unbiased_mmd() -> None:
    from audit.metrics.resampling import Resampler

    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(40, 5)), rng.normal(size=(30, 5)) + 0.5
    idx = np.array([0, 3, 4, 9, 17, 22, 29])
    f = fake[idx]

    def k(a, b):  # cubic polynomial kernel, written out
        return (a @ b.T / 5 + 1.0) ** 3

    m, n = len(f), len(real)
    expected = (
        (k(real, real).sum() - np.trace(k(real, real))) / (n * (n - 1))
        + (k(f, f).sum() - np.trace(k(f, f))) / (m * (m - 1))
        - 2 * k(real, f).mean()
    )
    half = Resampler({"features": real}, {"features": fake}, None, None).half(idx, seed=0)
    assert half["kid"] == pytest.approx(expected, rel=1e-12)


def test_precomputed_draws_equal_the_metric_functions(sets) -> None:
    """The resampler's shortcuts (per-image means, the reference's covariance root, indexed distance
    matrices) give the same numbers as the standalone metrics on the same index set."""
    from audit.metrics import kid as kid_fn
    from audit.metrics.resampling import Resampler

    real, fake, labels = sets
    ext = get_extractor("embedded")
    r, f = ext(real), ext(fake)
    texts = ext.encode_texts([ext.label_caption(int(x)) for x in labels])
    res = Resampler(r, f, texts, labels)
    idx = np.random.default_rng(5).integers(0, len(fake), len(fake))
    draw = res.bootstrap(idx)
    fi = f["features"][idx]
    assert draw["fid"] == pytest.approx(fid(r["features"], fi), rel=1e-6)  # eigh route vs sqrtm route
    assert draw["precision"] == pytest.approx(precision_recall(r["features"], fi, k=3)[0], abs=1e-12)
    assert draw["density"] == pytest.approx(density_coverage(r["features"], fi, k=5)[0], rel=1e-12)
    assert draw["class_adherence"] == pytest.approx((f["probs"][idx].argmax(1) == labels[idx]).mean())
    half = np.random.default_rng(6).permutation(len(fake))[:150]
    draw = res.half(half, seed=0)
    fh = f["features"][half]
    assert draw["recall"] == pytest.approx(precision_recall(r["features"], fh, k=3)[1], abs=1e-12)
    assert draw["coverage"] == pytest.approx(density_coverage(r["features"], fh, k=5)[1], abs=1e-12)
    assert draw["vendi"] == pytest.approx(vendi_score(fh), rel=1e-9)
    # KID over all pairs of the half equals the mean over many random equal subsets (unbiased MMD)
    assert draw["kid"] == pytest.approx(kid_fn(r["features"], fh, subsets=400, subset_size=150, seed=0)[0], abs=2e-3)


def _evaluated_and_saved(sets, path: Path) -> tuple[CountingExtractor, FeatureCache, dict]:
    """One evaluation through a cache at ``path``, saved: (the extractor, the cache, the result)."""
    real, fake, _ = sets
    ext = CountingExtractor()
    cache = FeatureCache(path)
    first = evaluate(real, fake, ext, cache=cache, bootstrap=0)
    cache.save()
    return ext, cache, first


def test_cache_reuses_features_across_calls_and_files(sets, tmp_path: Path) -> None:
    real, fake, _ = sets
    path = tmp_path / "features.npz"
    ext, cache, first = _evaluated_and_saved(sets, path)
    assert ext.seen == cache.extracted == len(real) + len(fake)
    evaluate(real, fake[:200], ext, cache=cache, bootstrap=0)  # another cell, same reference
    assert ext.seen == len(real) + len(fake)
    reloaded = FeatureCache(path)
    again = evaluate(real, fake, ext, cache=reloaded, bootstrap=0)
    assert ext.seen == len(real) + len(fake) and reloaded.extracted == 0
    assert again["fid"]["value"] == first["fid"]["value"]
    other = FeatureCache.key("other-extractor", fake[0])
    assert other != FeatureCache.key(ext.id, fake[0])  # the extractor id (with preprocessing) is in the key


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 cut short", b"<html>not a cache</html>", "truncated"])
def test_a_damaged_cache_file_is_ignored_then_replaced(sets, tmp_path: Path, caplog, damage) -> None:
    real, fake, _ = sets
    path = tmp_path / "features.npz"
    ext, _, first = _evaluated_and_saved(sets, path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2] if damage == "truncated" else damage)
    damaged = FeatureCache(path)  # a warning, not an error: the cache is derived data
    assert damaged._rows == {} and "is unreadable" in caplog.text
    again = evaluate(real, fake, ext, cache=damaged, bootstrap=0)
    assert damaged.extracted == len(real) + len(fake)  # everything computed again
    assert again["fid"]["value"] == first["fid"]["value"]
    damaged.save()
    assert len(FeatureCache(path)._rows) == len(real) + len(fake)  # and the file whole again


def test_mismatched_labels_and_too_few_samples(sets) -> None:
    real, fake, labels = sets
    ext = get_extractor("embedded")
    with pytest.raises(InputError, match="299 labels for 300 images"):
        evaluate(real, fake, ext, labels=labels[:-1], bootstrap=0)
    with pytest.raises(InputError, match="more fake samples than feature dimensions"):
        evaluate(real, fake[:50], ext, bootstrap=0)
    with pytest.raises(InputError, match="no images to extract features from"):
        evaluate(real[:0], fake, ext, bootstrap=0)
    with pytest.raises(InputError, match="unknown feature extractor"):
        get_extractor("inception-v9")


def test_streamed_chunks_give_the_features_and_metrics_of_one_call(sets) -> None:
    """extract_all over chunks (the bench streams references and cells 256 images at a time) gives
    bit-identical features, hence identical metrics, to one extraction call over every image."""
    from audit.metrics.evaluator import evaluate_features

    real, fake, labels = sets
    ext = get_extractor("embedded")
    whole = FeatureCache().extract(ext, fake)
    streamed = extract_all(FeatureCache(), ext, (fake[i : i + 128] for i in range(0, len(fake), 128)))
    assert whole.keys() == streamed.keys()
    assert all(np.array_equal(whole[k], streamed[k]) for k in whole)
    real_f = FeatureCache().extract(ext, real)
    one = evaluate(real, fake, ext, labels=labels, bootstrap=10)
    assert evaluate_features(real_f, streamed, ext, labels=labels, bootstrap=10) == one
    with pytest.raises(InputError, match="no images to extract features from"):
        extract_all(FeatureCache(), ext, iter(()))


def test_a_streamed_reference_comes_in_chunks_and_names_what_it_skipped(tmp_path, monkeypatch) -> None:
    from PIL import Image

    from audit.bench.run import reference_chunks
    from audit.metrics import evaluator

    monkeypatch.setattr(evaluator, "STREAM_CHUNK", 4)
    for i in range(10):
        Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(tmp_path / f"{i:02d}.png")
    (tmp_path / "03.png").write_bytes(b"broken")
    info: dict = {}
    chunks = list(reference_chunks(str(tmp_path), info))
    assert [len(c) for c in chunks] == [4, 4, 1] and info["n"] == 9 and info["sizes"] == 1
    assert all(isinstance(c, np.ndarray) and c.shape[1:] == (8, 8, 3) for c in chunks)
    assert info["refused"] == [{"path": "03.png", "reason": "not_an_image"}]


def test_a_reference_of_many_sizes_gives_each_image_the_features_it_has_alone(tmp_path, monkeypatch) -> None:
    """A reference folder whose images differ in size (a COCO-like set) is extracted as clean-fid does: each
    image resized once from its own size, so a mixed chunk gives every image exactly its features alone."""
    from PIL import Image

    from audit.bench.run import reference_chunks
    from audit.metrics import evaluator

    monkeypatch.setattr(evaluator, "STREAM_CHUNK", 4)
    rng = np.random.default_rng(0)
    sizes = [(8, 8), (9, 8), (16, 12), (8, 8), (31, 17), (8, 8)]
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"{i:02d}.png")
    info: dict = {}
    chunks = list(reference_chunks(str(tmp_path), info))
    assert [len(c) for c in chunks] == [4, 2] and isinstance(chunks[0], list) and info["sizes"] == 4
    assert [im.shape[:2] for c in chunks for im in c] == [(h, w) for w, h in sizes]
    ext = get_extractor("embedded")
    cache = FeatureCache()
    streamed = extract_all(cache, ext, iter(chunks))
    images = [im for c in chunks for im in c]
    # the pixels the models see are each image's own preprocessing, bit for bit; the features agree up to
    # the float sums of another batch size
    np.testing.assert_array_equal(
        digits.to_unit_grey(images), np.concatenate([digits.to_unit_grey(im[None]) for im in images])
    )
    alone = [ext(im[None]) for im in images]
    for name in ext.outputs:
        np.testing.assert_allclose(streamed[name], np.concatenate([a[name] for a in alone]), rtol=1e-5, atol=1e-6)
    assert cache.extracted == len(sizes)
    assert cache.extract(ext, chunks[0])["features"].shape == (4, 128) and cache.extracted == len(sizes)  # cached
