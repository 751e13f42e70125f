"""The benchmark's cells sampled with the model's outputs shared where their inputs agree, against the same
cells sampled without sharing (docs/bench-sampling.md).

Usage: python benchmarks/shared_steps_bench.py [--n 200] [--steps 25]

The default grid (7 heuristic shapes x 4 scales + the unguided baseline), as ``genaudit demo`` samples it
(200 images a cell) or as ``genaudit bench`` does (``--n 500``), through the product's generator: once
without the memo (the anchor: every step of every cell evaluated), once with it, in the same process.
Prints both times, their ratio, the evaluations saved, the memo's size, and whether every image is the same.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()

    from audit.bench import BenchConfig
    from audit.generators.base import GenerationRequest
    from audit.generators.embedded import EmbeddedDigitsGenerator

    config = BenchConfig(n=args.n, steps=args.steps)
    cells = config.cells()
    seeds, labels = tuple(config.seeds()), tuple(config.conditions())

    def sample_all(shared: bool) -> tuple[list[np.ndarray], float, EmbeddedDigitsGenerator]:
        generator = EmbeddedDigitsGenerator()
        if not shared:
            generator.memo = None
        start = time.perf_counter()
        images = [
            generator.generate(GenerationRequest(seeds=seeds, schedule=cell, steps=args.steps, labels=labels)).images
            for cell in cells
        ]
        return images, time.perf_counter() - start, generator

    sample_all(True)  # warm-up: the model's load and first calls are not what is compared
    plain, plain_s, _ = sample_all(False)
    shared, shared_s, generator = sample_all(True)
    same = all(np.array_equal(a, b) for a, b in zip(plain, shared, strict=True))
    memo = generator.memo
    batches = -(-args.n // generator.batch_size)
    total = len(cells) * args.steps * batches
    print(f"{len(cells)} cells x {args.n} images, {args.steps} steps: every image identical: {same}")
    print(f"without sharing {plain_s:.1f} s, with sharing {shared_s:.1f} s: {plain_s / shared_s:.3f}x")
    print(f"network evaluations (batches): {total - memo.hits} of {total} ({memo.hits} shared), "
          f"memo {len(memo.entries)} entries, {memo.held / 2**20:.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
