"""Input checks shared by every metric: 2-D finite float64 arrays with enough rows, or a clear error."""

from __future__ import annotations

import numpy as np

from audit.errors import InputError


def features(name: str, x: np.ndarray, *, min_rows: int, metric: str) -> np.ndarray:
    """Return ``x`` as a float64 (N, D) array, or raise :class:`InputError` naming the metric and need."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"{metric}: {name} features must be a 2-D array (samples, dims), got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise InputError(f"{metric} needs at least {min_rows} {name} samples, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{metric}: {name} features contain NaN or infinity")
    return arr


def same_dims(metric: str, a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise InputError(f"{metric}: real and fake features differ in dimension: {a.shape[1]} vs {b.shape[1]}")
