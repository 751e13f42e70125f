"""Near-duplicate images by 64-bit difference hash, in memory and time that grow with the data, not its square.

Two hashes within ``max_bits`` bits of each other agree exactly on at least one of ``max_bits + 1``
disjoint bands of their bits (pigeonhole): multi-index hashing (Norouzi et al., "Fast Search in Hamming
Space with Multi-Index Hashing", CVPR 2012). So only hashes that share a band value are compared, band
by band, and a pair is counted in the first band it shares (never twice). Identical hashes are merged
first and weighted by their count, so 3,000 copies of one picture cost one comparison, not 4.5 million.

The result is clusters (connected components of "within ``max_bits``"), their sizes and the exact number
of near-duplicate pairs, never the list of pairs itself: that list is quadratic in a cluster's size.
Peak memory is O(n) plus one tile of comparisons (:data:`ROWS_PER_BLOCK` x :data:`COLS_PER_BLOCK`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROWS_PER_BLOCK = 256
COLS_PER_BLOCK = 16_384  # a tile is at most 256 x 16,384 comparisons (32 MB of uint64)


@dataclass
class NearDuplicates:
    """``clusters``: member indices of each cluster of two or more (largest first, members in input
    order); ``pairs``: how many index pairs are within ``max_bits``."""

    clusters: list[list[int]]
    pairs: int
    max_bits: int


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(axis=-1).astype(np.int64)


def _bands(max_bits: int) -> list[tuple[int, np.uint64]]:
    """``max_bits + 1`` disjoint bands covering the 64 bits: (shift, mask) each."""
    n = max_bits + 1
    widths = [64 // n + (1 if i < 64 % n else 0) for i in range(n)]
    bands, shift = [], 0
    for w in widths:
        bands.append((shift, np.uint64((1 << w) - 1)))
        shift += w
    return bands


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return int(root)

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def near_duplicates(hashes: list[str] | np.ndarray, max_bits: int) -> NearDuplicates:
    """Clusters and pair count of the 64-bit hashes (hex text, or a uint64 array) within ``max_bits`` bits
    (see the module docstring)."""
    if not len(hashes):
        return NearDuplicates([], 0, max_bits)
    if isinstance(hashes, np.ndarray):
        values = hashes.astype(np.uint64, copy=False)
    else:
        values = np.array([int(h, 16) for h in hashes], dtype=np.uint64)
    unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    pairs = int((counts * (counts - 1) // 2).sum())  # identical hashes: 0 bits apart
    keys = [(unique >> np.uint64(shift)) & mask for shift, mask in _bands(max_bits)]
    groups = _UnionFind(len(unique))
    for band, key in enumerate(keys):
        order = np.argsort(key, kind="stable")
        starts = np.flatnonzero(np.diff(key[order])) + 1
        for bucket in np.split(order, starts):
            if len(bucket) > 1:
                pairs += _match_bucket(np.sort(bucket), unique, counts, keys[:band], max_bits, groups)
    members: dict[int, list[int]] = {}
    roots = np.array([groups.find(int(u)) for u in range(len(unique))])
    for index, u in enumerate(inverse.ravel()):
        members.setdefault(int(roots[u]), []).append(index)
    clusters = sorted((m for m in members.values() if len(m) > 1), key=lambda m: (-len(m), m[0]))
    return NearDuplicates(clusters, pairs, max_bits)


def _match_bucket(
    bucket: np.ndarray,
    unique: np.ndarray,
    counts: np.ndarray,
    earlier_keys: list[np.ndarray],
    max_bits: int,
    groups: _UnionFind,
) -> int:
    """Pairs (i < j) of one bucket within ``max_bits`` that share no earlier band, merged into ``groups``;
    returns how many image pairs they stand for."""
    found = 0
    for start in range(0, len(bucket) - 1, ROWS_PER_BLOCK):
        rows = bucket[start : start + ROWS_PER_BLOCK]
        for first in range(start + 1, len(bucket), COLS_PER_BLOCK):  # tiles bound the memory of a huge bucket
            cols = bucket[first : first + COLS_PER_BLOCK]
            after = (start + np.arange(len(rows)))[:, None] < (first + np.arange(len(cols)))[None, :]
            close = after & (_popcount(unique[rows][:, None] ^ unique[cols][None, :]) <= max_bits)
            for key in earlier_keys:  # counted in the first band the pair shares
                close &= key[rows][:, None] != key[cols][None, :]
            r, c = np.nonzero(close)
            if len(r):
                found += int((counts[rows[r]] * counts[cols[c]]).sum())
                for i, j in zip(rows[r].tolist(), cols[c].tolist(), strict=True):
                    groups.union(i, j)
    return found
