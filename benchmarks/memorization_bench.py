"""Near-copy search (``bench --training``): how the default thresholds were chosen, and its speed and
memory against scikit-learn's nearest neighbours at a size a user meets.

Usage: python benchmarks/memorization_bench.py [--queries 5000] [--training 100000] [--dims 64 256]
       [--skip-speed] [--skip-thresholds]

1. Thresholds, on the embedded world: the 297 held-out digits (never in the DDPM's training set: none is
   a copy) and copies of training digits made six ways (exact; Gaussian noise sigma 10 and 25 levels;
   contrast 0.8 and brightness +30; shifted one pixel), each against the 1,500 training digits. For each,
   the share flagged at several ratio thresholds (pixel space, 8 x 8, 50 neighbours) and cosine
   similarity thresholds (the embedded extractor's features centred on the held-out digits' mean, as the
   bench centres them on its reference's).
2. Speed and memory: Q query vectors against T training vectors (clustered around 200 centres, unit
   length, 64-d as the digits' 8 x 8 and 256-d as 16 x 16), the 50 nearest of each: genaudit's streamed
   exact search and its search through the index over the queries (the training vectors arrive in
   chunks of 256, as the bench reads them) against ``sklearn.neighbors.NearestNeighbors(algorithm=
   "brute")`` fitted on all of them (the anchor); the indexed search's recall against the exact one;
   wall time and the peak of traced Python allocations.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def thresholds() -> None:
    from audit.bench import memorization as m
    from audit.features import get_extractor
    from audit.zoo import digits

    extractor = get_extractor("embedded")
    held, _ = digits.load_split("heldout")
    train, _ = digits.load_split("train")
    held, train = np.repeat(held[..., None], 3, -1), np.repeat(train[..., None], 3, -1)
    mean = extractor(held)["features"].mean(axis=0)

    def pixels(images: np.ndarray) -> np.ndarray:
        return m.pixel_vectors(images, 8)

    def features(images: np.ndarray) -> np.ndarray:
        return m._unit(extractor(images)["features"].astype(np.float32) - mean)

    rng = np.random.default_rng(0)
    noisy = lambda ims, s: np.clip(ims + rng.normal(0, s, ims.shape), 0, 255).astype(np.uint8)  # noqa: E731
    sets = {
        "held-out digits (not copies)": held,
        "exact copies": train[:100],
        "noise sigma 10": noisy(train[100:200], 10),
        "noise sigma 25": noisy(train[200:300], 25),
        "contrast 0.8, brightness +30": np.clip(train[300:400] * 0.8 + 30, 0, 255).astype(np.uint8),
        "shifted 1 pixel": np.roll(train[400:500], 1, axis=2),
    }
    base_p, base_f = pixels(train), features(train)
    ratios, sims = (0.2, 0.25, 0.3), (0.995, 0.998, 0.999)
    print("| images | ratio min / median | " + " | ".join(f"ratio < {t}" for t in ratios)
          + " | similarity median / max | " + " | ".join(f"sim >= {t}" for t in sims) + " |")  # fmt: skip
    print("| --- " * (3 + len(ratios) + len(sims)) + "|")
    for name, images in sets.items():
        d, _ = m.nearest(pixels(images), base_p, m.NEIGHBOURS)
        ratio = d[:, 0] / d.mean(axis=1)
        fd, _ = m.nearest(features(images), base_f, 1)
        sim = 1 - fd[:, 0] ** 2 / 2
        cells = [f"{(ratio < t).mean():.0%}" for t in ratios] + [f"{(sim >= t).mean():.0%}" for t in sims]
        print(f"| {name} ({len(images)}) | {ratio.min():.3f} / {np.median(ratio):.3f} | " + " | ".join(cells[:3])
              + f" | {np.median(sim):.4f} / {sim.max():.4f} | " + " | ".join(cells[3:]) + " |", flush=True)  # fmt: skip


def _streamed(m, q: np.ndarray, t: np.ndarray, lists: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    """genaudit's search, the training vectors arriving 256 at a time: seconds, peak MB, distances, ids."""
    tracemalloc.start()
    start = time.perf_counter()
    stream = m.NearestStream(q, m.NEIGHBOURS, lists)
    for s in range(0, len(t), 256):
        stream.update(t[s : s + 256], np.arange(s, min(s + 256, len(t))))
    d, i = stream.result()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return seconds, peak, d, i


def speed(queries: int, training: int, dims: tuple[int, ...]) -> None:
    from sklearn.neighbors import NearestNeighbors

    from audit.bench import memorization as m

    rng = np.random.default_rng(1)
    lists = max(16, int(np.sqrt(queries)))
    print(f"{queries:,} queries x {training:,} training vectors, {m.NEIGHBOURS} nearest; index: {lists} lists, "
          f"{m.PROBES} probes")  # fmt: skip
    print("| d | sklearn brute on all: s | genaudit exact, streamed: s, peak MB | genaudit indexed: s, peak MB | "
          "exact = sklearn | indexed: top-1 / top-50 recall |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for d in dims:
        centres = rng.normal(size=(200, d))  # clustered, as images are: uniform noise has no near neighbours
        q = m._unit((centres[rng.integers(0, 200, queries)] + rng.normal(size=(queries, d))).astype(np.float32))
        t = m._unit((centres[rng.integers(0, 200, training)] + rng.normal(size=(training, d))).astype(np.float32))
        start = time.perf_counter()
        theirs_d, _ = NearestNeighbors(n_neighbors=m.NEIGHBOURS, algorithm="brute").fit(t).kneighbors(q)
        theirs_s = time.perf_counter() - start
        ours_s, ours_peak, ours_d, ours_i = _streamed(m, q, t, 0)
        idx_s, idx_peak, _, idx_i = _streamed(m, q, t, lists)
        same = np.allclose(ours_d, theirs_d, atol=1e-4)
        top1 = float(np.mean(idx_i[:, 0] == ours_i[:, 0]))
        recall = float(np.mean([len(set(a) & set(b)) for a, b in zip(idx_i, ours_i, strict=True)]) / m.NEIGHBOURS)
        agree = "distances equal to 1e-4" if same else "DIFFER"
        print(f"| {d} | {theirs_s:.1f} | {ours_s:.1f}, {ours_peak:.0f} | {idx_s:.1f}, {idx_peak:.0f} | {agree} | "
              f"{top1:.3f} / {recall:.3f} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--training", type=int, default=100_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-thresholds", action="store_true")
    args = parser.parse_args()
    if not args.skip_thresholds:
        thresholds()
    if not args.skip_speed:
        speed(args.queries, args.training, tuple(args.dims))


if __name__ == "__main__":
    main()
