"""The real-reference score: how atypical an image's reconstruction features are among real images.

A detector calibrated on one generator learns that generator's direction (e.g. "lower error = generated")
and can be blind, or worse than blind, to a generator that errs the other way: on the embedded world the
two-class detector calibrated without the GAN scores the GAN's digits more real than real (issue 20).
This score needs no generated image: it models the real images' features and measures distance from
them in every direction, in the spirit of zero-shot detection from a model of real images only (ZED,
Cozzolino et al. 2024) and of deep nearest-neighbour out-of-distribution scores (Sun et al. 2022).

Which features, which distance (docs/detect.md, "The real-reference score"):

- the *null* columns of every noise-set block (the K errors and K predicted-noise norms, not the class
  evidence), log-transformed and averaged over the noise sets, so that one image is one point of 2K
  coordinates whatever the number of noise sets;
- standardised by the real images' mean and standard deviation;
- the score is the log of the mean Euclidean distance to the ``k`` nearest real images (default 5).
  Nonparametric, so it needs no Gaussian assumption the log errors do not meet; on the digits it beat a
  Ledoit-Wolf Mahalanobis distance on the GAN and the mixture and matched a 10-component Gaussian mixture
  (benchmarks/RESULTS.md, "real-reference probe").

A real image already in the reference would find itself at distance 0: :meth:`RealReference.atypicality`
with ``leave_one_out`` scores the reference's own rows without themselves (and without their perturbed
copies, when calibration is augmented), which is what calibration and the threshold use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audit.errors import InputError

DEFAULT_NEIGHBOURS = 5
DISTANCE_FLOOR = 1e-12  # exact duplicates: the log stays finite


def reference_view(log_features: np.ndarray, blocks: int, columns: int | None) -> np.ndarray:
    """The first ``columns`` columns of each of ``blocks`` equal column blocks of log features,
    averaged over the blocks (all of each block when ``columns`` is None)."""
    per_block = log_features.shape[1] // blocks
    columns = per_block if columns is None else int(columns)
    if not 0 < columns <= per_block:
        raise InputError(f"reference columns must be in 1..{per_block}, got {columns}")
    return np.mean([log_features[:, b * per_block : b * per_block + columns] for b in range(blocks)], axis=0)


class RealReference:
    """k-nearest-neighbour atypicality among real images' features (see the module docstring)."""

    def __init__(self, neighbours: int = DEFAULT_NEIGHBOURS) -> None:
        self.neighbours = int(neighbours)
        self._index: Any = None

    def fit(self, real: np.ndarray, groups: np.ndarray | None = None) -> RealReference:
        """Remember the real rows (images x coordinates), standardised by their own mean and scale.
        ``groups``: rows that are versions of one image (an original and its perturbed copies) share a
        group, and leave-one-out scoring leaves the whole group out."""
        real = np.asarray(real, dtype=np.float64)
        if len(real) < 2:
            raise InputError(f"the real-reference score needs at least 2 real images, got {len(real)}")
        self.mean_ = real.mean(0)
        scale = real.std(0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.rows_ = (real - self.mean_) / self.scale_
        self.groups_ = np.arange(len(real)) if groups is None else np.unique(groups, return_inverse=True)[1]
        if len(self.groups_) != len(real) or self.groups_.max() < 1:
            raise InputError("the real-reference score needs at least 2 real images, each with its group")
        return self

    @classmethod
    def from_arrays(cls, mean: np.ndarray, scale: np.ndarray, rows: np.ndarray, neighbours: int) -> RealReference:
        """A reference rebuilt from saved arrays."""
        ref = cls(neighbours)
        ref.mean_, ref.scale_, ref.rows_ = (np.asarray(a, dtype=np.float64) for a in (mean, scale, rows))
        if ref.rows_.ndim != 2 or ref.mean_.shape != (ref.rows_.shape[1],) or ref.scale_.shape != ref.mean_.shape:
            raise ValueError(f"reference arrays of inconsistent shapes {ref.rows_.shape}, {ref.mean_.shape}")
        return ref

    def atypicality(self, rows: np.ndarray, leave_one_out: bool = False) -> np.ndarray:
        """log mean distance of each of ``rows`` to its ``k`` nearest reference rows. ``leave_one_out``:
        ``rows`` *are* the reference's own (as fitted), each scored without itself and its group."""
        from sklearn.neighbors import NearestNeighbors

        if self._index is None:
            self._index = NearestNeighbors().fit(self.rows_)
        query = (np.asarray(rows, dtype=np.float64) - self.mean_) / self.scale_
        if not leave_one_out:
            dist, _ = self._index.kneighbors(query, n_neighbors=min(self.neighbours, len(self.rows_)))
            return np.log(np.maximum(dist.mean(1), DISTANCE_FLOOR))
        if query.shape != self.rows_.shape:
            raise ValueError("leave_one_out scores the reference's own rows")
        largest = int(np.bincount(self.groups_).max())
        k = max(1, min(self.neighbours, len(self.rows_) - largest))
        dist, idx = self._index.kneighbors(query, n_neighbors=min(len(self.rows_), k + largest))
        # the k nearest outside the row's own group (an exact duplicate from another image stays, at 0)
        outside = self.groups_[idx] != self.groups_[:, None]
        first = np.argsort(~outside, axis=1, kind="stable")[:, :k]
        return np.log(np.maximum(np.take_along_axis(dist, first, 1).mean(1), DISTANCE_FLOOR))
