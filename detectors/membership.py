"""How a reconstruction detector treats its generator's own training images.

A diffusion model fits the images it was trained on better than other real images (the signal of
membership inference: Matsumoto et al. 2023, Carlini et al. 2023), and a diffusion-loss detector reads a
good fit as "generated". So real images from the training set are flagged far more often than the
held-out real images the threshold was set on. :func:`membership_check` measures that on scores the
caller has already computed: the flag rate on training images against the false-positive rate on
held-out real images (Wilson intervals), and how well the score alone tells the two real sets apart.
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
    training_scores: Any, heldout_real_scores: Any, threshold: float, *, draws: int = BOOTSTRAP_DRAWS
) -> dict[str, Any]:
    """Flag rates at ``threshold`` (a score at or above it is flagged, as in the detector) on the
    generator's training images and on held-out real images, and the AUROC (bootstrap 95% interval) of the
    score for training (positive) against held-out real images: 0.5 when the detector cannot tell them
    apart."""
    train = np.asarray(training_scores, dtype=np.float64)
    heldout = np.asarray(heldout_real_scores, dtype=np.float64)
    y = np.r_[np.zeros(len(heldout), dtype=int), np.ones(len(train), dtype=int)]
    separation = evaluate_scores(y, np.r_[heldout, train], draws=draws)
    return {
        "training": _rate(train >= threshold),
        "heldout_real": _rate(heldout >= threshold),
        "auroc_training_vs_heldout": separation["auroc"],
        "auroc_training_vs_heldout_ci": separation["auroc_ci"],
        "threshold": float(threshold),
    }
