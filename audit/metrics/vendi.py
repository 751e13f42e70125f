"""Vendi score (Friedman & Dieng 2023) with the cosine kernel: exp of the Shannon entropy of the
eigenvalues of K / n, K_ij = cos(x_i, x_j). The nonzero eigenvalues of X X^T / n equal those of
X^T X / n, so the smaller of the two is decomposed: O(n d min(n, d))."""

from __future__ import annotations

import numpy as np

from audit.errors import InputError
from audit.metrics import checks


def vendi_score(feats: np.ndarray) -> float:
    """Effective number of distinct samples, between 1 (all identical) and min(n, d)."""
    x = checks.features("generated", feats, min_rows=1, metric="Vendi score")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InputError("Vendi score (cosine kernel): a feature vector is all zeros")
    x = x / norms
    gram = x @ x.T if len(x) < x.shape[1] else x.T @ x  # the smaller of the two: same nonzero eigenvalues
    eig = np.linalg.eigvalsh(gram / len(x))
    eig = eig[eig > 1e-12]
    return float(np.exp(-(eig * np.log(eig)).sum()))
