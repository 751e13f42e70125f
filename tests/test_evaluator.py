"""The one-pass evaluator: features once per image, every metric from them, sound intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audit.errors import InputError
from audit.features import FeatureExtractor, get_extractor
from audit.metrics import density_coverage, fid, inception_score, precision_recall, vendi_score
from audit.metrics.evaluator import FeatureCache, evaluate
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


def test_bootstrapped_points_lie_inside_their_intervals(sets) -> None:
    real, fake, labels = sets
    result = evaluate(real, fake, get_extractor("embedded"), labels=labels, bootstrap=200, seed=1)
    with_ci = {k for k, v in result.items() if isinstance(v, dict) and v.get("ci95")}
    assert with_ci == {"fid", "precision", "density", "class_adherence"}
    for name in with_ci:
        lo, hi = result[name]["ci95"]
        assert lo <= result[name]["value"] <= hi, name
    for name in ("recall", "coverage", "vendi", "inception_score", "kid"):
        assert result[name]["ci95"] is None  # biased under resampling: no interval is claimed


def test_cache_reuses_features_across_calls_and_files(sets, tmp_path: Path) -> None:
    real, fake, _ = sets
    path = tmp_path / "features.npz"
    ext = CountingExtractor()
    cache = FeatureCache(path)
    first = evaluate(real, fake, ext, cache=cache, bootstrap=0)
    cache.save()
    assert ext.seen == cache.extracted == len(real) + len(fake)
    evaluate(real, fake[:200], ext, cache=cache, bootstrap=0)  # another cell, same reference
    assert ext.seen == len(real) + len(fake)
    reloaded = FeatureCache(path)
    again = evaluate(real, fake, ext, cache=reloaded, bootstrap=0)
    assert ext.seen == len(real) + len(fake) and reloaded.extracted == 0
    assert again["fid"]["value"] == first["fid"]["value"]
    other = FeatureCache.key("other-extractor", fake[0])
    assert other != FeatureCache.key(ext.id, fake[0])  # the extractor id (with preprocessing) is in the key


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
