"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), mean and std over splits.

Samples are shuffled before splitting (IS depends on order when samples are sorted by class); splits
have ``n // splits`` samples each and the std is the population std, as in the original code.
"""

from __future__ import annotations

import numpy as np

from audit.errors import InputError
from audit.metrics import checks

_EPS = 1e-12


class InceptionScorer:
    """IS of any subset of one set of class probabilities (N, C), rows summing to 1, checked once.

    Per split S with marginal m = mean_{i in S} p_i: KL mean = mean_{i in S} sum_c p_ic log p_ic
    - sum_c m_c log m_c (the cross term sum_i p_ic log m_c sums to |S| m_c log m_c), so the per-image
    sum_c p log p is computed once and a resampling draw only averages rows."""

    def __init__(self, probs: np.ndarray) -> None:
        p = checks.features("generated", probs, min_rows=1, metric="Inception Score", as_float64=False)
        if (p < 0).any() or not np.allclose(p.sum(axis=1, dtype=np.float64), 1.0, atol=1e-4):
            raise InputError("Inception Score takes class probabilities: non-negative rows that sum to 1")
        self.probs = p  # as given: rows are converted to float64 when a split uses them
        self.plogp = np.empty(len(p))
        for start in range(0, len(p), 8192):
            rows = np.asarray(p[start : start + 8192], np.float64)
            self.plogp[start : start + 8192] = (rows * np.log(rows + _EPS)).sum(axis=1)

    def __call__(self, idx: np.ndarray, splits: int = 10, seed: int = 0) -> tuple[float, float]:
        """``(mean, std)`` over ``splits`` splits of the rows ``idx``, shuffled with ``seed``."""
        if splits < 1:
            raise InputError(f"IS needs splits >= 1, got {splits}")
        if len(idx) < splits:
            raise InputError(f"Inception Score needs at least {splits} generated samples, got {len(idx)}")
        order = np.asarray(idx)[np.random.default_rng(seed).permutation(len(idx))]
        size = len(order) // splits
        scores = []
        for k in range(splits):
            part = order[k * size : (k + 1) * size]
            marginal = np.asarray(self.probs[part], np.float64).mean(axis=0)
            kl = self.plogp[part].mean() - (marginal * np.log(marginal + _EPS)).sum()
            scores.append(np.exp(kl))
        return float(np.mean(scores)), float(np.std(scores))


def inception_score(probs: np.ndarray, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """IS of class probabilities ``probs`` (N, C), rows summing to 1; returns ``(mean, std)``."""
    if splits < 1:
        raise InputError(f"IS needs splits >= 1, got {splits}")
    return InceptionScorer(probs)(np.arange(len(probs)), splits, seed)
