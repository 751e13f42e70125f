"""How a reconstruction detector treats its generator's own training images.

A diffusion model fits the images it was trained on better than other real images (the signal of
membership inference: Matsumoto et al. 2023, Carlini et al. 2023), and a diffusion-loss detector reads a
good fit as "generated". So real images from the training set are flagged far more often than the
other real images the threshold was set for. :func:`membership_check` measures that on scores the
caller has already computed: the flag rate on training images against the false-positive rate on the
other real images (Wilson intervals), and how well the score alone tells the two real sets apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audit.dataset.demographics import wilson_interval
from detectors.evaluation import BOOTSTRAP_DRAWS, evaluate_scores


def _rate(flags: np.ndarray) -> dict[str, Any]:
    k, n = int(flags.sum()), len(flags)
    ci = wilson_interval(k, n)
    return {"n": n, "flagged": k, "rate": k / n if n else None, "rate_ci": list(ci) if ci else None}


def membership_check(
    training_scores: Any,
    training_flags: Any,
    real_scores: Any,
    real_flags: Any,
    *,
    draws: int = BOOTSTRAP_DRAWS,
) -> dict[str, Any]:
    """Flag rates on the generator's training images and on other real images (flags as the detector or
    its cross-fitted folds gave them), and the AUROC (bootstrap 95% interval) of the score for training
    (positive) against the other real images: 0.5 when the detector cannot tell them apart."""
    train, real = np.asarray(training_scores, dtype=np.float64), np.asarray(real_scores, dtype=np.float64)
    train_flags, real_flags = np.asarray(training_flags, dtype=bool), np.asarray(real_flags, dtype=bool)
    if train_flags.shape != train.shape or real_flags.shape != real.shape:
        raise ValueError("every score needs exactly one flag")
    y = np.r_[np.zeros(len(real), dtype=int), np.ones(len(train), dtype=int)]
    separation = evaluate_scores(y, np.r_[real, train], draws=draws)
    return {
        "training": _rate(train_flags),
        "real": _rate(real_flags),
        "auroc_training_vs_real": separation["auroc"],
        "auroc_training_vs_real_ci": separation["auroc_ci"],
    }
