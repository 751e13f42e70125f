"""Resampling by blocks of generated images, for samples too large to redraw image by image
(docs/large-samples.md).

At 50,000 generated 2,048-d features one exact FID bootstrap draw costs a 50,000 x 2,048^2 covariance
(4e11 flops), and one Vendi half-sample a 25,000 x 2,048^2 Gram matrix. Instead the generated images are
split once into 32 to 256 blocks (:func:`block_count`) by a seeded random balanced partition (so block order carries no
structure of the generation order), each block's sums are kept, and a draw combines block sums:

- **block bootstrap** (FID, FD in CLIP space): the blocks are drawn with replacement (multinomial
  counts); the draw's mean and covariance follow exactly from the counted blocks' sums. Block means are
  i.i.d. across a random partition, so the spread of a draw's mean is the spread of the full-sample
  mean, as in the image bootstrap.
- **block half-sample** (Vendi, KID): a random half of the blocks, without replacement; the value is the
  exact statistic of the images in those blocks.

Each draw then costs O(blocks d^2) plus one d x d symmetric eigenproblem, whatever n is. The price is a
noisier width: the spread is estimated from the blocks, within about 1/sqrt(2 (blocks - 1)) relative
(13% at 32 blocks, 4% at 256), so as many blocks are kept as :data:`BLOCK_MEMORY` allows. The widths were
checked against the spread over fresh samples and against the image-by-image schemes
(``tests/test_metrics_blocks.py``, ``tests/test_metrics.py``).
"""

from __future__ import annotations

import numpy as np

from audit.errors import InputError

MIN_BLOCKS, MAX_BLOCKS = 32, 256
BLOCK_MEMORY = 1 << 30  # bytes of d x d float64 block matrices per blocked metric (32 blocks at d = 2,048)


def block_count(n: int, dims: int) -> int:
    """How many blocks: as many as :data:`BLOCK_MEMORY` holds, between 32 and 256, at most n / 2."""
    return int(min(max(BLOCK_MEMORY // (8 * dims * dims), MIN_BLOCKS), MAX_BLOCKS, n // 2))


def block_labels(n: int, seed: int, blocks: int) -> np.ndarray:
    """The block (0 .. blocks-1) of each of ``n`` images: a seeded random partition into equal sizes
    (within one). The same ``seed`` and ``n`` give the same partition, so draws pair across cells."""
    if n < 2 * blocks:
        raise ValueError(f"block resampling needs at least {2 * blocks} images, got {n}")
    labels = np.arange(n) % blocks
    return labels[np.random.default_rng([seed, n]).permutation(n)]


def bootstrap_weights(rng: np.random.Generator, blocks: int) -> np.ndarray:
    """How often each block is drawn in one block bootstrap draw (multinomial, ``blocks`` draws)."""
    return rng.multinomial(blocks, np.full(blocks, 1.0 / blocks)).astype(np.float64)


def half_weights(rng: np.random.Generator, blocks: int) -> np.ndarray:
    """A random half of the blocks as 0/1 weights (one block half-sample draw)."""
    weights = np.zeros(blocks)
    weights[rng.permutation(blocks)[: blocks // 2]] = 1.0
    return weights


def _entropy_exp(eig: np.ndarray) -> float:
    eig = eig[eig > 1e-12]
    return float(np.exp(-(eig * np.log(eig)).sum()))


class FrechetBlocks:
    """Frechet distance from a fixed reference Gaussian (mu_r, S_r) to weighted unions of blocks.

    With S_r = V W V^T and P = W^(1/2) V^T, Tr (S_r S)^(1/2) = sum sqrt(eig(P S P^T)) (P S P^T is similar
    to S_r^(1/2) S S_r^(1/2)). Each block keeps n_b, s_b = sum y, tr_b = sum |y|^2 and the rotated
    scatter C_b = sum (P y)(P y)^T of y = x - m (m: the mean of all generated rows, so no large sums
    cancel); a draw with block weights c has N = c.n, s = c.s, covariance (sum c_b C_b - (P s)(P s)^T / N)
    / (N - 1) in the rotated frame and mean m + s / N.
    """

    def __init__(self, mu_r: np.ndarray, sigma_r: np.ndarray, fake: np.ndarray, labels: np.ndarray) -> None:
        w, v = np.linalg.eigh(sigma_r)
        rotate = (v * np.sqrt(np.maximum(w, 0.0))).T  # P
        self.mu_r, self.trace_r = mu_r, float(np.trace(sigma_r))
        self.centre = np.asarray(fake).mean(axis=0, dtype=np.float64)
        blocks, d = int(labels.max()) + 1, fake.shape[1]
        self.n = np.zeros(blocks)
        self.sums = np.zeros((blocks, d))
        self.rotated_sums = np.zeros((blocks, d))
        self.traces = np.zeros(blocks)
        self.scatter = np.zeros((blocks, d, d))
        for b in range(blocks):
            y = np.asarray(fake[labels == b], np.float64) - self.centre
            z = y @ rotate.T
            self.n[b] = len(y)
            self.sums[b], self.rotated_sums[b] = y.sum(axis=0), z.sum(axis=0)
            self.traces[b] = float(np.einsum("ij,ij->", y, y))
            self.scatter[b] = z.T @ z

    def __call__(self, weights: np.ndarray) -> float:
        """The Frechet distance of the blocks counted ``weights`` times (all ones: every image once)."""
        n = float(weights @ self.n)
        s, u = weights @ self.sums, weights @ self.rotated_sums
        cov = (np.tensordot(weights, self.scatter, axes=1) - np.outer(u, u) / n) / (n - 1)
        trace_f = (float(weights @ self.traces) - float(s @ s) / n) / (n - 1)
        diff = self.mu_r - (self.centre + s / n)
        eig = np.linalg.eigvalsh(cov)
        return float(diff @ diff + self.trace_r + trace_f - 2.0 * np.sqrt(np.maximum(eig, 0.0)).sum())


class CosineBlocks:
    """Vendi score (cosine kernel) of unions of blocks: each block keeps its row count and the d x d sum
    of x x^T over its unit-normalised rows; the union's nonzero kernel eigenvalues are those of the summed
    matrix over the summed count (see :mod:`audit.metrics.vendi`)."""

    def __init__(self, fake: np.ndarray, labels: np.ndarray) -> None:
        blocks, d = int(labels.max()) + 1, fake.shape[1]
        self.n = np.zeros(blocks)
        self.second = np.zeros((blocks, d, d))
        for b in range(blocks):
            x = np.asarray(fake[labels == b], np.float64)
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            if (norms == 0).any():  # as vendi_score says it: a zero vector has no direction
                raise InputError("Vendi score (cosine kernel): a feature vector is all zeros")
            x = x / norms
            self.n[b] = len(x)
            self.second[b] = x.T @ x

    def __call__(self, weights: np.ndarray) -> float:
        """The Vendi score of the blocks with weight 1 (``weights`` is 0/1: a set of blocks)."""
        gram = np.tensordot(weights, self.second, axes=1) / float(weights @ self.n)
        return _entropy_exp(np.linalg.eigvalsh(gram))


class KernelBlocks:
    """Unbiased MMD^2 (KID's cubic polynomial kernel) of unions of blocks against every real image, from
    sums made in one pass over the real-real, fake-fake and real-fake kernel values:
    the mean kernel over distinct real pairs, the (blocks x blocks) sums of k over fake pairs by block
    (diagonal terms included), each block's sum of k(x, x), and each block's sum of k(r, f) over every
    real r."""

    def __init__(
        self,
        within_real: float,
        pair_sums: np.ndarray,
        self_sums: np.ndarray,
        cross_sums: np.ndarray,
        sizes: np.ndarray,
        n_real: int,
    ) -> None:
        self.within_real, self.pair_sums, self.self_sums = within_real, pair_sums, self_sums
        self.cross_sums, self.sizes, self.n_real = cross_sums, sizes, n_real

    def __call__(self, weights: np.ndarray) -> float:
        """MMD^2 of the blocks with weight 1 (0/1 ``weights``) against all real images."""
        m = float(weights @ self.sizes)
        within_fake = (weights @ self.pair_sums @ weights - weights @ self.self_sums) / (m * (m - 1))
        return float(self.within_real + within_fake - 2.0 * (weights @ self.cross_sums) / (self.n_real * m))
