"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), mean and std over splits.

Samples are shuffled before splitting (IS depends on order when samples are sorted by class); splits
have ``n // splits`` samples each and the std is the population std, as in the original code.
"""

from __future__ import annotations

import numpy as np

from audit.errors import InputError
from audit.metrics import checks

_EPS = 1e-12


def inception_score(probs: np.ndarray, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """IS of class probabilities ``probs`` (N, C), rows summing to 1; returns ``(mean, std)``."""
    if splits < 1:
        raise InputError(f"IS needs splits >= 1, got {splits}")
    p = checks.features("generated", probs, min_rows=splits, metric="Inception Score")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise InputError("Inception Score takes class probabilities: non-negative rows that sum to 1")
    p = p[np.random.default_rng(seed).permutation(len(p))]
    size = len(p) // splits
    scores = []
    for k in range(splits):
        part = p[k * size : (k + 1) * size]
        marginal = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part + _EPS) - np.log(marginal + _EPS))).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))
