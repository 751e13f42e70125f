"""Augmented calibration (perturbed copies that stay with their originals) and the demo's reuse of the
benchmark's cells for ``builtin:digits-mixed``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from audit.errors import InputError
from detectors.augment import AugmentedImages, perturb
from detectors.detector import ReconstructionDetector
from detectors.job import Copies, cross_fit
from detectors.reference import RealReference


def test_copies_are_seeded_by_image_and_copy_not_by_order() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    view = AugmentedImages(images, copies=2, seed=3)
    assert len(view) == 8 and view.parents.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    forwards = [view[i] for i in range(8)]
    backwards = [view[i] for i in reversed(range(8))][::-1]
    for a, b in zip(forwards, backwards, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(view[5], perturb(images[2], np.random.default_rng([3, 2, 1])))
    assert [im.shape for im in view[0:3]] == [forwards[i].shape for i in range(3)]
    # over many draws every perturbation happens and the images change; sizes stay within 0.5x..2x
    shapes, changed = set(), 0
    for c in range(40):
        out = perturb(images[0], np.random.default_rng([0, 0, c]))
        assert out.dtype == np.uint8 and out.shape[2] == 3 and 16 <= out.shape[0] <= 64
        shapes.add(out.shape)
        changed += not np.array_equal(out, images[0])
    assert len(shapes) > 5 and changed >= 35


def test_copies_select_and_renumber_by_hand() -> None:
    feats = np.arange(10.0).reshape(5, 2)  # copies of originals 0, 0, 2, 3, 4
    copies = Copies(feats, np.array([0, 0, 2, 3, 4]))
    picked = copies.of(np.array([2, 4]))
    np.testing.assert_array_equal(picked.feats, feats[[2, 4]])
    assert picked.parents.tolist() == [0, 1]  # positions of originals 2 and 4 in [2, 4]
    assert copies.of(np.array([True, False, False, True, False])).parents.tolist() == [0, 0, 1]
    X, y, groups, parents = picked.joined(np.ones((2, 2)), np.array([0, 1]), np.array(["real", "gan"]))
    assert X.shape == (4, 2) and y.tolist() == [0, 1, 0, 1] and groups.tolist() == ["real", "gan", "real", "gan"]
    assert parents.tolist() == [0, 1, 0, 1]


def test_leave_one_out_leaves_the_whole_group_out() -> None:
    # originals 0, 1, 2, 3 on a line, each with an exact copy (groups 0..3): without the group rule, every
    # row's nearest neighbour would be its own copy at distance 0
    points = np.array([[0.0], [1.0], [2.0], [4.0]])
    rows = np.vstack([points, points])
    ref = RealReference(neighbours=2).fit(rows, groups=np.r_[np.arange(4), np.arange(4)])
    std = rows.std()
    # 0's two nearest outside its group: the two copies of 1 (distance 1, 1); 4's: the two copies of 2 (2, 2)
    expected = np.log(np.array([1.0, 1.0, 1.0, 2.0]) / std)
    np.testing.assert_allclose(ref.atypicality(rows, leave_one_out=True), np.r_[expected, expected])


def test_copies_never_calibrate_a_detector_that_scores_their_original() -> None:
    """Each fold detector is calibrated on exactly the originals outside its fold and *their* copies (refitted
    here by hand), never on a copy of an image it scores; the copies carry their label in a feature, so a
    leaked copy would change the fit."""
    rng = np.random.default_rng(5)
    y = np.r_[np.zeros(60), np.ones(60)].astype(int)
    X = np.exp(rng.normal(0, 1, (120, 3)))
    copies_x = np.exp(rng.normal(0, 1, (120, 3)))
    copies_x[:, 2] = np.exp(4.0 * y)  # copy of image i carries its label in feature 2
    scorer = SimpleNamespace(noise_sets=1)
    plain = cross_fit(scorer, X, y, target_fpr=0.1, folds=5, reference="off")
    with_copies = cross_fit(scorer, X, y, target_fpr=0.1, folds=5, copies=Copies(copies_x, np.arange(120)),
                            reference="off")  # fmt: skip
    for idx, _ in with_copies.fold_models:  # refit by hand: the originals outside the fold and their copies
        rest = np.setdiff1d(np.arange(120), idx)
        by_hand = ReconstructionDetector(target_fpr=0.1, reference="off").fit(
            np.vstack([X[rest], copies_x[rest]]), np.r_[y[rest], y[rest]],
            parents=np.r_[np.arange(len(rest)), np.arange(len(rest))],
        )  # fmt: skip
        np.testing.assert_allclose(with_copies.decisions[idx], by_hand.decision_function(X[idx]))
    assert len(plain.fold_models) == len(with_copies.fold_models) == 5
    with pytest.raises(InputError, match="parent must be an original"):
        ReconstructionDetector().fit(np.vstack([X, X[:2]]), np.r_[y, 1, 1], parents=np.r_[np.arange(120), 0, 1])


def test_threshold_keeps_the_target_fpr_on_the_originals() -> None:
    rng = np.random.default_rng(6)
    y = np.r_[np.zeros(200), np.ones(200)].astype(int)
    X = np.exp(rng.normal(0, 1, (400, 2)) + y[:, None])
    copies = np.exp(rng.normal(0, 1, (400, 2)) + 3.0)  # copies far off: all would be flagged
    det = ReconstructionDetector(target_fpr=0.05, reference="off").fit(
        np.vstack([X, copies]), np.r_[y, y], parents=np.r_[np.arange(400), np.arange(400)]
    )
    real_oof = det.cv_decisions_[:200]
    assert np.mean(real_oof >= det.threshold_) <= 0.05 and np.mean(real_oof >= det.threshold_) >= 0.04


@pytest.mark.slow
def test_digits_mixed_reads_the_benchmarks_cells_when_they_hold_the_same_samples(tmp_path: Path) -> None:
    import json

    from audit.bench.config import BenchConfig
    from audit.bench.run import CONFIG_FILE, _generate
    from audit.bench.store import CellStore
    from audit.generators import get_generator
    from audit.guidance import get_schedule
    from detectors.builtin import SCHEDULES, digits_mixed

    n = 6  # per schedule here, out of the smallest benchmark's 20 per cell
    config = BenchConfig(n=20)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config.to_dict()), encoding="utf-8")
    generator = get_generator(config.generator, **config.options)
    for name, scale in SCHEDULES:  # what genaudit bench writes for these cells
        store = CellStore(tmp_path / "cells", get_schedule(name, scale))
        weights = _generate(config, generator, store, list(range(config.n)))
        store.write_manifest(config.conditions(), config.seeds(), "label", {"step_weights": weights, "steps": 25})
    fresh, reused = digits_mixed(n), digits_mixed(n, tmp_path)
    np.testing.assert_array_equal(fresh.images, reused.images)  # the same samples, read or generated
    assert fresh.source == reused.source and fresh.names == reused.names
    # proof that they were read: a blacked-out cell image shows up; a run at other steps is not used
    store = CellStore(tmp_path / "cells", get_schedule(*SCHEDULES[1]))
    store.write_images([0], np.zeros((1, 8, 8, 3), dtype=np.uint8))
    first = int(np.flatnonzero(np.array(reused.source) == reused.source[297 + n])[0])
    assert digits_mixed(n, tmp_path).images[first].max() == 0
    (store.images_dir / store.image_name(1)).write_bytes(b"\x89PNG\r\n\x1a\n damaged")  # generated instead
    np.testing.assert_array_equal(digits_mixed(n, tmp_path).images, fresh.images)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({**config.to_dict(), "steps": 50}), encoding="utf-8")
    np.testing.assert_array_equal(digits_mixed(n, tmp_path).images, fresh.images)
    np.testing.assert_array_equal(digits_mixed(n, tmp_path / "nowhere").images, fresh.images)
