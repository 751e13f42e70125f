"""Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
k(x, y) = (x . y / d + 1)^3, averaged over random equal-size subsets of the two feature sets."""

from __future__ import annotations

import numpy as np

from audit.errors import InputError
from audit.metrics import checks


def polynomial_mmd2(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased MMD^2 between two equal-size samples (m, D) with the cubic polynomial kernel."""
    m, d = real.shape
    k_rr = (real @ real.T / d + 1.0) ** 3
    k_ff = (fake @ fake.T / d + 1.0) ** 3
    k_rf = (real @ fake.T / d + 1.0) ** 3
    within = (k_rr.sum() - np.trace(k_rr) + k_ff.sum() - np.trace(k_ff)) / (m * (m - 1))
    return float(within - 2.0 * k_rf.sum() / (m * m))


def kid(
    real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID as ``(mean, std)`` over ``subsets`` draws of ``subset_size`` rows (without replacement) from
    each set; std is the population std over subsets (torchmetrics' convention)."""
    real = checks.features("real", real, min_rows=2, metric="KID", as_float64=False)
    fake = checks.features("fake", fake, min_rows=2, metric="KID", as_float64=False)
    checks.same_dims("KID", real, fake)
    if subsets < 1:
        raise InputError(f"KID needs subsets >= 1, got {subsets}")
    if not 2 <= subset_size <= min(len(real), len(fake)):
        raise InputError(
            f"KID subset_size must be between 2 and the smaller set's size ({min(len(real), len(fake))}), "
            f"got {subset_size}: pass a smaller subset_size or more samples"
        )
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    # one BLAS thread: OpenBLAS's float64 products move their last bits with the thread count, and a Ray
    # worker (one thread) must give the same KID, std included, as a two-thread process (docs/scale-out.md)
    with threadpool_limits(limits=1, user_api="blas"):
        scores = np.array(
            [
                polynomial_mmd2(
                    np.asarray(real[rng.choice(len(real), subset_size, replace=False)], np.float64),
                    np.asarray(fake[rng.choice(len(fake), subset_size, replace=False)], np.float64),
                )
                for _ in range(subsets)
            ]
        )
    return float(scores.mean()), float(scores.std())
