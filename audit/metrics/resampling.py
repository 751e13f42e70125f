"""The evaluator's resampling draws, made cheap by computing everything that does not change between
draws once.

With the reference set fixed, precision, density, class adherence and CLIP-score are means over
generated images of a per-image quantity (inside a real ball or not, how many balls, classified right
or not, the pair's CLIP-score): they are computed per image once, and a draw is one ``mean``. The
Frechet distances reuse the reference's covariance square root A = S_r^(1/2):
Tr (S_r S_f)^(1/2) = sum sqrt(eig(A S_f A)), a symmetric eigenproblem instead of a general sqrtm.
Half-sample recall, coverage and KID index into real-fake and fake-fake distance and kernel matrices
computed once. Above :data:`DENSE_LIMIT` entries those matrices are not built and each draw calls the
metric functions directly (same values, more time).
"""

from __future__ import annotations

import numpy as np

from audit.metrics.clip_score import clip_score
from audit.metrics.frechet import gaussian_stats
from audit.metrics.inception_score import inception_score
from audit.metrics.kid import kid
from audit.metrics.manifold import _distances, density_coverage, knn_radii, precision_recall
from audit.metrics.vendi import vendi_score

PRECISION_K = 3  # Kynkaanniemi et al. 2019
DENSITY_K = 5  # Naeem et al. 2020
DENSE_LIMIT = 16_000_000  # entries of the largest precomputed matrix (128 MiB in float64)


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
    """Per-draw values of every metric for index sets into the generated images."""

    def __init__(
        self,
        real: dict[str, np.ndarray],
        fake: dict[str, np.ndarray],
        text_emb: np.ndarray | None,
        labels: np.ndarray | None,
        kid_subset_size: int,
    ) -> None:
        r, f = real["features"], fake["features"]
        self.real, self.fake, self.kid_subset_size = r, fake, kid_subset_size
        self.fid = FrechetToReference(*gaussian_stats(r))
        self.fd_clip = None
        if "clip" in real and "clip" in fake and len(real["clip"]) > real["clip"].shape[1]:
            self.fd_clip = FrechetToReference(*gaussian_stats(np.asarray(real["clip"], np.float64)))
        # per generated image: inside a k=3 real ball (precision), number of k=5 real balls (density)
        radii3, self.radii5 = knn_radii(r, PRECISION_K), knn_radii(r, DENSITY_K)
        inside3 = np.zeros(len(f), dtype=bool)
        self.balls5 = np.zeros(len(f))
        self.dense = len(r) * len(f) <= DENSE_LIMIT and len(f) ** 2 <= DENSE_LIMIT
        d_rf = np.empty((len(r), len(f))) if self.dense else None
        for rows, dist in _distances(r, f):
            inside3 |= (dist < radii3[rows, None]).any(axis=0)
            self.balls5 += (dist < self.radii5[rows, None]).sum(axis=0)
            if d_rf is not None:
                d_rf[rows] = dist
        self.inside3 = inside3.astype(float)
        self.correct = None if labels is None or "probs" not in fake else (fake["probs"].argmax(1) == labels) * 1.0
        self.clip_pairs = None
        if text_emb is not None and "clip" in fake:
            self.clip_pairs = np.array(
                [clip_score(fake["clip"][i : i + 1], text_emb[i : i + 1]) for i in range(len(f))]
            )
        if self.dense:
            self.d_rf = d_rf
            self.d_ff = np.sqrt(np.maximum((f * f).sum(1)[:, None] + (f * f).sum(1)[None, :] - 2.0 * f @ f.T, 0.0))
            d = f.shape[1]
            k_rr = (r @ r.T / d + 1.0) ** 3
            self.kid_within_real = (k_rr.sum() - np.trace(k_rr)) / (len(r) * (len(r) - 1))
            self.k_ff = (f @ f.T / d + 1.0) ** 3
            self.kid_cross = ((r @ f.T / d + 1.0) ** 3).sum(axis=0)  # per generated image

    def bootstrap(self, idx: np.ndarray) -> dict[str, float]:
        """Metrics resampled with replacement (``idx`` may repeat)."""
        out = {
            "fid": self.fid(self.fake["features"][idx]),
            "precision": float(self.inside3[idx].mean()),
            "density": float(self.balls5[idx].mean() / DENSITY_K),
        }
        if self.fd_clip is not None and len(idx) > self.fake["clip"].shape[1]:
            out["fd_clip"] = self.fd_clip(np.asarray(self.fake["clip"][idx], np.float64))
        if self.correct is not None:
            out["class_adherence"] = float(self.correct[idx].mean())
        if self.clip_pairs is not None:
            out["clip_score"] = float(self.clip_pairs[idx].mean())
        return out

    def half(self, idx: np.ndarray, seed: int) -> dict[str, float]:
        """Metrics on a half-sample drawn without replacement (``idx`` distinct)."""
        feats = self.fake["features"][idx]
        if self.dense:
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
        else:
            recall = precision_recall(self.real, feats, k=PRECISION_K)[1]
            coverage = density_coverage(self.real, feats, k=DENSITY_K)[1]
            size = min(self.kid_subset_size, len(self.real), len(idx))
            kid_value = kid(self.real, feats, subsets=10, subset_size=size, seed=seed)[0]
        out = {"recall": recall, "coverage": coverage, "vendi": vendi_score(feats), "kid": kid_value}
        if "probs" in self.fake:
            out["inception_score"] = inception_score(self.fake["probs"][idx], splits=min(10, len(idx)), seed=seed)[0]
        return out
