"""The evaluator's resampling draws, made cheap by computing everything that does not change between
draws once (docs/large-samples.md).

With the reference set fixed, precision, density, class adherence and CLIP-score are means over
generated images of a per-image quantity (inside a real ball or not, how many balls, classified right
or not, the pair's CLIP-score): they are computed per image once, and a draw is one ``mean``.

Up to :data:`DENSE_LIMIT` entries per matrix (about 4,000 x 4,000 images), every draw is image by image:
the Frechet distances reuse the reference's covariance square root A = S_r^(1/2),
Tr (S_r S_f)^(1/2) = sum sqrt(eig(A S_f A)), a symmetric eigenproblem instead of a general sqrtm; half-sample
recall, coverage and KID index into real-fake and fake-fake distance and kernel matrices computed once,
in float64.

Above it, one float32 pass over each pair of sets (:class:`audit.metrics.neighbour_passes.NeighbourPasses`)
gives the per-image quantities, the full-sample recall and coverage, neighbour lists for half-sample
recall and coverage (image by image, O(N * 32 + pairs) per draw), and kernel sums by block; FID, FD in
CLIP space, Vendi and KID are then resampled by blocks of generated images
(:mod:`audit.metrics.blocks`), so no draw costs O(N d^2) or O(N^2).
"""

from __future__ import annotations

import numpy as np

from audit.metrics.blocks import (
    CosineBlocks,
    FrechetBlocks,
    block_count,
    block_labels,
    bootstrap_weights,
    half_weights,
)
from audit.metrics.clip_score import clip_score
from audit.metrics.frechet import gaussian_stats
from audit.metrics.inception_score import InceptionScorer
from audit.metrics.manifold import DENSITY_K, PRECISION_K, _distances, density_coverage, knn_radii, precision_recall
from audit.metrics.neighbour_passes import NeighbourPasses
from audit.metrics.vendi import vendi_score

__all__ = ["DENSE_LIMIT", "DENSITY_K", "PRECISION_K", "FrechetToReference", "Resampler"]

DENSE_LIMIT = 16_000_000  # entries of the largest precomputed matrix (128 MiB in float64)
BLOCKED = ("fid", "fd_clip", "vendi", "kid")  # resampled by blocks above the dense limit


class FrechetToReference:
    """Frechet distance from a fixed Gaussian (mu_r, S_r) to the Gaussian of any feature set."""

    def __init__(self, mu: np.ndarray, sigma: np.ndarray) -> None:
        w, v = np.linalg.eigh(sigma)
        self.root = (v * np.sqrt(np.maximum(w, 0.0))) @ v.T
        self.mu, self.trace = mu, float(np.trace(sigma))

    def __call__(self, features: np.ndarray) -> float:
        mu, sigma = gaussian_stats(features)
        eig = np.linalg.eigvalsh(self.root @ sigma @ self.root)
        diff = self.mu - mu
        return float(diff @ diff + self.trace + np.trace(sigma) - 2.0 * np.sqrt(np.maximum(eig, 0.0)).sum())


class Resampler:
    """Per-draw values of every metric for index sets into the generated images (and, above the dense
    limit, block weights drawn from ``block_rng``; see the module docstring). ``blocked`` names the
    metrics resampled by blocks."""

    def __init__(
        self,
        real: dict[str, np.ndarray],
        fake: dict[str, np.ndarray],
        text_emb: np.ndarray | None,
        labels: np.ndarray | None,
        seed: int = 0,
    ) -> None:
        r, f = real["features"], fake["features"]
        self.real, self.fake = r, fake
        self.dense = len(r) * len(f) <= DENSE_LIMIT and len(f) ** 2 <= DENSE_LIMIT
        self.blocked: tuple[str, ...] = () if self.dense else BLOCKED
        self.correct = None if labels is None or "probs" not in fake else (fake["probs"].argmax(1) == labels) * 1.0
        self.clip_pairs = None
        if text_emb is not None and "clip" in fake:
            self.clip_pairs = np.array(
                [clip_score(fake["clip"][i : i + 1], text_emb[i : i + 1]) for i in range(len(f))]
            )
        self.inception = InceptionScorer(fake["probs"]) if "probs" in fake else None
        with_clip = "clip" in real and "clip" in fake and len(real["clip"]) > real["clip"].shape[1]
        # the reference's Gaussians, once: every draw's and the point estimates' (evaluator) reference side
        self.real_stats = gaussian_stats(r)
        self.clip_stats = gaussian_stats(np.asarray(real["clip"], np.float64)) if with_clip else None
        if self.dense:
            self.fid = FrechetToReference(*self.real_stats)
            self.fd_clip = FrechetToReference(*self.clip_stats) if self.clip_stats else None
            self._dense_matrices(r, f)
            return
        self.block_of = block_labels(len(f), seed, block_count(len(f), f.shape[1]))
        self.blocks = int(self.block_of.max()) + 1
        passes = NeighbourPasses(r, f, self.block_of)
        self.inside3, self.balls5 = passes.inside3 * 1.0, passes.balls5
        self.full_recall, self.full_coverage = passes.recall, passes.coverage
        self.sparse, self.kernel = passes.sparse, passes.kernel
        self.fid = FrechetBlocks(*self.real_stats, f, self.block_of)
        self.fd_clip = FrechetBlocks(*self.clip_stats, fake["clip"], self.block_of) if self.clip_stats else None
        self.vendi = CosineBlocks(f, self.block_of)

    def _dense_matrices(self, r: np.ndarray, f: np.ndarray) -> None:
        """Per-image precision and density, and the distance and kernel matrices the draws index into."""
        radii3, self.radii5 = knn_radii(r, PRECISION_K), knn_radii(r, DENSITY_K)
        inside3 = np.zeros(len(f), dtype=bool)
        self.balls5 = np.zeros(len(f))
        self.d_rf = np.empty((len(r), len(f)))
        for rows, dist in _distances(r, f):
            inside3 |= (dist < radii3[rows, None]).any(axis=0)
            self.balls5 += (dist < self.radii5[rows, None]).sum(axis=0)
            self.d_rf[rows] = dist
        self.inside3 = inside3.astype(float)
        self.d_ff = np.sqrt(np.maximum((f * f).sum(1)[:, None] + (f * f).sum(1)[None, :] - 2.0 * f @ f.T, 0.0))
        d = f.shape[1]
        r, f = r.astype(np.float64, copy=False), f.astype(np.float64, copy=False)  # float32 products move
        # their last bits with the BLAS thread count (and so would a Ray worker's draws against this process's)
        k_rr = (r @ r.T / d + 1.0) ** 3
        self.kid_within_real = (k_rr.sum() - np.trace(k_rr)) / (len(r) * (len(r) - 1))
        self.k_ff = (f @ f.T / d + 1.0) ** 3
        self.kid_cross = ((r @ f.T / d + 1.0) ** 3).sum(axis=0)  # per generated image

    def recall_coverage(self) -> tuple[float, float]:
        """Recall and coverage of the full sample."""
        if not self.dense:
            return self.full_recall, self.full_coverage
        f = self.fake["features"]
        return precision_recall(self.real, f, k=PRECISION_K)[1], density_coverage(self.real, f, k=DENSITY_K)[1]

    def vendi_value(self) -> float:
        """The Vendi score of the full sample."""
        return vendi_score(self.fake["features"]) if self.dense else self.vendi(np.ones(self.blocks))

    def bootstrap(self, idx: np.ndarray, block_rng: np.random.Generator | None = None) -> dict[str, float]:
        """Metrics resampled with replacement (``idx`` may repeat); above the dense limit the Frechet
        distances draw blocks from ``block_rng`` (None: every block once, the full sample)."""
        weights = None
        if not self.dense:
            weights = np.ones(self.blocks) if block_rng is None else bootstrap_weights(block_rng, self.blocks)
        out = {
            "fid": self.fid(self.fake["features"][idx] if self.dense else weights),
            "precision": float(self.inside3[idx].mean()),
            "density": float(self.balls5[idx].mean() / DENSITY_K),
        }
        if self.fd_clip is not None and len(idx) > self.fake["clip"].shape[1]:
            clip = np.asarray(self.fake["clip"][idx], np.float64) if self.dense else weights
            out["fd_clip"] = self.fd_clip(clip)
        if self.correct is not None:
            out["class_adherence"] = float(self.correct[idx].mean())
        if self.clip_pairs is not None:
            out["clip_score"] = float(self.clip_pairs[idx].mean())
        return out

    def half(self, idx: np.ndarray, seed: int, block_rng: np.random.Generator | None = None) -> dict[str, float]:
        """Metrics on a half-sample drawn without replacement (``idx`` distinct); above the dense limit
        Vendi and KID take a random half of the blocks from ``block_rng``."""
        if self.dense:
            feats = self.fake["features"][idx]
            d_rf = self.d_rf[:, idx]
            fake_radii = np.partition(self.d_ff[np.ix_(idx, idx)], PRECISION_K, axis=1)[:, PRECISION_K]
            recall = float((d_rf < fake_radii[None, :]).any(axis=1).mean())
            coverage = float((d_rf.min(axis=1) < self.radii5).mean())
            m = len(idx)
            k = self.k_ff[np.ix_(idx, idx)]
            within_fake = (k.sum() - np.trace(k)) / (m * (m - 1))
            kid_value = float(
                self.kid_within_real + within_fake - 2.0 * self.kid_cross[idx].sum() / (len(self.real) * m)
            )
            vendi = vendi_score(feats)
        else:
            if block_rng is None:
                raise ValueError("half-samples above the dense limit draw blocks: pass block_rng")
            recall, coverage = self.sparse.half(idx)
            weights = half_weights(block_rng, self.blocks)
            kid_value, vendi = self.kernel(weights), self.vendi(weights)
        out = {"recall": recall, "coverage": coverage, "vendi": vendi, "kid": kid_value}
        if self.inception is not None:
            out["inception_score"] = self.inception(idx, splits=min(10, len(idx)), seed=seed)[0]
        return out
