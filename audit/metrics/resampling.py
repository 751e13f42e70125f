"""The evaluator's resampling draws, made cheap by computing everything that does not change between
draws once.

With the reference set fixed, precision, density, class adherence and CLIP-score are means over
generated images of a per-image quantity (inside a real ball or not, how many balls, classified right
or not, the pair's CLIP-score): they are computed per image once, and a draw is one ``mean``. The
Frechet distances reuse the reference's covariance square root A = S_r^(1/2):
Tr (S_r S_f)^(1/2) = sum sqrt(eig(A S_f A)), a symmetric eigenproblem instead of a general sqrtm.
Half-sample recall, coverage and KID index into real-fake and fake-fake distance and kernel matrices
computed once. Above :data:`DENSE_LIMIT` entries those matrices are not built; half-sample recall and
coverage then come from neighbour lists built in one pass (:class:`SparseManifold`: the same values, no
O(N^2) work per draw), and KID from its subsets.
"""

from __future__ import annotations

import numpy as np

from audit.metrics.clip_score import clip_score
from audit.metrics.frechet import gaussian_stats
from audit.metrics.inception_score import inception_score
from audit.metrics.kid import kid
from audit.metrics.manifold import _distances, knn_radii
from audit.metrics.vendi import vendi_score

PRECISION_K = 3  # Kynkaanniemi et al. 2019
DENSITY_K = 5  # Naeem et al. 2020
DENSE_LIMIT = 16_000_000  # entries of the largest precomputed matrix (128 MiB in float64)
NEIGHBOURS = 32  # fake-fake neighbours kept per generated image for half-sample recall (SparseManifold)


class SparseManifold:
    """Half-sample recall and coverage from lists built once, for feature sets too large for the dense
    matrices: O(N^2 d) once (in row blocks, O(block * N) memory), then O(N * NEIGHBOURS + pairs) per draw.

    - Recall (k = 3): a real sample counts when some fake f of the half-sample S has it strictly inside
      its ball, whose radius is f's 3rd nearest neighbour *within S*. Each fake keeps its
      :data:`NEIGHBOURS` nearest fakes, so its radius in S is read off that list; every (real, fake) pair
      closer than the fake's NEIGHBOURS-th neighbour is kept, which holds every pair a radius read off
      the list can admit. A fake with fewer than 3 of its listed neighbours in S (probability about
      1e-7 per fake at half size) gets its radius and pairs computed exactly, against S and every real.
    - Coverage (k = 5): a real sample counts when some fake of S lies strictly inside its (fixed) ball;
      every (real, fake) pair inside a real ball is kept.

    The values equal :func:`audit.metrics.manifold.precision_recall` and ``density_coverage`` on the
    half-sample (``tests/test_metrics.py``)."""

    def __init__(self, real: np.ndarray, fake: np.ndarray, real_radii5: np.ndarray) -> None:
        self.real, self.fake = real, fake
        n_fake = len(fake)
        kept = min(NEIGHBOURS, n_fake - 1)
        self.nbr_idx = np.empty((n_fake, kept), dtype=np.int64)
        self.nbr_dist = np.empty((n_fake, kept))
        for rows, dist in _distances(fake, fake):
            dist[np.arange(dist.shape[0]), np.arange(rows.start, rows.stop)] = np.inf  # itself is no neighbour
            part = np.argpartition(dist, kept - 1, axis=1)[:, :kept]
            order = np.argsort(np.take_along_axis(dist, part, axis=1), axis=1, kind="stable")
            self.nbr_idx[rows] = np.take_along_axis(part, order, axis=1)
            self.nbr_dist[rows] = np.take_along_axis(dist, self.nbr_idx[rows], axis=1)
        reach = self.nbr_dist[:, -1]
        recall_pairs, cover_pairs = [], []
        for rows, dist in _distances(real, fake):
            r, f = np.nonzero(dist < reach[None, :])
            recall_pairs.append((r + rows.start, f, dist[r, f]))
            r, f = np.nonzero(dist < real_radii5[rows, None])
            cover_pairs.append((r + rows.start, f))
        self.recall_r, self.recall_f, self.recall_d = (np.concatenate(x) for x in zip(*recall_pairs, strict=True))
        self.cover_r, self.cover_f = (np.concatenate(x) for x in zip(*cover_pairs, strict=True))

    def half(self, idx: np.ndarray) -> tuple[float, float]:
        """(recall, coverage) of the half-sample ``idx`` (distinct indices into the fakes)."""
        chosen = np.zeros(len(self.fake), dtype=bool)
        chosen[idx] = True
        in_s = chosen[self.nbr_idx[idx]]
        counts = np.cumsum(in_s, axis=1)
        third = np.argmax(counts >= PRECISION_K, axis=1)
        radius = np.full(len(self.fake), -np.inf)
        radius[idx] = self.nbr_dist[idx, third]
        covered = np.zeros(len(self.real), dtype=bool)
        short = idx[counts[:, -1] < PRECISION_K]  # too few listed neighbours in S: exactly, from scratch
        for f in short:
            members = self.fake[idx[idx != f]]
            d_s = np.sqrt(np.maximum(((members - self.fake[f]) ** 2).sum(axis=1), 0.0))
            radius[f] = np.partition(d_s, PRECISION_K - 1)[PRECISION_K - 1]
            covered |= np.sqrt(((self.real - self.fake[f]) ** 2).sum(axis=1)) < radius[f]
        keep = self.recall_d < radius[self.recall_f]
        covered[self.recall_r[keep]] = True
        recall = float(covered.mean())
        hit = np.zeros(len(self.real), dtype=bool)
        hit[self.cover_r[chosen[self.cover_f]]] = True
        return recall, float(hit.mean())


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
        self.sparse = None if self.dense else SparseManifold(r, f, self.radii5)
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
            recall, coverage = self.sparse.half(idx)
            size = min(self.kid_subset_size, len(self.real), len(idx))
            kid_value = kid(self.real, feats, subsets=10, subset_size=size, seed=seed)[0]
        out = {"recall": recall, "coverage": coverage, "vendi": vendi_score(feats), "kid": kid_value}
        if "probs" in self.fake:
            out["inception_score"] = inception_score(self.fake["probs"][idx], splits=min(10, len(idx)), seed=seed)[0]
        return out
