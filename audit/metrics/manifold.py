"""k-NN manifold metrics: precision and recall (Kynkaenniemi et al. 2019, k = 3), density and coverage
(Naeem et al. 2020, k = 5).

Each real sample's radius is the distance to its k-th nearest real neighbour (itself excluded); a fake
sample is "inside" a real ball when its distance is strictly smaller than that radius, as in the prdc
reference code. Distances are computed in row blocks, so memory is O(block * N), not O(N_real * N_fake).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from audit.metrics import checks

_BLOCK = 1024
PRECISION_K = 3  # Kynkaanniemi et al. 2019
DENSITY_K = 5  # Naeem et al. 2020


def _distances(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Euclidean distances from row blocks of ``a`` to all of ``b``."""
    b_sq = (b * b).sum(axis=1)
    for start in range(0, len(a), _BLOCK):
        block = a[start : start + _BLOCK]
        d2 = (block * block).sum(axis=1)[:, None] + b_sq[None, :] - 2.0 * block @ b.T
        yield slice(start, start + len(block)), np.sqrt(np.maximum(d2, 0.0))


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of ``x`` to its k-th nearest other row."""
    radii = np.empty(len(x))
    for rows, dist in _distances(x, x):
        radii[rows] = np.partition(dist, k, axis=1)[:, k]  # index 0 is the row itself (distance 0)
    return radii


def _inside_counts(centres: np.ndarray, radii: np.ndarray, points: np.ndarray) -> np.ndarray:
    """For each point, how many balls (centre, radius) contain it strictly."""
    counts = np.zeros(len(points), dtype=np.int64)
    for rows, dist in _distances(centres, points):
        counts += (dist < radii[rows, None]).sum(axis=0)
    return counts


def _checked(real: np.ndarray, fake: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    real = checks.features("real", real, min_rows=k + 1, metric=metric)
    fake = checks.features("fake", fake, min_rows=1, metric=metric)
    checks.same_dims(metric, real, fake)
    return real, fake


def precision_given_radii(real: np.ndarray, radii: np.ndarray, fake: np.ndarray) -> float:
    """Share of fake samples inside the union of real balls (``radii`` from :func:`knn_radii`)."""
    return float((_inside_counts(real, radii, fake) > 0).mean())


def density_given_radii(real: np.ndarray, radii: np.ndarray, fake: np.ndarray, k: int) -> float:
    """Mean number of real balls (``radii`` = k-NN radii) containing a fake sample, divided by k."""
    return float(_inside_counts(real, radii, fake).mean() / k)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Precision: share of fake samples inside the real manifold; recall: share of real samples inside
    the fake manifold (both manifolds are unions of k-NN balls)."""
    real, fake = _checked(real, fake, k, "precision/recall")
    checks.features("fake", fake, min_rows=k + 1, metric="precision/recall")
    precision = precision_given_radii(real, knn_radii(real, k), fake)
    recall = precision_given_radii(fake, knn_radii(fake, k), real)  # recall is precision with roles swapped
    return precision, recall


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    """Density: mean number of real k-NN balls containing a fake sample, divided by k; coverage: share of
    real samples whose ball contains at least one fake sample."""
    real, fake = _checked(real, fake, k, "density/coverage")
    radii = knn_radii(real, k)
    density = density_given_radii(real, radii, fake, k)
    nearest_fake = np.empty(len(real))
    for rows, dist in _distances(real, fake):
        nearest_fake[rows] = dist.min(axis=1)
    coverage = (nearest_fake < radii).mean()
    return density, float(coverage)
