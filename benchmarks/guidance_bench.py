"""Sampling costs of the guidance benchmark on the embedded digits DDPM.

Usage: python benchmarks/guidance_bench.py [--n 500] [--steps 25] [--cells 4]

1. Batched cond/uncond: one UNet forward on the 2N batch (conditional and null-class labels) per step,
   as genaudit's samplers do, against the anchor of two forwards of N per step (what a loop that calls
   the model once per branch does). Same model, inputs and steps; best of 3; prints the ratio.
2. Sweep overhead: ``run_bench`` generating ``--cells`` cells of ``--n`` images (sampling, noise,
   scheduler steps, PNG encoding, atomic writes, manifest) against the bare UNet forwards those cells
   need (the same number of forwards with the same batch shapes, nothing else). Prints
   generate / bare - 1 (goal <= 10%). The cells' shared steps (docs/bench-sampling.md) are turned off here
   (``GENAUDIT_SHARED_STEPS_MB=0``): they skip forwards, which is not this overhead; ``shared_steps_bench.py``
   times them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--cells", type=int, default=4)
    args = parser.parse_args()
    import torch

    from audit.bench import BenchConfig, run_bench
    from audit.zoo import ddpm, registry

    model = registry.load("digits-ddpm").eval()
    scheduler = ddpm.build_sampling_scheduler()
    scheduler.set_timesteps(args.steps)
    timesteps = list(scheduler.timesteps)
    batch = 250  # the bench's chunk: one request per 250 images
    x = torch.randn(batch, 1, 8, 8)
    labels = torch.arange(batch) % 10
    nulls = torch.full((batch,), ddpm.NULL_CLASS)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )

    def batched() -> None:
        with torch.no_grad():
            for t in timesteps:
                model(torch.cat([x, x]), t, class_labels=torch.cat([labels, nulls])).sample.chunk(2)

    def separate() -> None:
        with torch.no_grad():
            for t in timesteps:
                model(x, t, class_labels=labels)
                model(x, t, class_labels=nulls)

    batched()  # warm-up
    one, two = best_of(batched), best_of(separate)
    print(
        f"1. {args.steps} steps x {batch} images: one batched forward {one:.3f} s, two forwards {two:.3f} s: "
        f"batched is {two / one:.2f}x faster"
    )

    n_batches = -(-args.n // batch)
    bare = best_of(lambda: [batched() for _ in range(n_batches)], repeats=2) * args.cells
    schedules = ({"name": "static"}, {"name": "linear"}, {"name": "cosine"}, {"name": "v-shape"})[: args.cells]
    config = BenchConfig(schedules=schedules, scales=(1.0,), n=args.n, steps=args.steps, bootstrap=0, baseline=False)
    os.environ["GENAUDIT_SHARED_STEPS_MB"] = "0"  # every forward made, as the bare anchor makes them
    with tempfile.TemporaryDirectory() as tmp:
        run_bench(config, Path(tmp) / "run", progress=False)
        generate = sum(
            json.loads(p.read_text())["seconds"]["generate"]
            for p in (Path(tmp) / "run" / "cells").rglob("metrics.json")
        )
    print(
        f"2. {args.cells} cells x {args.n} images: bare forwards {bare:.2f} s, bench generation {generate:.2f} s: "
        f"overhead {100 * (generate / bare - 1):.1f}% (goal <= 10%)"
    )


if __name__ == "__main__":
    main()
