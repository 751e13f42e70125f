"""Every metric with its 95% interval at 50,000 real + 50,000 generated 2,048-d features (issue 19's goal:
under 10 minutes and 8 GB on a 2-core machine).

Usage: python benchmarks/intervals_bench.py [--n 50000] [--dims 2048] [--bootstrap 100] [--anchor-draws 2]

The features are synthetic, shaped like Inception pool features (non-negative, correlated: a ReLU of a
low-rank mix plus noise), with 1,008-way class probabilities (IS) and 512-d CLIP embeddings with one
caption embedding per generated image (CLIP-score, FD in CLIP space), so every metric of ``evaluate``
runs: FID, FD in CLIP space, KID, IS, CLIP-score, precision, recall, density, coverage, Vendi.

Timed: ``evaluate`` end to end (features handed over by a pass-through extractor), and peak resident
memory of the process at that point. Then, as the anchor, the image-by-image draws this replaces are
timed for ``--anchor-draws`` draws each (one FID bootstrap draw over n images, one Vendi half-sample
over n/2) and projected to ``--bootstrap`` draws; the O(N^2) half-sample KID and recall of the dense
path cannot even be held in memory at this size (two 50,000^2 float64 matrices: 40 GB).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synthetic(n: int, dims: int, shift: float, seed: int) -> dict[str, np.ndarray]:
    """Inception-like features, class probabilities and CLIP embeddings for ``n`` images."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(0).standard_normal((64, dims), dtype=np.float32) / 8  # shared by both sets
    latent = rng.standard_normal((n, 64), dtype=np.float32) + np.float32(shift)
    features = np.maximum(latent @ mix + 0.3 * rng.standard_normal((n, dims), dtype=np.float32), 0.0)
    logits = rng.standard_normal((n, 1008), dtype=np.float32) * 2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    clip = rng.standard_normal((n, 512), dtype=np.float32) + np.float32(shift)
    return {
        "features": features,
        "probs": probs / probs.sum(axis=1, keepdims=True),
        "clip": clip / np.linalg.norm(clip, axis=1, keepdims=True),
    }


class PassThrough:
    """An extractor whose "images" are row indices into precomputed outputs."""

    def __init__(self, real: dict[str, np.ndarray], fake: dict[str, np.ndarray], seed: int) -> None:
        self.outputs = {name: np.concatenate([real[name], fake[name]]) for name in real}
        self.id = f"synthetic-{seed}"
        self.rng = np.random.default_rng(seed)

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        idx = np.asarray(rows).reshape(len(rows))
        if np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):  # a range: views, as a real
            return {name: value[idx[0] : idx[0] + len(idx)] for name, value in self.outputs.items()}  # extractor's
        return {name: value[idx] for name, value in self.outputs.items()}  # fresh output costs no second copy

    def encode_texts(self, captions: list[str]) -> np.ndarray:
        text = self.rng.standard_normal((len(captions), 512)).astype(np.float32)
        return text / np.linalg.norm(text, axis=1, keepdims=True)


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dims", type=int, default=2048)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--anchor-draws", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    from audit.metrics.evaluator import evaluate
    from audit.metrics.frechet import gaussian_stats
    from audit.metrics.resampling import FrechetToReference
    from audit.metrics.vendi import vendi_score

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"numpy {np.__version__}, torch {torch.__version__}; n = {args.n} + {args.n}, d = {args.dims}, "
        f"{args.bootstrap} draws"
    )
    real, fake = synthetic(args.n, args.dims, 0.0, 1), synthetic(args.n, args.dims, 0.1, 2)
    extractor = PassThrough(real, fake, seed=3)
    del real, fake  # the extractor holds the only copy
    real_features, fake_features = np.split(extractor.outputs["features"], 2)  # views, for the anchor
    real_rows = np.arange(args.n).reshape(-1, 1)
    fake_rows = np.arange(args.n, 2 * args.n).reshape(-1, 1)
    captions = [f"caption {i % 100}" for i in range(args.n)]
    before = peak_gb()
    start = time.perf_counter()
    result = evaluate(real_rows, fake_rows, extractor, captions=captions, bootstrap=args.bootstrap, seed=0)
    wall = time.perf_counter() - start
    peak = peak_gb()
    print(f"evaluate, every metric with its interval: {wall:8.1f} s ({wall / 60:.1f} min; goal < 10 min)")
    print(f"peak resident memory: {peak:.2f} GB (inputs alone: {before:.2f} GB; goal < 8 GB)")
    for name, entry in result.items():
        if isinstance(entry, dict) and "ci95" in entry:
            lo, hi = entry["ci95"]
            print(f"  {name:16s} {entry['value']:12.6g}  [{lo:.6g}, {hi:.6g}]  {entry['ci_method']}")

    feats = fake_features
    reference = FrechetToReference(*gaussian_stats(real_features))
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(args.anchor_draws):
        reference(feats[rng.integers(0, args.n, args.n)])
    fid_draw = (time.perf_counter() - start) / args.anchor_draws
    start = time.perf_counter()
    for _ in range(args.anchor_draws):
        vendi_score(feats[rng.permutation(args.n)[: args.n // 2]])
    vendi_draw = (time.perf_counter() - start) / args.anchor_draws
    projected = (fid_draw + vendi_draw) * args.bootstrap
    print(
        f"anchor, image-by-image draws: FID {fid_draw:.1f} s + Vendi {vendi_draw:.1f} s per draw = "
        f"{projected:.0f} s for {args.bootstrap} draws of these two alone ({projected / wall:.1f}x the whole "
        "blocked evaluate); half-sample KID and recall by the dense matrices: 40 GB, not run"
    )


if __name__ == "__main__":
    main()
