"""One pass over each pair of feature sets (real-real, fake-fake, real-fake) for samples above the dense
limit, collecting everything the metrics and their resampling draws need (docs/large-samples.md).

Each pass multiplies row blocks of :data:`ROWS` rows against the whole other set once, in float32 (BLAS
sgemm, about twice float64's speed), and takes from each Gram block both the cubic polynomial kernel
(KID) and the squared distances (k-NN metrics):

- real-real: each real image's 3rd and 5th nearest-neighbour radius (precision, density, coverage) and
  the mean kernel over distinct real pairs;
- fake-fake: each generated image's :data:`NEIGHBOURS` nearest generated images (its recall radius,
  in the full sample and in any half-sample) and the kernel sums by pairs of blocks;
- real-fake: per generated image, inside a real 3-NN ball or not (precision) and in how many real 5-NN
  balls (density), and its kernel sum over all real images; per real image, inside a generated ball or
  not (recall) and its nearest generated image (coverage); the (real, fake) pairs that half-sample recall
  and coverage can need (:class:`SparseManifold`).

Distances are compared squared, in float32: a pair within about 1e-7 (relative) of a radius may fall on
the other side of it than in float64, which can move precision, recall, density or coverage by one
image in rare ties. Below the dense limit everything stays in float64 (:mod:`audit.metrics.resampling`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from audit.metrics.blocks import KernelBlocks
from audit.metrics.manifold import DENSITY_K, PRECISION_K

ROWS = 1024  # rows per Gram block: 1,024 x 50,000 float32 is 205 MB
NEIGHBOURS = 32  # fake-fake neighbours kept per generated image for half-sample recall


class SparseManifold:
    """Half-sample recall and coverage from lists built once: O(N * NEIGHBOURS + pairs) per draw.

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

    def __init__(
        self,
        real: np.ndarray,
        fake: np.ndarray,
        neighbours: tuple[np.ndarray, np.ndarray],
        recall_pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
        cover_pairs: tuple[np.ndarray, np.ndarray],
    ) -> None:
        self.real, self.fake = real, fake
        self.nbr_idx, self.nbr_dist = neighbours
        self.recall_r, self.recall_f, self.recall_d = recall_pairs
        self.cover_r, self.cover_f = cover_pairs

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
            centre = np.asarray(self.fake[f], np.float64)
            members = np.asarray(self.fake[idx[idx != f]], np.float64)
            d_s = np.sqrt(np.maximum(((members - centre) ** 2).sum(axis=1), 0.0))
            radius[f] = np.partition(d_s, PRECISION_K - 1)[PRECISION_K - 1]
            covered |= np.sqrt(((np.asarray(self.real, np.float64) - centre) ** 2).sum(axis=1)) < radius[f]
        keep = self.recall_d < radius[self.recall_f]
        covered[self.recall_r[keep]] = True
        recall = float(covered.mean())
        hit = np.zeros(len(self.real), dtype=bool)
        hit[self.cover_r[chosen[self.cover_f]]] = True
        return recall, float(hit.mean())


def _grams(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Row blocks of ``a @ b.T`` (float32)."""
    for start in range(0, len(a), ROWS):
        block = a[start : start + ROWS]
        yield slice(start, start + len(block)), block @ b.T


def _cubic_kernel(gram: np.ndarray, dims: int) -> np.ndarray:
    """KID's kernel (x . y / d + 1)^3 from a Gram block, as a new array."""
    base = gram * np.float32(1.0 / dims)
    base += 1.0
    cube = base * base
    cube *= base
    return cube


def _self_kernel(x: np.ndarray, dims: int) -> np.ndarray:
    """k(x, x) per row, in float64 (the diagonal the unbiased MMD leaves out)."""
    sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    return (sq / dims + 1.0) ** 3


def _to_squared_distances(gram: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """|a|^2 + |b|^2 - 2 a.b, clipped at 0, written over ``gram``."""
    gram *= -2.0
    gram += a_sq[:, None]
    gram += b_sq[None, :]
    np.maximum(gram, 0.0, out=gram)
    return gram


def _smallest(d2: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest values per row, ascending, and their columns (torch's top-k: about 10x numpy's
    partition on 50,000-wide rows)."""
    import torch

    values, index = torch.topk(torch.from_numpy(d2), k, dim=1, largest=False, sorted=True)
    return values.numpy(), index.numpy()


class NeighbourPasses:
    """The three passes over ``real`` and ``fake`` (see the module docstring); ``labels`` is each
    generated image's block (:func:`audit.metrics.blocks.block_labels`) for the kernel sums.

    Results, per generated image in input order: ``inside3`` (bool), ``balls5`` (count); per real
    image: ``radii5``; the full-sample ``recall`` and ``coverage``; ``sparse`` (half-sample recall and
    coverage) and ``kernel`` (half-sample KID by blocks)."""

    def __init__(self, real: np.ndarray, fake: np.ndarray, labels: np.ndarray) -> None:
        n_r, n_f, dims = len(real), len(fake), real.shape[1]
        order = np.argsort(labels, kind="stable")  # generated images grouped by block
        sorted_labels = labels[order]
        blocks = int(labels.max()) + 1
        starts = np.searchsorted(sorted_labels, np.arange(blocks))
        r = np.ascontiguousarray(real, dtype=np.float32)
        f = np.ascontiguousarray(np.asarray(fake)[order], dtype=np.float32)
        r_sq = np.einsum("ij,ij->i", r, r)
        f_sq = np.einsum("ij,ij->i", f, f)

        r3, r5 = np.empty(n_r, np.float32), np.empty(n_r, np.float32)
        within_real = 0.0
        for rows, gram in _grams(r, r):
            within_real += float(_cubic_kernel(gram, dims).sum(dtype=np.float64))
            nearest, _ = _smallest(_to_squared_distances(gram, r_sq[rows], r_sq), DENSITY_K + 1)
            r3[rows], r5[rows] = nearest[:, PRECISION_K], nearest[:, DENSITY_K]  # column 0: the row itself
        within_real = (within_real - _self_kernel(r, dims).sum()) / (n_r * (n_r - 1))

        kept = min(NEIGHBOURS, n_f - 1)
        nbr_d2, nbr_idx = np.empty((n_f, kept), np.float32), np.empty((n_f, kept), np.int64)
        pair_sums = np.zeros((blocks, blocks))
        for rows, gram in _grams(f, f):
            by_block = np.add.reduceat(_cubic_kernel(gram, dims), starts, axis=1, dtype=np.float64)
            np.add.at(pair_sums, sorted_labels[rows], by_block)
            d2 = _to_squared_distances(gram, f_sq[rows], f_sq)
            d2[np.arange(len(d2)), np.arange(rows.start, rows.stop)] = np.inf  # itself is no neighbour
            nbr_d2[rows], nbr_idx[rows] = _smallest(d2, kept)
        fake_r3, reach = nbr_d2[:, PRECISION_K - 1], nbr_d2[:, -1]

        inside3, balls5 = np.zeros(n_f, bool), np.zeros(n_f, np.int64)
        cross = np.zeros(n_f)
        nearest_fake, recall_hit = np.empty(n_r, np.float32), np.zeros(n_r, bool)
        recall_pairs, cover_pairs = [], []
        for rows, gram in _grams(r, f):
            cross += _cubic_kernel(gram, dims).sum(axis=0, dtype=np.float64)
            d2 = _to_squared_distances(gram, r_sq[rows], f_sq)
            inside3 |= (d2 < r3[rows, None]).any(axis=0)
            balls5 += (d2 < r5[rows, None]).sum(axis=0)
            nearest_fake[rows] = d2.min(axis=1)
            recall_hit[rows] = (d2 < fake_r3[None, :]).any(axis=1)
            i, j = np.nonzero(d2 < reach[None, :])
            recall_pairs.append((i + rows.start, order[j], np.sqrt(d2[i, j].astype(np.float64))))
            i, j = np.nonzero(d2 < r5[rows, None])
            cover_pairs.append((i + rows.start, order[j]))

        self.inside3, self.balls5 = np.empty(n_f, bool), np.empty(n_f, np.int64)
        self.inside3[order], self.balls5[order] = inside3, balls5
        self.radii5 = np.sqrt(r5.astype(np.float64))
        self.recall = float(recall_hit.mean())
        self.coverage = float((nearest_fake < r5).mean())
        neighbours = np.empty_like(nbr_idx), np.empty((n_f, kept))
        neighbours[0][order], neighbours[1][order] = order[nbr_idx], np.sqrt(nbr_d2.astype(np.float64))
        self.sparse = SparseManifold(
            real,
            fake,
            neighbours,
            tuple(np.concatenate(x) for x in zip(*recall_pairs, strict=True)),
            tuple(np.concatenate(x) for x in zip(*cover_pairs, strict=True)),
        )
        self.kernel = KernelBlocks(
            within_real,
            pair_sums,
            np.add.reduceat(_self_kernel(f, dims), starts),
            np.add.reduceat(cross, starts),
            np.diff(np.append(starts, n_f)).astype(np.float64),
            n_r,
        )
