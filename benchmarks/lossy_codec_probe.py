"""Lossy WebP and AVIF inputs: what they do to the deepfake check, and whether its JPEG route holds for them
(issue 20).

Images on the web also arrive as lossy WebP and AVIF. The loader estimates a JPEG's quality and a
detector calibrated with ``--route-jpeg`` scores JPEGs below quality 90 with a detector calibrated on JPEG copies
(:mod:`detectors.routing`); any other file goes to the main detector. This probe re-encodes every image of
``builtin:digits-mixed`` (1,347: 297 held-out real digits against every generated one) as lossy WebP and AVIF at
several qualities and scores them, every image by a detector that never saw it or a copy of it (5 folds
stratified by source, the DDPM's siblings in one fold; the default scorer, K = 16 x 2), with:

- **plain**: the main detector (calibrated on the clean images), what such a file gets today;
- **JPEG route**: the detector calibrated on the product's route copies (blur p 0.3, then JPEG q 30-95; since the
  route takes enlarged inputs, half of them enlarged 1.1-2x instead: RESULTS.md has both);
- **oracle**: calibrated on images re-encoded exactly as the test images (no user has it: the ceiling).

and counts the images each fold detector flags at its own threshold (5% target FPR on the clean real images
of its calibration, or for the route on its JPEG copies'), real / generated.

Usage: python benchmarks/lossy_codec_probe.py [--cache DIR]   (about 8 minutes on 2 cores; the feature passes
are kept in DIR when given)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from size_aware_probe import cached, probe_setup

CODECS = {"WebP q95": ("WEBP", 95), "WebP q90": ("WEBP", 90), "WebP q85": ("WEBP", 85), "WebP q80": ("WEBP", 80),
          "WebP q75": ("WEBP", 75), "WebP q50": ("WEBP", 50), "AVIF q90": ("AVIF", 90), "AVIF q75": ("AVIF", 75),
          "AVIF q50": ("AVIF", 50)}  # fmt: skip


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from detectors.evaluation import reencode
    from detectors.job import copy_features, cross_fit, features, flag_shares

    args, data, model, scorer = probe_setup(__doc__.splitlines()[0])
    y = np.asarray(data.y)
    every = np.arange(len(y))

    def crossed(feats: np.ndarray):
        return cross_fit(scorer, feats, y, target_fpr=0.05, strata=data.source, siblings=data.siblings)

    clean = cached(args.cache, "clean", lambda: features(model, scorer, list(data.images))[0])
    plain = crossed(clean)
    route = crossed(cached(args.cache, "route_copies", lambda: copy_features(model, scorer, list(data.images))))
    print(f"{len(y)} images ({int((y == 0).sum())} real); AUROC, every image scored out of fold; flagged real / "
          "generated")  # fmt: skip
    print(f"{'codec':10s} {'plain':>7s} {'route':>7s} {'oracle':>7s}   {'plain flags':>15s}   {'route flags':>15s}")
    rows = {"none (PNG)": clean}
    for name, (fmt, quality) in CODECS.items():
        key = name.replace(" ", "_").lower()
        rows[name] = cached(args.cache, key, lambda f=fmt, q=quality: features(
            model, scorer, [reencode(f, q)(im) for im in data.images])[0])  # fmt: skip
    for name, feats in rows.items():
        oracle = roc_auc_score(y, crossed(feats).decisions) if name != "none (PNG)" else float("nan")
        flags = [flag_shares(y, fitted.decide(feats, every)[1]) for fitted in (plain, route)]
        text = "   ".join(f"{100 * c['flagged_real']:5.1f}% / {100 * c['flagged_generated']:5.1f}%" for c in flags)
        print(f"{name:10s} {roc_auc_score(y, plain.score(feats, every)):7.3f} "
              f"{roc_auc_score(y, route.score(feats, every)):7.3f} {oracle:7.3f}   {text}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
