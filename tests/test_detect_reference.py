"""The real-reference score (kNN atypicality among real images), the reference-only detector and its
combination with the two-class detector: distances worked by hand, the blind spot it closes, save and load,
and ``detect calibrate --real`` alone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from audit.cli import main
from audit.errors import InputError, WeightsError
from detectors.detector import ReconstructionDetector
from detectors.reference import RealReference, reference_view


def test_knn_atypicality_worked_by_hand() -> None:
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    ref = RealReference(neighbours=2).fit(real)
    std = np.sqrt(1.25)  # of 0, 1, 2, 3 (population)
    # 10 lies 7 and 8 from its two nearest (3 and 2): mean 7.5, in standard units 7.5 / std
    assert ref.atypicality(np.array([[10.0]]))[0] == pytest.approx(np.log(7.5 / std))
    # leave one out: 0's nearest others are 1 and 2 (mean 1.5); 1's are 0 and 2 (mean 1)
    loo = ref.atypicality(real, leave_one_out=True)
    np.testing.assert_allclose(loo, np.log(np.array([1.5, 1.0, 1.0, 1.5]) / std))
    # a duplicate of a row: only the row itself is dropped, its twin stays at distance 0
    twins = RealReference(neighbours=2).fit(np.array([[0.0], [0.0], [1.0]]))
    scale = np.std([0.0, 0.0, 1.0])
    np.testing.assert_allclose(
        twins.atypicality(np.array([[0.0], [0.0], [1.0]]), leave_one_out=True),
        np.log(np.array([0.5, 0.5, 1.0]) / scale),
    )
    with pytest.raises(InputError, match="at least 2 real images"):
        RealReference().fit(real[:1])


def test_reference_view_averages_the_leading_columns_of_each_block() -> None:
    Z = np.arange(12.0).reshape(1, 12)  # 2 blocks of 6: (0..5), (6..11)
    np.testing.assert_array_equal(reference_view(Z, 2, 2), [[3.0, 4.0]])  # mean of (0, 1) and (6, 7)
    np.testing.assert_array_equal(reference_view(Z, 1, None), Z)
    with pytest.raises(InputError, match="reference columns"):
        reference_view(Z, 2, 7)


def _world(rng: np.random.Generator, n: int = 400) -> dict[str, np.ndarray]:
    """Log-normal 'errors' in 3 features: real N(0, 1); the seen generator shifted 1.5 up in feature 0; the
    unseen one 2.5 up in feature 1, where the seen one does not differ (a generator that errs another way)."""
    real, seen, unseen = (rng.normal(0, 1, (n, 3)) for _ in range(3))
    seen[:, 0] += 1.5
    unseen[:, 1] += 2.5
    return {name: np.exp(v) for name, v in (("real", real), ("seen", seen), ("unseen", unseen))}


def test_reference_only_detector_flags_both_directions_at_the_target_fpr() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    train, test = _world(rng), _world(rng)
    det = ReconstructionDetector(target_fpr=0.05).fit(train["real"], np.zeros(len(train["real"]), dtype=int))
    assert det.mode_ == "reference" and det.direction() == []
    for name, floor in (("seen", 0.65), ("unseen", 0.8)):  # no generated image seen, either one is atypical
        X = np.vstack([test["real"], test[name]])
        y = np.r_[np.zeros(len(test["real"])), np.ones(len(test[name]))]
        assert roc_auc_score(y, det.decision_function(X)) > floor
    low = np.exp(np.log(test["real"]) - [0, 2.5, 0])  # and so is the other direction
    y = np.r_[np.zeros(len(test["real"])), np.ones(len(low))]
    assert roc_auc_score(y, det.decision_function(np.vstack([test["real"], low]))) > 0.8
    assert det.predict(test["real"]).mean() == pytest.approx(0.05, abs=0.025)
    # p_synthetic = 1 - conformal p-value against the real images' cross-fitted decisions
    d = det.decision_function(test["unseen"][:3])
    real = np.sort(det.cv_decisions_)
    expected = 1 - (1 + (real[None, :] >= d[:, None]).sum(1)) / (len(real) + 1)
    np.testing.assert_allclose(det.probability(d), expected)


def test_the_combination_closes_the_two_class_blind_spot_and_keeps_the_seen_generator() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    train, test = _world(rng), _world(rng)
    X = np.vstack([train["real"], train["seen"]])
    y = np.r_[np.zeros(len(train["real"])), np.ones(len(train["seen"]))]
    alone = ReconstructionDetector(reference="off").fit(X, y)
    combined = ReconstructionDetector().fit(X, y)
    assert alone.mode_ == "two-class" and combined.mode_ == "combined" and combined.combination_[4] > 0

    def auroc(det: ReconstructionDetector, name: str) -> float:
        scores = det.decision_function(np.vstack([test["real"], test[name]]))
        return roc_auc_score(np.r_[np.zeros(len(test["real"])), np.ones(len(test[name]))], scores)

    assert auroc(alone, "unseen") < 0.6  # blind to it
    assert auroc(combined, "unseen") > auroc(alone, "unseen") + 0.05
    assert auroc(combined, "seen") >= auroc(alone, "seen") - 0.01  # within the tolerance, on new data


def test_the_weight_keeps_every_calibration_generator(tmp_path: Path) -> None:
    """With two generators, the reference may not cost either one more than the tolerance (cross-fitted)."""
    from detectors.detector import _centre_scale
    from detectors.evaluation import point_metrics

    rng = np.random.default_rng(2)
    w = _world(rng, 200)
    X = np.vstack([w["real"], w["seen"], w["unseen"]])
    y = np.r_[np.zeros(200), np.ones(400)].astype(int)
    groups = np.array(["real"] * 200 + ["seen"] * 200 + ["unseen"] * 200)
    det = ReconstructionDetector().fit(X, y, groups=groups)
    alone = ReconstructionDetector(reference="off").fit(X, y)
    m_d, s_d = _centre_scale(alone.cv_decisions_[y == 0])
    z_d = (alone.cv_decisions_ - m_d) / s_d
    for g in ("seen", "unseen"):
        pool = (groups == "real") | (groups == g)
        assert (
            point_metrics(y[pool], det.cv_decisions_[pool])["auroc"]
            >= point_metrics(y[pool], z_d[pool])["auroc"] - det.reference_tolerance - 1e-12
        )

    refit = ReconstructionDetector().fit(X, y).fit(X[:200], np.zeros(200, dtype=int))  # combined, then real only
    assert refit.mode_ == "reference" and not hasattr(refit, "coef_") and not hasattr(refit, "platt_")
    for saved in (det, ReconstructionDetector().fit(X[:200], np.zeros(200, dtype=int))):  # both modes round-trip
        path = saved.save(tmp_path / f"{saved.mode_}.json", {"model": "m"})
        loaded, meta = ReconstructionDetector.load(path)
        assert loaded.mode_ == saved.mode_ and meta == {"model": "m"}
        np.testing.assert_array_equal(loaded.decision_function(X), saved.decision_function(X))
        np.testing.assert_array_equal(loaded.predict_proba(X), saved.predict_proba(X))
    arrays = (tmp_path / "combined.safetensors").read_bytes()
    (tmp_path / "combined.safetensors").write_bytes(arrays[:-8] + b"\0" * 8)  # one reference value changed
    with pytest.raises(WeightsError, match="does not match the sha256"):
        ReconstructionDetector.load(tmp_path / "combined.json")


def test_too_few_images_for_either_mode_are_refused() -> None:
    X = np.exp(np.random.default_rng(0).normal(size=(5, 2)))
    with pytest.raises(InputError, match="or only real images"):
        ReconstructionDetector().fit(X, [0, 1, 1, 1, 1])
    with pytest.raises(InputError, match="at least 2 real and 2 generated"):
        ReconstructionDetector(reference="off").fit(X, [0] * 5)
    with pytest.raises(InputError, match="reference must be one of"):
        ReconstructionDetector(reference="maybe").fit(X, [0, 0, 1, 1, 1])


@pytest.mark.slow
def test_calibrate_with_real_images_only_then_detect(tmp_path: Path) -> None:
    """``detect calibrate --real DIR`` alone: a reference-only detector that flags about the target FPR of
    other real digits and flags the embedded model's samples more often."""
    from PIL import Image

    from audit.generators.base import GenerationRequest
    from audit.generators.embedded import EmbeddedDigitsGenerator
    from audit.guidance import get_schedule
    from audit.zoo import digits

    real, _ = digits.load_split("heldout")
    # a seeded shuffle: the split is ordered by writer, and the reference models the writers it was given
    order = np.random.default_rng(0).permutation(len(real))
    folders = {name: tmp_path / name for name in ("real", "other_real", "fake")}
    for folder in folders.values():
        folder.mkdir()
    for i in range(150):
        Image.fromarray(real[order[i]]).convert("RGB").save(folders["real"] / f"r{i:03d}.png")
    for i in range(100):
        Image.fromarray(real[order[150 + i]]).convert("RGB").save(folders["other_real"] / f"o{i:03d}.png")
    request = GenerationRequest(seeds=tuple(range(900, 930)), schedule=get_schedule("static", 3.0), steps=25,
                                labels=tuple(i % 10 for i in range(30)))  # fmt: skip
    for i, image in enumerate(EmbeddedDigitsGenerator().generate(request).images):
        Image.fromarray(image).save(folders["fake"] / f"f{i:02d}.png")
    det_file = tmp_path / "ref.json"
    cheap = ["--k", "4", "--noise-sets", "1", "--classes", "off"]
    assert main(["-q", "detect", "calibrate", "--real", str(folders["real"]), *cheap, "--out", str(det_file)]) == 0
    doc = json.loads(det_file.read_text())
    assert doc["mode"] == "reference" and doc["meta"]["mode"] == "reference"
    assert doc["meta"]["calibrated_on"]["n_fake"] == 0 and doc["meta"]["cross_fitted_auroc"] is None
    flagged = {}
    for name in ("other_real", "fake"):
        out = tmp_path / f"out_{name}"
        assert main(["-q", "detect", str(folders[name]), "--detector", str(det_file), "--out", str(out)]) == 0
        with (out / "detections.csv").open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert all(0.0 < float(r["p_synthetic"]) < 1.0 for r in rows)
        flagged[name] = np.mean([r["flagged"] == "True" for r in rows])
        html = (out / "detect-results.html").read_text(encoding="utf-8")
        assert "real-reference detector" in html and "not a posterior probability" in html
    assert flagged["other_real"] <= 0.2 and flagged["fake"] > flagged["other_real"]
