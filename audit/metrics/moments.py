"""Metric statistics that merge: each shard (or block of rows) keeps a few sums, the merge adds them, and
the metric is computed from the merged sums with no row kept (docs/scale-out.md).

- :class:`Moments`: count, mean and centred sum of outer products, float64, merged by Chan, Golub and
  LeVeque's pairwise update (exact in real arithmetic, and stable: no ``sum x x^T - n mu mu^T``
  cancellation). Feeds the Frechet distance (FID, FD in CLIP space): :func:`frechet_from_moments`.
- :class:`CosineSecondMoment`: count and the summed ``d x d`` matrix of unit-normalised features, from
  which the Vendi score (cosine kernel) follows: the nonzero eigenvalues of K / n equal those of
  X^T X / n (see :mod:`audit.metrics.vendi`).
- :func:`merge_all`: a balanced pairwise tree of merges, so rounding grows with log(shards), not shards.

The merged value equals the one-pass value to rounding (``tests/test_metrics_moments.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from audit.errors import InputError

M = TypeVar("M", bound="Moments | CosineSecondMoment")


@dataclass(frozen=True)
class Moments:
    """Count, mean and centred scatter ``sum (x - mean)(x - mean)^T`` of a set of feature rows."""

    n: int
    mean: np.ndarray
    scatter: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> Moments:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise InputError(f"moments need a non-empty 2-D feature array, got shape {x.shape}")
        mean = x.mean(axis=0)
        centred = x - mean
        return cls(len(x), mean, centred.T @ centred)

    def merge(self, other: Moments) -> Moments:
        """The moments of both sets together (Chan et al. 1979)."""
        if self.mean.shape != other.mean.shape:
            raise InputError(f"feature dimensions differ: {self.mean.shape} vs {other.mean.shape}")
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        scatter = self.scatter + other.scatter + np.outer(delta, delta) * (self.n * other.n / n)
        return Moments(n, mean, scatter)

    def covariance(self) -> np.ndarray:
        """The unbiased covariance (ddof = 1), as :func:`audit.metrics.frechet.gaussian_stats` gives."""
        if self.n < 2:
            raise InputError("a covariance needs at least 2 rows")
        return self.scatter / (self.n - 1)


@dataclass(frozen=True)
class CosineSecondMoment:
    """Count and ``sum u u^T`` of the unit-normalised feature rows u."""

    n: int
    second: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> CosineSecondMoment:
        x = np.asarray(features, dtype=np.float64)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if (norms == 0).any():
            raise InputError("Vendi score (cosine kernel): a feature vector is all zeros")
        u = x / norms
        return cls(len(u), u.T @ u)

    def merge(self, other: CosineSecondMoment) -> CosineSecondMoment:
        return CosineSecondMoment(self.n + other.n, self.second + other.second)

    def vendi(self) -> float:
        """exp of the Shannon entropy of the eigenvalues of X^T X / n (those of K / n, but zeros)."""
        eig = np.linalg.eigvalsh(self.second / self.n)
        eig = eig[eig > 1e-12]
        return float(np.exp(-(eig * np.log(eig)).sum()))


def merge_all(parts: Sequence[M]) -> M:
    """Merge ``parts`` pairwise, as a balanced tree."""
    if not parts:
        raise InputError("nothing to merge")
    level = list(parts)
    while len(level) > 1:
        level = [level[i].merge(level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0]


def frechet_from_moments(a: Moments, b: Moments) -> float:
    """The Frechet distance between the Gaussians of two merged feature sets (clean-fid's sqrtm route)."""
    from audit.metrics.frechet import frechet_distance

    return frechet_distance(a.mean, a.covariance(), b.mean, b.covariance())
