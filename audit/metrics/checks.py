"""Input checks shared by every metric: 2-D finite float64 arrays with enough rows, or a clear error."""

from __future__ import annotations

import numpy as np

from audit.errors import InputError


def features(name: str, x: np.ndarray, *, min_rows: int, metric: str, as_float64: bool = True) -> np.ndarray:
    """Return ``x`` as a float64 (N, D) array, or raise :class:`InputError` naming the metric and need.

    ``as_float64=False`` checks a float array as it is (no copy: 50,000 x 2,048 float32 features would
    double to 800 MB), for callers that convert only the rows they use."""
    arr = np.asarray(x, dtype=np.float64) if as_float64 else np.asarray(x)
    if not as_float64 and arr.dtype.kind not in "fiu":
        raise InputError(f"{metric}: {name} features must be numbers, got dtype {arr.dtype}")
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
