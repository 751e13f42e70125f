"""Metrics against reference implementations on the same features, and cases worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from audit.errors import InputError
from audit.metrics import clip_score, density_coverage, inception_score, kid, manifold, precision_recall, vendi_score


@pytest.fixture
def feats(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    real = rng.normal(size=(120, 12))
    fake = rng.normal(loc=0.2, scale=1.1, size=(120, 12))
    return real, fake


def test_kid_matches_torchmetrics_poly_mmd(feats: tuple[np.ndarray, np.ndarray]) -> None:
    torch = pytest.importorskip("torch")
    tm_kid = pytest.importorskip("torchmetrics.image.kid", reason="torchmetrics is the reference")
    real, fake = feats
    ref = float(tm_kid.poly_mmd(torch.from_numpy(real), torch.from_numpy(fake), degree=3, coef=1.0))
    mean, std = kid(real, fake, subsets=1, subset_size=len(real))  # one subset = both whole sets
    assert mean == pytest.approx(ref, rel=1e-9) and std == 0.0
    # several subsets: the same draws, scored by the reference one by one
    rng = np.random.default_rng(7)
    draws = [(rng.choice(120, 40, replace=False), rng.choice(120, 40, replace=False)) for _ in range(5)]
    refs = [float(tm_kid.poly_mmd(torch.from_numpy(real[a]), torch.from_numpy(fake[b]))) for a, b in draws]
    mean, std = kid(real, fake, subsets=5, subset_size=40, seed=7)
    assert mean == pytest.approx(np.mean(refs), rel=1e-9) and std == pytest.approx(np.std(refs), rel=1e-9)


def test_kid_is_near_zero_for_one_distribution(rng: np.random.Generator) -> None:
    x = rng.normal(size=(1000, 8))
    mean, std = kid(x[:500], x[500:], subsets=20, subset_size=200)
    assert abs(mean) < 3 * std + 1e-3  # unbiased: no small-sample offset


@pytest.mark.filterwarnings("ignore:Metric `InceptionScore` will save:UserWarning")
@pytest.mark.filterwarnings("ignore:.*degrees of freedom is <= 0:UserWarning")  # its std over 1 split
def test_inception_score_matches_torchmetrics(rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.image.inception", reason="torchmetrics is the reference")
    logits = rng.normal(scale=3.0, size=(200, 10))

    class Identity(torch.nn.Module):
        def forward(self, x):
            return x

    metric = tm.InceptionScore(feature=Identity(), splits=1)
    metric.update(torch.from_numpy(logits))
    ref_mean, _ = metric.compute()
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    mean, std = inception_score(probs, splits=1)
    assert mean == pytest.approx(float(ref_mean), rel=1e-6) and std == 0.0


def test_inception_score_by_hand() -> None:
    confident = np.eye(10)[np.arange(1000) % 10]  # every sample certain, classes balanced
    # one split: KL(onehot || uniform) = log 10 for every sample, so IS = 10 exactly
    assert inception_score(confident, splits=1) == pytest.approx((10.0, 0.0), rel=1e-9)
    # ten shuffled splits: each split's class histogram is only roughly balanced, so 9 < IS < 10
    mean, std = inception_score(confident, splits=10)
    assert 9.0 < mean < 10.0 and std > 0
    # sorted by class, unshuffled splits would each hold one class (IS 1); shuffling restores ~10
    sorted_confident = np.eye(10)[np.repeat(np.arange(10), 100)]
    assert inception_score(sorted_confident, splits=10)[0] > 9.0
    assert inception_score(np.full((100, 10), 0.1), splits=5) == pytest.approx((1.0, 0.0))


def test_clip_score_by_hand() -> None:
    img = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    txt = np.array([[1.0, 1.0], [0.0, 5.0], [-1.0, 0.0]])
    # cos = 1/sqrt(2), 1, -1 (clipped to 0)
    assert clip_score(img, txt) == pytest.approx(100 * (2**-0.5 + 1.0 + 0.0) / 3)
    with pytest.raises(InputError, match="3 images and 2 texts"):
        clip_score(img, txt[:2])


@pytest.mark.parametrize("block", [7, 1024])
def test_prdc_matches_the_reference(
    feats: tuple[np.ndarray, np.ndarray], block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    prdc = pytest.importorskip("prdc", reason="the prdc package is the reference")
    monkeypatch.setattr(manifold, "_BLOCK", block)  # row-block computation must not change the result
    real, fake = feats
    ref3 = prdc.compute_prdc(real, fake, nearest_k=3)
    ref5 = prdc.compute_prdc(real, fake, nearest_k=5)
    p, r = precision_recall(real, fake, k=3)
    d, c = density_coverage(real, fake, k=5)
    assert (p, r) == pytest.approx((ref3["precision"], ref3["recall"]), abs=1e-12)
    assert (d, c) == pytest.approx((ref5["density"], ref5["coverage"]), abs=1e-12)


def test_manifold_metrics_by_hand() -> None:
    real = np.array([[0.0], [1.0], [2.0], [3.0]])  # 1-NN radius 1 for every point
    fake = np.array([[0.5], [10.0]])
    p, r = precision_recall(real, fake, k=1)
    assert p == 0.5  # 0.5 is inside; 10 is not
    # fake radii: distance 9.5 each, so every real point is inside a fake ball
    assert r == 1.0
    d, c = density_coverage(real, fake, k=1)
    assert d == pytest.approx(1.0)  # 0.5 lies in 2 balls (of 0 and 1), 10 in none: (2 + 0) / 2 / 1
    assert c == 0.5  # nearest fake to 0 and 1 is 0.5 < 1; to 2 and 3 it is 1.5 and 2.5


def test_vendi_matches_the_reference_and_hand_cases(rng: np.random.Generator) -> None:
    vendi = pytest.importorskip("vendi_score.vendi", reason="the vendi-score package is the reference")
    x = rng.normal(size=(150, 20))
    assert vendi_score(x) == pytest.approx(vendi.score_dual(x), rel=1e-9)
    assert vendi_score(np.tile([[1.0, 2.0, 3.0]], (50, 1))) == pytest.approx(1.0)
    assert vendi_score(np.eye(6) * 3.0) == pytest.approx(6.0)


def test_too_few_samples_and_bad_input_are_clear_errors(rng: np.random.Generator) -> None:
    x = rng.normal(size=(10, 4))
    with pytest.raises(InputError, match="subset_size must be between 2 and the smaller set's size"):
        kid(x, x, subset_size=1000)
    with pytest.raises(InputError, match="Inception Score needs at least 10 generated samples"):
        inception_score(np.full((5, 3), 1 / 3), splits=10)
    with pytest.raises(InputError, match="class probabilities"):
        inception_score(x, splits=2)
    with pytest.raises(InputError, match="precision/recall needs at least 4 real samples"):
        precision_recall(x[:3], x, k=3)
    with pytest.raises(InputError, match="differ in dimension"):
        density_coverage(x, rng.normal(size=(10, 5)))
    with pytest.raises(InputError, match="all zeros"):
        vendi_score(np.zeros((3, 2)))
    with pytest.raises(InputError, match="NaN"):
        vendi_score(np.full((3, 2), np.nan))
    with pytest.raises(InputError, match="2-D"):
        clip_score(np.ones(3), np.ones(3))


@pytest.mark.parametrize("neighbours", [32, 4])
def test_sparse_half_sample_recall_and_coverage_equal_the_direct_metrics(neighbours, monkeypatch) -> None:
    """Above the dense limit, half-sample recall and coverage come from neighbour lists built once; with
    4 neighbours the exact fallback (fewer than 3 listed neighbours in the half) runs often."""
    from audit.metrics import neighbour_passes
    from audit.metrics.blocks import block_labels

    monkeypatch.setattr(neighbour_passes, "NEIGHBOURS", neighbours)
    monkeypatch.setattr(neighbour_passes, "ROWS", 64)  # several row blocks per pass
    rng = np.random.default_rng(7)
    real = rng.normal(size=(300, 6))
    fake = rng.normal(0.2, 1.1, size=(240, 6))
    passes = neighbour_passes.NeighbourPasses(real, fake, block_labels(240, seed=0, blocks=32))
    assert passes.recall == precision_recall(real, fake, k=3)[1]
    assert passes.coverage == density_coverage(real, fake, k=5)[1]
    for _ in range(8):
        idx = rng.permutation(240)[:120]
        recall, coverage = passes.sparse.half(idx)
        assert recall == precision_recall(real, fake[idx], k=3)[1]
        assert coverage == density_coverage(real, fake[idx], k=5)[1]


def test_evaluate_above_the_dense_limit_gives_the_dense_values(monkeypatch) -> None:
    """The same features through the dense matrices and through the float32 passes: the same point values
    (KID's and Vendi's to float32 rounding), the same image-by-image intervals, and block intervals of
    the same width for the blocked metrics."""
    from audit.metrics import resampling
    from audit.metrics.evaluator import evaluate

    class Extractor:
        id = "identity"

        def __call__(self, images):
            return {"features": images.reshape(len(images), -1).astype(np.float64)}

    rng = np.random.default_rng(3)
    real = rng.normal(size=(400, 2, 2, 2)).astype(np.float32)
    fake = rng.normal(0.3, 1.0, size=(320, 2, 2, 2)).astype(np.float32)
    dense = evaluate(real, fake, Extractor(), bootstrap=200, seed=1, kid_subset_size=50)
    monkeypatch.setattr(resampling, "DENSE_LIMIT", 10)
    large = evaluate(real, fake, Extractor(), bootstrap=200, seed=1, kid_subset_size=50)
    for name in ("recall", "coverage", "precision", "density"):
        assert large[name] == dense[name], name
    for name in ("fid", "kid"):
        assert large[name]["value"] == dense[name]["value"], name
    assert large["vendi"]["value"] == pytest.approx(dense["vendi"]["value"], rel=1e-12)
    assert large["fid"]["ci_method"] == "block-bootstrap" and large["kid"]["ci_method"] == "block-half-sample"
    for name in ("fid", "vendi", "kid"):
        width = np.diff(large[name]["ci95"])[0] / np.diff(dense[name]["ci95"])[0]
        assert 0.6 < width < 1.6, (name, width)
