"""Frechet distance between Gaussians fitted to two feature sets (FID when the features are Inception's).

FID = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)), computed in float64. The matrix square root
follows clean-fid's handling: if it is not finite, a small multiple of the identity is added to both
covariances; a significant imaginary part is an error, never silently dropped.
"""

from __future__ import annotations

import warnings

import numpy as np

from audit.errors import InputError
from audit.metrics import checks


def _check_features(name: str, x: np.ndarray, allow_singular: bool) -> np.ndarray:
    x = checks.features(name, x, min_rows=2, metric="FID", as_float64=False)
    n, d = x.shape
    if n <= d and not allow_singular:
        raise InputError(
            f"FID needs more {name} samples than feature dimensions (got {n} samples of dimension {d}): "
            "the covariance would be singular and FID unreliable; pass allow_singular=True to compute it anyway"
        )
    return x


_CHUNK = 8192  # rows converted to float64 at a time


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (float64) of features (N, D), accumulated over row chunks so that
    float32 input is never copied whole to float64 (50,000 x 2,048: 800 MB)."""
    x = np.asarray(features)
    n = len(x)
    mean = x.mean(axis=0, dtype=np.float64)
    scatter = np.zeros((x.shape[1], x.shape[1]))
    for start in range(0, n, _CHUNK):
        centred = np.asarray(x[start : start + _CHUNK], np.float64) - mean
        scatter += centred.T @ centred
    return mean, scatter / (n - 1)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise InputError(f"feature dimensions differ: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a near-singular product is handled below, not warned about
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ArithmeticError(
                f"imaginary component {np.max(np.abs(covmean.imag)):.3g} in the covariance square root: "
                "the covariances are too ill-conditioned (too few samples or degenerate features)"
            )
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def check_fid_inputs(
    real: np.ndarray, fake: np.ndarray, *, allow_singular: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Validate two feature sets for FID (2-D, finite, same dimension, more samples than dimensions
    unless ``allow_singular``); return them as given (:func:`gaussian_stats` converts to float64)."""
    real = _check_features("real", real, allow_singular)
    fake = _check_features("fake", fake, allow_singular)
    checks.same_dims("FID", real, fake)
    return real, fake


def fid(real: np.ndarray, fake: np.ndarray, *, allow_singular: bool = False) -> float:
    """FID between two feature sets (N_real, D) and (N_fake, D); see the module docstring."""
    real, fake = check_fid_inputs(real, fake, allow_singular=allow_singular)
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))
