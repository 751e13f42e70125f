"""Near-duplicate search: genaudit's multi-index hashing against the pairwise block search it replaced.

Usage: python benchmarks/near_duplicates_bench.py [--sizes 5000 20000] [--big 100000] [--copies 3000]

Data: ``--copies`` near-identical 64-bit dHashes (a third identical, a third 1 bit away, a third another
bit away: one cluster) plus N - copies random ones. The anchor is the straightforward numpy search a user
would write (and genaudit used until issue 18): XOR a 1,024-row block against all N hashes, count bits,
keep pairs within 4 bits. Both run in the same process on the same hashes; wall time (best of 3) and
peak traced memory (tracemalloc, which sees numpy's buffers) are printed with the ratio. The anchor is
run only up to the sizes where its memory stays under a few GB (its peak is about 1,024 x N x 80 bytes).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.dataset.near_duplicates import near_duplicates

MAX_BITS = 4


def anchor_pairs(hashes: list[str], max_bits: int) -> int:
    """The pairwise block search (pairs i < j within ``max_bits``), counting instead of listing pairs."""
    values = np.array([int(h, 16) for h in hashes], dtype=np.uint64)
    found = 0
    for start in range(0, len(values), 1024):
        block = values[start : start + 1024]
        xor = block[:, None] ^ values[None, :]
        counts = np.unpackbits(xor.view(np.uint8).reshape(*xor.shape, 8), axis=-1).sum(axis=-1)
        i, j = np.nonzero(counts <= max_bits)
        found += int((start + i < j).sum())
    return found


def hashes_for(n: int, copies: int, seed: int = 0) -> list[str]:
    base = 0x0123456789ABCDEF
    third = copies // 3
    near = [base] * (copies - 2 * third) + [base ^ 1] * third + [base ^ 2] * third
    rng = np.random.default_rng(seed)
    ordinary = rng.integers(0, 2**63, size=n - copies, dtype=np.int64).tolist()
    return [f"{v:016x}" for v in near + ordinary]


def measure(fn, *args) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    best, peak, result = float("inf"), 0.0, None
    for _ in range(3):
        tracemalloc.start()
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return best, peak, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--big", type=int, default=103_000)
    parser.add_argument("--copies", type=int, default=3000)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, numpy {np.__version__}")
    print("| hashes | anchor (pairwise blocks) | genaudit (multi-index) | speed-up | pairs |")
    print("| --- | --- | --- | --- | --- |")
    for n in args.sizes:
        hashes = hashes_for(n, min(args.copies, n // 2))
        t_a, m_a, pairs_a = measure(anchor_pairs, hashes, MAX_BITS)
        t_g, m_g, found = measure(near_duplicates, hashes, MAX_BITS)
        assert found.pairs == pairs_a, (found.pairs, pairs_a)  # the same answer, or the figure means nothing
        print(f"| {n:,} | {t_a:.2f} s, {m_a / 1e6:,.0f} MB | {t_g:.2f} s, {m_g / 1e6:,.0f} MB | "
              f"{t_a / t_g:.1f}x | {found.pairs:,} |")  # fmt: skip
    hashes = hashes_for(args.big, args.copies)
    t_g, m_g, found = measure(near_duplicates, hashes, MAX_BITS)
    est = 1024 * args.big * 80 / 1e9
    print(f"| {args.big:,} | not run (about {est:.1f} GB per block) | {t_g:.2f} s, {m_g / 1e6:,.0f} MB | | "
          f"{found.pairs:,} in {len(found.clusters)} cluster(s) |")  # fmt: skip


if __name__ == "__main__":
    main()
