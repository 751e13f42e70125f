"""The deepfake check's parts: scorers against hand computations, the estimator contract, saving,
metrics worked by hand, perturbations, shortcut warnings and the fairness breakdown."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import norm

from audit.errors import InputError, WeightsError
from detectors.detector import ReconstructionDetector
from detectors.evaluation import evaluate_scores, perturbed, point_metrics, shortcut_warnings, tpr_at_fpr
from detectors.scorers import (
    DiffusionLossScorer,
    InversionScorer,
    class_search_timesteps,
    elbo_weights,
    loss_timesteps,
)

# scikit-learn's LogisticRegression run to the optimum, the reference for the detector's exact fits
EXACT = {"solver": "newton-cholesky", "tol": 1e-12, "max_iter": 100_000}


def test_elbo_weights_and_timesteps_worked_by_hand() -> None:
    ab = np.cumprod([0.9, 0.8])  # betas 0.1, 0.2: alphabar 0.9, 0.72
    # t=0: 0.1 / (2 * 0.9 * 0.1) = 0.5556; t=1: 0.2 / (2 * 0.8 * 0.28) = 0.4464
    assert elbo_weights(ab, [0, 1]) == pytest.approx([0.1 / 0.18, 0.2 / 0.448])
    assert loss_timesteps(4, 1000, "log") == [1, 8, 71, 600]  # geomspace(1, 600, 4) = 1, 8.43, 71.1, 600
    assert loss_timesteps(4, 1000, "even") == [125, 375, 625, 875]
    assert loss_timesteps(64, 1000)[:3] == [1, 2, 3]  # forced distinct where the geometric steps round together
    with pytest.raises(InputError, match="K must be between"):
        loss_timesteps(0, 1000)


@pytest.fixture(scope="module")
def digits_model():
    from detectors.noise_model import load_noise_model

    return load_noise_model("embedded:digits-ddpm")


@pytest.fixture(scope="module")
def digits_rgb() -> np.ndarray:
    from audit.zoo import digits

    real, _ = digits.load_split("heldout")
    return np.repeat(real[:5, ..., None], 3, axis=-1)


def test_diffusion_loss_equals_one_forward_per_timestep_by_hand(digits_model, digits_rgb) -> None:
    import torch

    scorer = DiffusionLossScorer(k=3, weighting="none", seed=7)
    got = scorer.features(digits_model, digits_rgb)
    assert got.shape == (5, 6)
    x0 = torch.from_numpy(digits_rgb[..., 0].astype(np.float32) / 255 * 2 - 1)[:, None]
    for j, t in enumerate(loss_timesteps(3, 1000)):
        eps = torch.randn((1, 8, 8), generator=torch.Generator().manual_seed(7 + j))
        ab = float(digits_model.alphas_cumprod[t])
        xt = ab**0.5 * x0 + (1 - ab) ** 0.5 * eps[None]
        with torch.no_grad():
            pred = digits_model.eps(xt, torch.full((5,), t))
        np.testing.assert_allclose(got[:, j], ((pred - eps) ** 2).mean(dim=(1, 2, 3)).numpy(), rtol=1e-4)
        np.testing.assert_allclose(got[:, 3 + j], (pred**2).mean(dim=(1, 2, 3)).numpy(), rtol=1e-4)
    weighted = DiffusionLossScorer(k=3, weighting="elbo", seed=7, with_norms=False).features(digits_model, digits_rgb)
    np.testing.assert_allclose(
        weighted, got[:, :3] * elbo_weights(digits_model.alphas_cumprod, [1, 24, 600]), rtol=1e-6
    )


def test_diffusion_loss_does_not_depend_on_the_batch(digits_model, digits_rgb) -> None:
    scorer = DiffusionLossScorer(k=4, batch_size=8)  # two images per forward
    whole = scorer.features(digits_model, digits_rgb)
    parts = np.concatenate(
        [scorer.features(digits_model, digits_rgb[:1]), scorer.features(digits_model, digits_rgb[1:])]
    )
    np.testing.assert_allclose(whole, parts, rtol=1e-5)
    assert scorer.nfe_per_image() == 4 and DiffusionLossScorer(k=4, n_noise=3).nfe_per_image() == 12


def test_class_evidence_equals_a_loop_over_classes_by_hand(digits_model, digits_rgb) -> None:
    """Every class at the search timesteps, the best class (lowest summed error) at all K, the guidance
    direction against the null class: recomputed one image, one class and one timestep at a time."""
    import torch

    k, seed = 6, 3
    scorer = DiffusionLossScorer(k=k, weighting="none", seed=seed, classes=True, batch_size=80)
    calls = []
    forward = digits_model.eps

    def counting(x, t, labels=None):
        calls.append(len(x))
        return forward(x, t, labels)

    digits_model.eps = counting
    try:
        got = scorer.features(digits_model, digits_rgb)
    finally:
        del digits_model.eps
    ts = loss_timesteps(k, 1000)
    search = class_search_timesteps(ts)
    assert search == [ts[3], ts[5]] and scorer.nfe_per_image(digits_model) == k + 10 * 2 + k
    assert sum(calls) == 5 * scorer.nfe_per_image(digits_model)
    assert got.shape == (5, 2 * k + 2 * k + k + 10 + 10 * 2) == (5, len(scorer.feature_names(digits_model)))
    assert scorer.feature_names(digits_model)[-20:-18] == [
        f"class 0 error t={search[0]}",
        f"class 0 error t={search[1]}",
    ]
    x0 = torch.from_numpy(digits_rgb[..., 0].astype(np.float32) / 255 * 2 - 1)[:, None]
    noise = [torch.randn((1, 8, 8), generator=torch.Generator().manual_seed(seed + j)) for j in range(k)]

    def pred(i, j, label):
        ab = float(digits_model.alphas_cumprod[ts[j]])
        xt = ab**0.5 * x0[i : i + 1] + (1 - ab) ** 0.5 * noise[j][None]
        labels = None if label is None else torch.tensor([label])
        with torch.no_grad():
            return forward(xt, torch.tensor([ts[j]]), labels)[0]

    for i in range(5):
        errors = [[float(((pred(i, ts.index(t), c) - noise[ts.index(t)]) ** 2).mean()) for t in search]
                  for c in range(10)]  # fmt: skip
        totals = [sum(row) for row in errors]
        best = int(np.argmin(totals))
        np.testing.assert_allclose(got[i, -30:-20], sorted(totals), rtol=1e-4)
        np.testing.assert_allclose(got[i, -20:], np.ravel(errors), rtol=1e-4)  # class-major, as named
        for j in range(k):
            p_null, p_best = pred(i, j, None), pred(i, j, best)
            assert got[i, j] == pytest.approx(float(((p_null - noise[j]) ** 2).mean()), rel=1e-4)
            assert got[i, 2 * k + j] == pytest.approx(float(((p_best - noise[j]) ** 2).mean()), rel=1e-4)
            assert got[i, 3 * k + j] == pytest.approx(float((p_best**2).mean()), rel=1e-4)
            assert got[i, 4 * k + j] == pytest.approx(float(((p_best - p_null) ** 2).mean()), rel=1e-4, abs=1e-9)
    halves = [scorer.features(digits_model, digits_rgb[:2]), scorer.features(digits_model, digits_rgb[2:])]
    np.testing.assert_allclose(got, np.concatenate(halves), rtol=1e-5)


def test_class_errors_average_the_noise_draws(digits_model, digits_rgb) -> None:
    """With 2 draws per timestep each class's error is the mean of its draws, so its errors summed over
    the search timesteps, times 2, are the class's summed search error (which adds up every draw)."""
    k, draws = 4, 2
    got = DiffusionLossScorer(k=k, n_noise=draws, classes=True, seed=5).features(digits_model, digits_rgb)
    search = len(class_search_timesteps(loss_timesteps(k, 1000)))
    per_class = got[:, -10 * search :].reshape(5, 10, search)
    np.testing.assert_allclose(np.sort(per_class.sum(-1) * draws, axis=1), got[:, -10 * search - 10 : -10 * search],
                               rtol=1e-5)  # fmt: skip


class OracleModel:
    """A pixel model whose eps is exact for one clean image x*: eps = (x_t - sqrt(ab) x*) / sqrt(1 - ab)."""

    id, latent = "oracle", False

    def __init__(self, target: np.ndarray) -> None:
        import torch

        self.alphas_cumprod = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
        self.target = torch.from_numpy(target.astype(np.float32) / 127.5 - 1)[None, None]

    def encode(self, images):
        import torch

        return torch.from_numpy(images[..., 0].astype(np.float32) / 127.5 - 1)[:, None]

    def eps(self, x, t):
        import torch

        ab = torch.tensor(self.alphas_cumprod, dtype=torch.float32)[t].view(-1, 1, 1, 1)
        return (x - ab.sqrt() * self.target) / (1 - ab).sqrt()

    def decode(self, x0):
        raise AssertionError("a pixel model is compared in model space")


def test_noise_sets_are_one_set_scorers_side_by_side(digits_model, digits_rgb) -> None:
    """Set m is the one-set scorer whose draws follow set m - 1's (seed + m * K * draws per timestep): no
    draw is shared, set 0 is the plain scorer, and the cost and names grow with the sets."""
    k = 4
    scorer = DiffusionLossScorer(k=k, noise_sets=3, classes=True, seed=11)
    got = scorer.features(digits_model, digits_rgb)
    sets = [DiffusionLossScorer(k=k, classes=True, seed=11 + m * k).features(digits_model, digits_rgb)
            for m in range(3)]  # fmt: skip
    np.testing.assert_allclose(got, np.concatenate(sets, axis=1), rtol=1e-6)
    assert not np.allclose(sets[0], sets[1])
    one = DiffusionLossScorer(k=k, classes=True)
    assert scorer.nfe_per_image(digits_model) == 3 * one.nfe_per_image(digits_model) == 3 * (k + 10 * 1 + k)
    names = scorer.feature_names(digits_model)
    assert len(names) == got.shape[1] and names[0] == "error t=1 [noise set 1]" and names[-1].endswith("[noise set 3]")
    with pytest.raises(InputError, match="noise_sets must be at least 1"):
        DiffusionLossScorer(noise_sets=0)


def test_ddim_inversion_reconstructs_what_the_model_knows_exactly() -> None:
    rng = np.random.default_rng(0)
    known = rng.integers(0, 256, (8, 8)).astype(np.uint8)
    other = rng.integers(0, 256, (8, 8)).astype(np.uint8)
    images = np.repeat(np.stack([known, other])[..., None], 3, axis=-1)
    scorer = InversionScorer(steps=10)
    residual = scorer.features(OracleModel(known), images)[:, 0]
    assert residual[0] == pytest.approx(0.0, abs=1e-5)  # the oracle's own image comes back exactly
    assert residual[1] > 0.1 and scorer.nfe_per_image() == 20
    with pytest.raises(InputError, match="not class-conditional"):
        DiffusionLossScorer(k=2, classes=True).features(OracleModel(known), images)


def test_detector_learns_the_direction_and_keeps_the_target_fpr() -> None:
    from sklearn.base import clone
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    n = 4000

    def sample(shift: float) -> tuple[np.ndarray, np.ndarray]:
        real = np.exp(rng.normal(0.0, 1.0, (n, 1)))  # log-normal "errors"
        fake = np.exp(rng.normal(shift, 1.0, (n, 1)))
        return np.vstack([real, fake]), np.r_[np.zeros(n), np.ones(n)]

    for shift, sign in ((1.0, 1), (-1.0, -1)):
        X, y = sample(shift)
        det = ReconstructionDetector(target_fpr=0.05, reference="off")  # the two-class model alone
        assert clone(det).get_params() == det.get_params() and det.fit(X, y) is det
        assert np.sign(det.coef_[0, 0]) == sign  # lower error = generated is learned, not assumed
        X_new, y_new = sample(shift)
        # two unit Gaussians one apart: AUROC = Phi(1 / sqrt 2) = 0.7602
        assert roc_auc_score(y_new, det.decision_function(X_new)) == pytest.approx(norm.cdf(1 / 2**0.5), abs=0.015)
        assert det.predict(X_new[y_new == 0]).mean() == pytest.approx(0.05, abs=0.012)
        for calibration in ("logistic", "isotonic"):
            p = det.set_params(calibration=calibration).fit(X, y).predict_proba(X_new)[:, 1]
            bins = np.clip((p * 10).astype(int), 0, 9)
            gaps = [abs(p[bins == b].mean() - y_new[bins == b].mean()) for b in range(10) if (bins == b).sum() > 200]
            assert max(gaps) < 0.05


def test_detector_round_trips_through_json_and_safetensors(tmp_path) -> None:
    rng = np.random.default_rng(2)
    X = np.exp(rng.normal(0, 1, (200, 3))) + np.r_[np.zeros(100), np.ones(100)][:, None]
    y = np.r_[np.zeros(100), np.ones(100)]
    det = ReconstructionDetector(calibration="isotonic", target_fpr=0.1).fit(X, y)
    path = det.save(tmp_path / "det.json", {"model": "embedded:digits-ddpm", "scorer": {"name": "diffusion-loss"}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det.json", "det.safetensors"]
    loaded, meta = ReconstructionDetector.load(path)
    np.testing.assert_array_equal(loaded.decision_function(X), det.decision_function(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), det.predict_proba(X))
    assert loaded.threshold_ == det.threshold_ and meta["model"] == "embedded:digits-ddpm"
    blob = bytearray((tmp_path / "det.safetensors").read_bytes())
    blob[-1] ^= 1
    (tmp_path / "det.safetensors").write_bytes(bytes(blob))
    with pytest.raises(WeightsError, match="does not match the sha256"):
        ReconstructionDetector.load(path)
    with pytest.raises(InputError, match="at least 2 real and 2 generated"):
        ReconstructionDetector().fit(X[:3], [0, 1, 1])


def test_block_detector_averages_one_logistic_model_per_block(tmp_path) -> None:
    """``blocks=3`` is the mean of three detectors, one per column block, each fitted with the same C on the
    same images (standardised log features), stored as one linear model that round-trips; the decision is
    that model's, standardised on the real images' cross-fitted decisions (one generator: one expert)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(60), np.ones(60)]
    X = np.exp(rng.normal(0, 1, (120, 6)) + 0.8 * y[:, None] * np.array([1, 0, 1, 0, 1, 0]))
    det = ReconstructionDetector(C=0.3, blocks=3, reference="off").fit(X, y)
    Z = np.log(X)
    Zs = (Z - Z.mean(0)) / Z.std(0)
    by_hand = np.mean(
        [LogisticRegression(C=0.3, **EXACT).fit(Zs[:, b], y).decision_function(Zs[:, b])
         for b in (slice(0, 2), slice(2, 4), slice(4, 6))], axis=0)  # fmt: skip
    centre, spread = det.expert_standard_[0]
    np.testing.assert_allclose(det.decision_function(X), (by_hand - centre) / spread, rtol=1e-6, atol=1e-9)
    one = ReconstructionDetector(C=0.3, reference="off").fit(X, y).decision_function(X)
    assert np.abs(one - det.decision_function(X)).max() > 1e-3  # the ensemble is not the joint model
    loaded, _ = ReconstructionDetector.load(det.save(tmp_path / "blocks.json"))
    assert loaded.blocks == 3
    np.testing.assert_array_equal(loaded.decision_function(X), det.decision_function(X))
    with pytest.raises(InputError, match="equal blocks"):
        ReconstructionDetector(blocks=4).fit(X, y)


def test_metrics_worked_by_hand() -> None:
    y = np.array([0, 0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.95])
    # positives 0.8 and 0.95 against negatives 0.1, 0.2, 0.3, 0.9: 3 + 4 of 8 pairs ordered
    assert point_metrics(y, s)["auroc"] == pytest.approx(7 / 8)
    assert tpr_at_fpr(y, s, 0.01) == 0.5 and tpr_at_fpr(y, s, 0.25) == 1.0
    # AP: ranks 0.95 (TP), 0.9 (FP), 0.8 (TP): 1/2 * 1 + 1/2 * 2/3
    assert point_metrics(y, s)["ap"] == pytest.approx(0.5 + 1 / 3)
    out = evaluate_scores(y, s, draws=200)
    assert out["auroc_ci"][0] <= out["auroc"] <= out["auroc_ci"][1] and (out["n_real"], out["n_fake"]) == (4, 2)
    with pytest.raises(InputError, match="at least 2 real and 2 generated"):
        evaluate_scores([0, 1, 1], [0.1, 0.5, 0.6])


def test_metrics_equal_scikit_learn_on_random_scores_with_ties() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(4, 80))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = np.round(rng.normal(size=n) + y, int(rng.integers(0, 3)))  # rounding makes ties
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)  # every threshold, none dropped
        ref = [roc_auc_score(y, s), average_precision_score(y, s), tpr[fpr <= 0.01].max(), tpr[fpr <= 0.05].max()]
        np.testing.assert_allclose(list(point_metrics(y, s).values()), ref, rtol=1e-12, atol=1e-12)


def test_perturbations_and_shortcut_warnings() -> None:
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    assert perturbed([image], "resize 0.5x")[0].shape == (4, 4, 3)
    assert perturbed([image], "resize 2x")[0].shape == (16, 16, 3)
    q95, q50 = perturbed([image], "jpeg q95")[0], perturbed([image], "jpeg q50")[0]
    assert 0 < np.abs(q95.astype(int) - image).mean() < np.abs(q50.astype(int) - image).mean()
    same = [{"format": "PNG", "width": 8, "height": 8}]
    assert shortcut_warnings(same, same) == []
    jpeg = [{"format": "JPEG", "width": 8, "height": 8}]
    bigger = [{"format": "PNG", "width": 16, "height": 16}]
    assert "file format" in shortcut_warnings(same, jpeg)[0] and "size" in shortcut_warnings(same, bigger)[0]


def test_false_positive_rate_by_perceived_group(tmp_path) -> None:
    from detectors.fairness import fpr_by_group

    records = tmp_path / "faces.csv"
    records.write_text(
        "image,class,age,gender\n"
        "a.png,x,25,female\nb.png,x,34,male\nc.png,x,27,female\nc.png,x,71,male\nd.png,x,8,F\ne.png,x,,\n",
        encoding="utf-8",
    )
    flagged = {"real/a.png": True, "real/b.png": False, "real/c.png": True, "real/d.png": False, "real/e.png": True}
    out = fpr_by_group(flagged, records)
    rows = {r["group"]: r for r in out["groups"]}
    assert (rows["perceived female"]["false_positives"], rows["perceived female"]["real_images"]) == (2, 3)
    assert rows["perceived male"]["fpr"] == pytest.approx(0.5) and rows["perceived age 70+"]["fpr"] == 1.0
    assert rows["perceived age 3-9"]["fpr"] == 0.0 and rows["perceived age 20-29"]["real_images"] == 2
    # Wilson 2 of 3: (0.2077, 0.9385)
    assert rows["perceived female"]["fpr_ci"] == pytest.approx([0.2077, 0.9385], abs=1e-4)
    assert out["overall"]["fpr"] == pytest.approx(3 / 5) and out["real_images_with_faces"] == 4  # e.png has no face
    assert list(rows)[:2] == ["perceived female", "perceived male"]
    json.dumps(out)


def test_membership_check_worked_by_hand() -> None:
    from detectors.membership import membership_check

    train, heldout = np.array([0.0, 1.0, 2.0, 3.0]), np.array([-1.0, 0.0, 2.5])
    out = membership_check(train, train >= 2.0, heldout, heldout >= 2.0, draws=200)
    assert (out["training"]["flagged"], out["training"]["n"]) == (2, 4)  # 2.0 and 3.0 reach the threshold
    assert (out["real"]["flagged"], out["real"]["n"]) == (1, 3)
    assert out["training"]["rate_ci"] == pytest.approx([0.1500, 0.8500], abs=1e-4)  # Wilson 2 of 4
    # training (positive) over held-out pairs: t=0 beats -1 and ties 0 (1.5), t=1 and t=2 beat two, t=3 all
    assert out["auroc_training_vs_real"] == pytest.approx((1.5 + 2 + 2 + 3) / 12)
    lo, hi = out["auroc_training_vs_real_ci"]
    assert lo <= out["auroc_training_vs_real"] <= hi
    json.dumps(out)
    with pytest.raises(ValueError, match="exactly one flag"):
        membership_check(train, train[:2] >= 2.0, heldout, heldout >= 2.0)


def test_training_digits_are_a_seeded_sample_of_the_training_split() -> None:
    from audit.zoo import digits
    from detectors.builtin import training_digits

    train, _ = digits.load_split("train")
    sample = training_digits(20, seed=5)
    assert sample.shape == (20, 8, 8, 3) and sample.dtype == np.uint8
    np.testing.assert_array_equal(sample, training_digits(20, seed=5))
    rows = {im.tobytes() for im in train}
    assert all(np.ascontiguousarray(im[..., 0]).tobytes() in rows for im in sample)
    assert not np.array_equal(sample, training_digits(20, seed=6))
    with pytest.raises(ValueError, match="between 1 and 1500"):
        training_digits(1501)


def test_digits_mixed_holds_every_generator_family_in_the_real_format() -> None:
    """builtin:digits-mixed: the real held-out digits, the DDPM's five schedules, the GAN and the Gaussian
    mixture, each source labelled and given its family; every generated pixel on the real digits' levels."""
    from audit.zoo import digits
    from detectors.builtin import DIFFUSION, OTHER_FAMILIES, REAL, digits_mixed

    data = digits_mixed(10)
    tags = list(dict.fromkeys(data.source))
    assert tags[0] == REAL and tags[-2:] == ["gan", "mixture"] and len(tags) == 1 + 5 + 2
    assert len(data.y) == 297 + 7 * 10 and int(data.y.sum()) == 70
    family = dict(zip(data.source, data.family, strict=True))
    assert family["gan"] == OTHER_FAMILIES["gan"] and family["mixture"] == OTHER_FAMILIES["mixture"]
    assert family["cosine w=2"] == DIFFUSION and family[REAL] == REAL
    assert set(np.unique(data.images[data.y == 1])) <= set(digits.levels_to_uint8(np.arange(17)))
    assert data.names[-1] == "generated/mixture-009.png" and data.images.shape[1:] == (8, 8, 3)


def test_cross_fit_scores_every_image_by_a_detector_fitted_on_all_other_folds() -> None:
    """``cross_fit`` stratified by source: every fold holds each source in proportion, the detector that
    scored an image was fitted on exactly the images outside its fold (refitted here by hand), flags use
    that detector's own threshold, and images no detector saw are dealt out among them in turn."""
    from types import SimpleNamespace

    from detectors.job import cross_fit, scored_by

    rng = np.random.default_rng(4)
    source = np.array(["real"] * 60 + ["schedule a"] * 30 + ["schedule b"] * 30)
    y = (source != "real").astype(int)
    X = np.exp(rng.normal(0, 1, (120, 4)) + 0.7 * y[:, None])
    scorer = SimpleNamespace(noise_sets=2)  # two column blocks
    crossed = cross_fit(scorer, X, y, target_fpr=0.1, folds=5, strata=source)
    assert len(crossed.fold_models) == 5
    seen = np.concatenate([idx for idx, _ in crossed.fold_models])
    assert sorted(seen.tolist()) == list(range(120))  # every image in exactly one fold
    for idx, fold in crossed.fold_models:
        counts = {s: int((source[idx] == s).sum()) for s in ("real", "schedule a", "schedule b")}
        assert counts == {"real": 12, "schedule a": 6, "schedule b": 6}
        rest = np.setdiff1d(np.arange(120), idx)
        by_hand = ReconstructionDetector(blocks=2, target_fpr=0.1).fit(X[rest], y[rest], groups=source[rest])
        assert fold.blocks == 2 and fold.threshold_ == by_hand.threshold_
        np.testing.assert_array_equal(crossed.decisions[idx], by_hand.decision_function(X[idx]))
        np.testing.assert_array_equal(crossed.probs[idx], by_hand.predict_proba(X[idx])[:, 1])
        np.testing.assert_array_equal(crossed.flags[idx], by_hand.predict(X[idx]))
    np.testing.assert_array_equal(crossed.score(X), crossed.decisions)
    some = np.array([119, 3, 64, 0])  # a subset in any order: each row by the detector of that image's fold
    np.testing.assert_allclose(crossed.score(X[some], some), crossed.decisions[some], rtol=1e-12)
    with pytest.raises(ValueError, match="4 feature rows for 3 images"):
        crossed.score(X[some], some[:3])
    unseen = np.exp(rng.normal(0, 1, (7, 4)))
    scores, flags = crossed.share_out(unseen)
    for row in range(7):  # row j goes to fold detector j mod 5
        fold = crossed.fold_models[row % 5][1]
        assert scores[row] == pytest.approx(fold.decision_function(unseen[row : row + 1])[0], rel=1e-12)
        assert flags[row] == (scores[row] >= fold.threshold_)
    few = cross_fit(scorer, X[:63], y[:63], target_fpr=0.1, folds=5)  # 3 generated images: 3 folds, not 5
    assert len(few.fold_models) == 3 and sorted(np.concatenate([i for i, _ in few.fold_models])) == list(range(63))
    one = scored_by(crossed.fold_models[0][1], X)
    np.testing.assert_array_equal(one.score(X), one.decisions)
    np.testing.assert_array_equal(one.flags, crossed.fold_models[0][1].predict(X))


def test_one_model_per_generator_flags_generators_that_err_in_opposite_directions(tmp_path) -> None:
    """Two generators, one shifted up and one down from the real images in log space: one pooled linear
    model cannot put both on one side; one logistic model per generator (each equal to scikit-learn's on
    that generator's and the real rows, standardised on the real images' cross-fitted decisions), their
    largest taken, flags both. By hand, with X0 ~ N(0, 1) real and X1 ~ N(1.5, 1) generated, the two ideal
    experts standardised are X and -X, their largest |X|: AUROC = P(|X1| > |X0|) = 0.7529 (numerical
    integration), against Phi(1.5 / sqrt 2) = 0.856 for one expert alone on its own generator."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    n = 2000

    def sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logs = np.r_[rng.normal(0, 1, n), rng.normal(1.5, 1, n), rng.normal(-1.5, 1, n)]
        X = np.exp(np.c_[logs, rng.normal(0, 1, 3 * n)])  # a second, uninformative feature
        return X, np.r_[np.zeros(n), np.ones(2 * n)], np.array(["real"] * n + ["up"] * n + ["down"] * n)

    X, y, groups = sample()
    det = ReconstructionDetector(reference="off").fit(X, y, groups)
    pooled = ReconstructionDetector(reference="off", experts=False).fit(X, y, groups)
    assert det.experts_ == ["up", "down"] and det.coef_.shape == (2, 2) and pooled.coef_.shape == (1, 2)
    X_new, y_new, g_new = sample()
    auroc = {
        name: [roc_auc_score(y_new[(g_new == "real") | (g_new == gen)], model.decision_function(X_new)[
            (g_new == "real") | (g_new == gen)]) for gen in ("up", "down")]
        for name, model in (("experts", det), ("pooled", pooled))
    }  # fmt: skip
    assert auroc["experts"] == pytest.approx([0.7529, 0.7529], abs=0.025)
    assert min(auroc["pooled"]) < 0.60  # one of the two is missed
    # by hand: each expert is scikit-learn's logistic regression on its rows (solved exactly, as the detector
    # solves it: detectors/logistic.py), with the C the detector chose
    Z = np.log(X)
    by_hand = []
    for k, gen in enumerate(det.experts_):
        rows = (groups == "real") | (groups == gen)
        mean, std = Z[rows].mean(0), Z[rows].std(0)
        lr = LogisticRegression(C=det.C_[k], **EXACT).fit((Z[rows] - mean) / std, y[rows])
        centre, spread = det.expert_standard_[k]
        by_hand.append((lr.decision_function((np.log(X_new) - mean) / std) - centre) / spread)
    np.testing.assert_allclose(det.decision_function(X_new), np.max(by_hand, axis=0), rtol=1e-6, atol=1e-8)
    assert det.predict(X_new[y_new == 0]).mean() == pytest.approx(0.05, abs=0.03)
    directions = det.direction(["log error", "noise"])
    assert [d["generator"] for d in directions] == ["up", "up", "down", "down"]
    assert directions[0]["higher_means"] == "generated" and directions[2]["higher_means"] == "real"
    loaded, _ = ReconstructionDetector.load(det.save(tmp_path / "experts.json"))
    assert loaded.experts_ == ["up", "down"]
    np.testing.assert_array_equal(loaded.decision_function(X_new), det.decision_function(X_new))


def test_cross_fitting_keeps_siblings_in_one_fold() -> None:
    """Images made from one seed (the builtin DDPM's schedules) share a fold: no fold detector is scored on
    a near-copy of an image it was calibrated on."""
    from detectors.job import cross_fit

    class Scorer:
        noise_sets = 1

    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(60, dtype=int), np.ones(90, dtype=int)]
    sources = np.array(["real"] * 60 + ["a"] * 30 + ["b"] * 30 + ["c"] * 30)
    siblings = np.r_[np.arange(60), 100 + np.tile(np.arange(30), 3)]
    X = np.exp(rng.normal(0, 1, (150, 2)) + 0.5 * y[:, None])
    crossed = cross_fit(Scorer(), X, y, target_fpr=0.1, folds=5, strata=sources, siblings=siblings)
    folds = {int(s): k for k, (test, _) in enumerate(crossed.fold_models) for s in siblings[test]}
    assert all(folds[int(s)] == k for k, (test, _) in enumerate(crossed.fold_models) for s in siblings[test])
    assert sum(len(test) for test, _ in crossed.fold_models) == 150 and len(crossed.fold_models) == 5


def test_a_generator_with_too_few_images_for_its_own_model_pools_them_all() -> None:
    """A fold of a 2-image generator holds 1 of its images: no model can be fitted on it alone, so that fit
    uses one pooled model (and leaves the caller's groups as they were); cross-fitting then still runs."""
    from detectors.job import cross_fit

    class Scorer:
        noise_sets = 1

    rng = np.random.default_rng(4)
    y = np.r_[np.zeros(40, dtype=int), np.ones(22, dtype=int)]
    groups = np.array(["real"] * 40 + ["big"] * 20 + ["tiny"] * 2, dtype=object)
    X = np.exp(rng.normal(0, 1, (62, 2)) + 0.8 * y[:, None])
    det = ReconstructionDetector(reference="off").fit(X[:61], y[:61], groups[:61])
    assert det.experts_ == ["generated"] and list(groups[59:]) == ["big", "tiny", "tiny"]
    assert ReconstructionDetector(reference="off").fit(X, y, groups).experts_ == ["big", "tiny"]
    crossed = cross_fit(Scorer(), X, y, target_fpr=0.1, folds=5, strata=groups)
    assert len(crossed.fold_models) == 2 and np.all(np.isfinite(crossed.decisions))
