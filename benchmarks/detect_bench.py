"""Deepfake-check cost against detection quality: diffusion-loss at K = 4, 8, 16 and 32, K = 32 with the
class evidence, and the default (K = 16 with the class evidence over 4 noise sets) against DIRE-style
inversion at 20 + 20 steps, on the embedded digit DDPM.

Usage: python benchmarks/detect_bench.py [--per-schedule 150] [--repeats 2] [--spread-seeds 4] [--curve-repeats 3]
(--curve-repeats 0 skips the learning curve)

Data: ``builtin:digits-mixed`` (297 held-out real digits; the embedded model's samples under five
guidance schedules), cross-fitted over 5 folds stratified by source exactly as ``genaudit detect`` (and
the demo) does: every image is scored by a detector calibrated without it. For each scorer: network
evaluations (NFEs) per image, images per second over all images (best of ``--repeats`` timed passes after
a warm-up), and the AUROC with its stratified-bootstrap 95% interval. The goal: at least the inversion
baseline's AUROC at a fifth of its NFEs (K = 8 against 40).

A single fold draw and a single set of noise draws can flatter a detector, so the spread table repeats
the K = 32 scorers and the default over ``--spread-seeds`` noise seeds times five fold draws and gives
the mean, the smallest and the largest AUROC; beside them, the same over five split halves (calibrate on
a random half of every source, evaluate on the other: how the demo evaluated before, fitting every
detector on half of the real digits instead of four fifths).

The learning curve asks what limits the default: it cross-fits the default's features (10 folds
stratified by source, so every image is scored by a detector that never saw it, and all 297 real digits
take part instead of the split's 148), with each training fold cut to a quarter, a half, three quarters
or all of its images, ``--curve-repeats`` fold draws each.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-schedule", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--spread-seeds", type=int, default=4)
    parser.add_argument("--curve-repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")

    import torch

    from detectors.builtin import digits_mixed
    from detectors.evaluation import evaluate_scores
    from detectors.job import DEFAULT_SCORER, build_scorer, cross_fit
    from detectors.noise_model import load_noise_model
    from detectors.scorers import DiffusionLossScorer, InversionScorer

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"Python {platform.python_version()}")  # fmt: skip
    data = digits_mixed(args.per_schedule)
    model = load_noise_model("embedded:digits-ddpm")
    print(
        f"{len(data.images)} images ({int((data.y == 0).sum())} real), cross-fitted over 5 folds stratified by source"
    )
    default = build_scorer(DEFAULT_SCORER, model)  # what genaudit detect uses
    spread_scorers = [DiffusionLossScorer(k=32), DiffusionLossScorer(k=32, classes=True), default]
    scorers = [DiffusionLossScorer(k=k) for k in (4, 8, 16)] + spread_scorers + [InversionScorer(steps=20)]
    rows = []
    seed0_features = {}  # the spread scorers' features (noise seed 0), reused by the spread table
    for scorer in scorers:
        scorer.features(model, data.images[:32])  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            feats = scorer.features(model, data.images)
            best = min(best, time.perf_counter() - start)
        crossed = cross_fit(scorer, feats, data.y, target_fpr=0.05, strata=data.source)
        metrics = evaluate_scores(data.y, crossed.decisions)
        rows.append((_label(scorer), scorer.nfe_per_image(model), len(data.images) / best, metrics))
        if scorer in spread_scorers:
            seed0_features[_label(scorer)] = feats
    base_nfe, base_ips, base = rows[-1][1], rows[-1][2], rows[-1][3]
    print("| scorer | NFEs per image | images/s | speed vs inversion | AUROC [95% CI] | AUROC vs inversion |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, nfe, ips, m in rows:
        auroc = f"{m['auroc']:.3f} [{m['auroc_ci'][0]:.3f}, {m['auroc_ci'][1]:.3f}]"
        print(f"| {label} | {nfe} ({nfe / base_nfe:.2f}x) | {ips:.1f} | {ips / base_ips:.2f}x | {auroc} | "
              f"{m['auroc'] - base['auroc']:+.3f} |")  # fmt: skip
    k8 = next(m for label, _, _, m in rows if label.endswith("K=8"))
    verdict = "met" if k8["auroc"] >= base["auroc"] else "NOT met"
    print(f"goal (K=8, a fifth of the NFEs, AUROC >= inversion's {base['auroc']:.3f}): {verdict} ({k8['auroc']:.3f})")
    _spread(data, model, args.spread_seeds, spread_scorers, seed0_features)
    if args.curve_repeats > 0:  # 0 skips the learning curve
        _learning_curve(data, default, seed0_features[_label(default)], args.curve_repeats)


def _label(scorer) -> str:
    if scorer.name != "diffusion-loss":
        return f"inversion {scorer.steps}+{scorer.steps}"
    label = f"diffusion-loss K={scorer.k}" + (" + class evidence" if scorer.classes else "")
    return label + (f" x {scorer.noise_sets} noise sets (default)" if scorer.noise_sets > 1 else "")


def _spread(data, model, seeds: int, scorers: list, seed0_features: dict[str, object]) -> None:
    """AUROC over noise seeds x fold draws (cross-fitted, as the demo) and x calibration splits (split half)
    for ``scorers``; ``seed0_features`` (label -> features at noise seed 0) are the main table's, not
    computed again."""
    from dataclasses import replace

    import numpy as np

    from detectors.builtin import split_halves
    from detectors.evaluation import point_metrics
    from detectors.job import cross_fit, new_detector

    draws = range(5)
    splits = [split_halves(data, seed=s) for s in draws]
    print(
        f"\nAUROC over {seeds} noise seeds x {len(draws)} fold draws (cross-fitted) or calibration splits (split half)"
    )
    print("| scorer | cross-fitted mean | min | max | demo's (seed 0, draw 0) | split-half mean | min | max |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for scorer in scorers:
        crossed, halves, label = [], [], _label(scorer)
        for seed in range(seeds):
            feats = (
                seed0_features[label] if seed == 0 else replace(scorer, seed=1000 * seed).features(model, data.images)
            )
            for draw in draws:
                fitted = cross_fit(scorer, feats, data.y, target_fpr=0.05, strata=data.source, seed=draw)
                crossed.append(point_metrics(data.y, fitted.decisions)["auroc"])
            for cal, ev in splits:
                det = new_detector(scorer).fit(feats[cal], data.y[cal])
                halves.append(point_metrics(data.y[ev], det.decision_function(feats[ev]))["auroc"])
        print(f"| {label} | {np.mean(crossed):.3f} | {min(crossed):.3f} | {max(crossed):.3f} | {crossed[0]:.3f} | "
              f"{np.mean(halves):.3f} | {min(halves):.3f} | {max(halves):.3f} |")  # fmt: skip


def _learning_curve(data, scorer, feats, repeats: int, folds: int = 10) -> None:
    """Cross-fitted AUROC of the default ``scorer``'s features (``feats``, noise seed 0) against how many
    images its detectors are fitted on: every training fold keeps a seeded fraction of its real and of its
    generated images."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    from detectors.evaluation import point_metrics
    from detectors.job import new_detector

    source = np.array(data.source)
    print(f"\nLearning curve: default's features, {folds}-fold cross-fitted on all images, {repeats} fold draws")
    print("| training share | real digits per fit | mean AUROC | min | max |")
    print("| --- | --- | --- | --- | --- |")
    for share in (0.25, 0.5, 0.75, 1.0):
        aurocs, n_real = [], []
        for draw in range(repeats):
            rng = np.random.default_rng(100 + draw)
            out_of_fold = np.zeros(len(data.y))
            for train, test in StratifiedKFold(folds, shuffle=True, random_state=draw).split(feats, source):
                real, fake = train[data.y[train] == 0], train[data.y[train] == 1]
                keep = np.concatenate([
                    rng.choice(real, round(share * len(real)), replace=False),
                    rng.choice(fake, round(share * len(fake)), replace=False),
                ])  # fmt: skip
                n_real.append(round(share * len(real)))
                det = new_detector(scorer).fit(feats[keep], data.y[keep])
                out_of_fold[test] = det.decision_function(feats[test])
            aurocs.append(point_metrics(data.y, out_of_fold)["auroc"])
        spread = f"{np.mean(aurocs):.3f} | {min(aurocs):.3f} | {max(aurocs):.3f}"
        print(f"| {share:.0%} | {np.mean(n_real):.0f} | {spread} |")


if __name__ == "__main__":
    main()
