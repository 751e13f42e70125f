"""How wide are the evaluator's 95% intervals compared with the spread over fresh seeds?

Usage: python benchmarks/interval_calibration.py [--replicates 12] [--n 300] [--steps 10]

Draws ``--replicates`` independent sets of ``--n`` images from the embedded DDPM (static guidance,
w = 1; disjoint seeds), evaluates each against the held-out digits with 100 resampling draws, and
prints per metric: the width of a 95% interval implied by the spread of the figure over the fresh sets
(3.92 x std), the mean width of the evaluator's intervals, and their ratio (1 = calibrated, > 1
conservative, < 1 too narrow). The same for the PAIRED difference linear - static (same seeds within a
replicate) that the benchmark's verdict rests on. A measurement, not a test: it takes a few minutes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METRICS = ("fid", "fd_clip", "kid", "clip_score", "precision", "density", "recall", "coverage", "vendi",
           "inception_score")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=12)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    from audit.features import get_extractor
    from audit.generators import GenerationRequest, get_generator
    from audit.guidance import get_schedule
    from audit.metrics.evaluator import FeatureCache, evaluate
    from audit.zoo import digits

    gen, ext = get_generator("embedded:digits-ddpm"), get_extractor("embedded")
    real = np.repeat(digits.load_split("heldout")[0][..., None], 3, axis=-1)
    cache = FeatureCache()
    values = {m: [] for m in METRICS}
    widths = {m: [] for m in METRICS}
    diffs = {m: [] for m in METRICS}
    diff_widths = {m: [] for m in METRICS}
    labels = tuple(i % 10 for i in range(args.n))
    for r in range(args.replicates):
        seeds = tuple(range(r * 100_000, r * 100_000 + args.n))
        captions = [ext.label_caption(x) for x in labels]
        scored = {}
        for name in ("static", "linear"):
            request = GenerationRequest(seeds=seeds, schedule=get_schedule(name, 1.0), steps=args.steps, labels=labels)
            scored[name] = evaluate(
                real,
                gen.generate(request).images,
                ext,
                labels=np.array(labels),
                captions=captions,
                cache=cache,
                seed=r,
                keep_draws=True,
            )
        res = scored["static"]
        for m in METRICS:
            values[m].append(res[m]["value"])
            widths[m].append(res[m]["ci95"][1] - res[m]["ci95"][0])
            diffs[m].append(scored["linear"][m]["value"] - res[m]["value"])
            paired = np.asarray(scored["linear"]["draws"][m]) - np.asarray(res["draws"][m])
            lo, hi = np.percentile(paired, [2.5, 97.5])
            diff_widths[m].append(hi - lo)
    print(f"{args.replicates} replicates x {args.n} images, w = 1, {args.steps} steps; single figures: static")
    header = f"{'fresh width':>12} {'interval':>10} {'ratio':>6}"
    print(f"{'metric':16} {'method':12} {header}   paired linear-static: {header}")
    for m in METRICS:
        cols = []
        for vals, wids in ((values[m], widths[m]), (diffs[m], diff_widths[m])):
            fresh = 3.92 * float(np.std(vals, ddof=1))
            width = float(np.mean(wids))
            cols.append(f"{fresh:12.4g} {width:10.4g} {width / fresh if fresh > 0 else float('nan'):6.2f}")
        print(f"{m:16} {res[m]['ci_method']:12} {cols[0]}   {' ' * 22}{cols[1]}")


if __name__ == "__main__":
    main()
