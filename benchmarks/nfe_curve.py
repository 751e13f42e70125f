"""AUROC against network evaluations per image (issue 20, part 4), on ``builtin:digits-mixed``.

For each scorer configuration (diffusion loss: K timesteps, noise sets, with or without the class evidence;
DIRE-style inversion at several step counts) it scores the 1,347 images once, then reports per generator
family (the DDPM's five schedules, the GAN, the Gaussian mixture):

- **seen**: cross-fitted over 5 folds stratified by source, every family in calibration (the combined
  detector, and the two-class detector alone);
- **left out**: each family left out of calibration in turn (:func:`detectors.generators.held_out_generators`:
  combined, two-class alone, and the real reference alone, which never sees a generated image);

with the wall time of the feature pass on this machine. Every cross-fitting keeps the DDPM's siblings
(image i under every schedule, one seed) in one fold. The front is the set of configurations no other
beats on both cost and the worst left-out family. Writes ``nfe_curve.json`` and ``nfe_curve.svg`` to
``--out`` (default ``benchmarks/``) and prints the table for RESULTS.md.

Usage: python benchmarks/nfe_curve.py [--out DIR] [--cache DIR] [--only NAME ...] [--replot] [--pooled]
(``--cache``: features saved per configuration, reused by a rerun; about 15 minutes on 2 cores without it.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

CONFIGS = {
    "k4": {"name": "diffusion-loss", "k": 4, "noise_sets": 1, "classes": False},
    "k8": {"name": "diffusion-loss", "k": 8, "noise_sets": 1, "classes": False},
    "k16": {"name": "diffusion-loss", "k": 16, "noise_sets": 1, "classes": False},
    "k32": {"name": "diffusion-loss", "k": 32, "noise_sets": 1, "classes": False},
    "k8 x2": {"name": "diffusion-loss", "k": 8, "noise_sets": 2, "classes": False},
    "k16 x2 (default)": {"name": "diffusion-loss", "k": 16, "noise_sets": 2, "classes": False},
    "k8 x4": {"name": "diffusion-loss", "k": 8, "noise_sets": 4, "classes": False},
    "k16 x4": {"name": "diffusion-loss", "k": 16, "noise_sets": 4, "classes": False},
    "k8 +classes": {"name": "diffusion-loss", "k": 8, "noise_sets": 1, "classes": True},
    "k16 +classes": {"name": "diffusion-loss", "k": 16, "noise_sets": 1, "classes": True},
    "k16 x2 +classes": {"name": "diffusion-loss", "k": 16, "noise_sets": 2, "classes": True},
    "k16 x4 +classes (former default)": {"name": "diffusion-loss", "k": 16, "noise_sets": 4, "classes": True},
    "inversion 5 steps": {"name": "inversion", "steps": 5},
    "inversion 10 steps": {"name": "inversion", "steps": 10},
    "inversion 20 steps (DIRE baseline)": {"name": "inversion", "steps": 20},
}
SHORT = {"diffusion": "DDPM", "adversarial": "GAN", "statistical": "mixture"}


def measure(name: str, cfg: dict, data, model, cache: Path | None, **params) -> dict:
    from detectors.evaluation import evaluate_scores
    from detectors.generators import held_out_generators
    from detectors.job import build_scorer, cross_fit, features

    scorer = build_scorer(cfg, model)
    path = cache / f"{name.split(' (')[0].replace(' ', '_').replace('+', 'c')}.npy" if cache else None
    if path is not None and path.is_file():
        feats, seconds = np.load(path), float(json.loads(path.with_suffix(".json").read_text())["seconds"])
    else:
        start = time.perf_counter()
        feats, _ = features(model, scorer, data.images)
        seconds = time.perf_counter() - start
        if path is not None:
            np.save(path, feats)
            path.with_suffix(".json").write_text(json.dumps({"seconds": seconds}))
    combined = cross_fit(scorer, feats, data.y, target_fpr=0.05, strata=data.source, siblings=data.siblings,
                         **params)  # fmt: skip
    alone = cross_fit(scorer, feats, data.y, target_fpr=0.05, strata=data.source, reference="off",
                      siblings=data.siblings, **params)  # fmt: skip
    held = held_out_generators(scorer, feats, data.y, data.family, target_fpr=0.05, folds=5, draws=200,
                               seen=combined.decisions, seen_two_class=alone.decisions, siblings=data.siblings,
                               **params)  # fmt: skip
    families = {}
    for h in held:
        families[SHORT[h["source"].split(" ")[0]]] = {
            "seen": h["seen"]["auroc"], "seen_two_class": h["seen_two_class"]["auroc"],
            "left_out": h["auroc"], "left_out_ci": h["auroc_ci"], "left_out_two_class": h["two_class"]["auroc"],
            "reference_only": h["reference_only"]["auroc"],
        }  # fmt: skip
    return {
        "config": scorer.config(),
        "nfe_per_image": scorer.nfe_per_image(model),
        "seconds": round(seconds, 1),
        "auroc": evaluate_scores(data.y, combined.decisions, draws=200)["auroc"],
        "families": families,
    }


def front(rows: dict[str, dict]) -> list[str]:
    """Configurations no other matches or beats on NFE and the worst left-out family while beating on one."""
    worst = {n: min(f["left_out"] for f in r["families"].values()) for n, r in rows.items()}
    return [
        n for n, r in rows.items()
        if not any(o["nfe_per_image"] <= r["nfe_per_image"] and worst[m] >= worst[n]
                   and (o["nfe_per_image"] < r["nfe_per_image"] or worst[m] > worst[n])
                   for m, o in rows.items() if m != n)
    ]  # fmt: skip


def plot(rows: dict[str, dict], out: Path) -> None:
    """Per family, AUROC against cost: diffusion-loss configurations in colour (seen, left out combined, left
    out two-class alone, real reference alone), inversion in grey, the default ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = (("seen", "o", "seen"), ("left_out", "s", "left out (combined)"),
             ("left_out_two_class", "x", "left out, two-class alone"),
             ("reference_only", "^", "real reference alone"))  # fmt: skip
    loss = {n: r for n, r in rows.items() if r["config"]["name"] == "diffusion-loss"}
    inversion = {n: r for n, r in rows.items() if r["config"]["name"] == "inversion"}
    default = next((r for n, r in rows.items() if "default" in n), None)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, family in zip(axes, ("DDPM", "GAN", "mixture"), strict=True):
        for kind, marker, label in kinds:
            xs = [r["nfe_per_image"] for r in loss.values()]
            ax.scatter(xs, [r["families"][family][kind] for r in loss.values()], marker=marker, label=label, alpha=0.8)
        xs = [r["nfe_per_image"] for r in inversion.values()]
        ax.scatter(xs, [r["families"][family]["left_out"] for r in inversion.values()], marker="s", color="grey",
                   label="inversion, left out", alpha=0.7)  # fmt: skip
        if default is not None:
            ys = [default["families"][family][k] for k in ("seen", "left_out")]
            ax.scatter([default["nfe_per_image"]] * 2, ys, s=160, facecolors="none", edgecolors="black",
                       label="the default")  # fmt: skip
        ax.axvline(40, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_title(family)
        ax.set_xlabel("network evaluations per image")
    axes[0].set_ylabel("AUROC")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("builtin:digits-mixed: AUROC against cost (dotted: the DIRE baseline's 40)")
    fig.tight_layout()
    fig.savefig(out, format="svg")


def main() -> None:
    from detectors.builtin import digits_mixed
    from detectors.noise_model import load_noise_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS))
    parser.add_argument("--replot", action="store_true", help="redraw nfe_curve.svg from --out's nfe_curve.json")
    parser.add_argument("--pooled", action="store_true",
                        help="one pooled two-class model, not one per generator (experts=False)")  # fmt: skip
    args = parser.parse_args()
    if args.replot:
        plot(json.loads((args.out / "nfe_curve.json").read_text())["rows"], args.out / "nfe_curve.svg")
        return
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    data = digits_mixed(150)
    model = load_noise_model("embedded:digits-ddpm")
    rows = {}
    for name in args.only or CONFIGS:
        params = {"experts": False} if args.pooled else {}
        rows[name] = measure(name, CONFIGS[name], data, model, args.cache, **params)
        r = rows[name]
        cells = "  ".join(
            f"{fam} seen {f['seen']:.3f} out {f['left_out']:.3f} (2c {f['left_out_two_class']:.3f}, ref "
            f"{f['reference_only']:.3f})"
            for fam, f in r["families"].items()
        )
        head = f"{name:36s} NFE {r['nfe_per_image']:4d}  {r['seconds']:6.1f} s  AUROC {r['auroc']:.3f}"
        print(f"{head}  {cells}", flush=True)
    on_front = front(rows)
    print("front (NFE vs worst left-out family):", ", ".join(on_front))
    print("\n| scorer | NFE | s | AUROC | DDPM seen / out | GAN seen / out | mixture seen / out | ref. alone D/G/M |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        f = r["families"]
        cell = [f"{f[k]['seen']:.3f} / {f[k]['left_out']:.3f}" for k in ("DDPM", "GAN", "mixture")]
        ref = "/".join(f"{f[k]['reference_only']:.2f}" for k in ("DDPM", "GAN", "mixture"))
        mark = " *" if name in on_front else ""
        head = f"| {name}{mark} | {r['nfe_per_image']} | {r['seconds']} | {r['auroc']:.3f}"
        print(f"{head} | {' | '.join(cell)} | {ref} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nfe_curve.json").write_text(json.dumps({"rows": rows, "front": on_front}, indent=1) + "\n")
    plot(rows, args.out / "nfe_curve.svg")


if __name__ == "__main__":
    main()
