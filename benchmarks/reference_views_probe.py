"""Probe for issue 20: would the real-reference score gain from views other than the diffusion errors?

The real-reference score (detectors/reference.py, docs/detect.md) models real images' reconstruction
features and scores how atypical an image is among them; with no generated image in calibration it gets
AUROC 0.74 on the embedded DDPM's own samples, far from the issue's 0.90 for a generator left out. This
probe asks whether other views of an image, free of network evaluations or nearly so, carry what the
errors miss, each scored with the product's :class:`detectors.reference.RealReference` (k = 5 nearest
real images, standardised coordinates), cross-fitted over 5 folds of the real images (each real image
scored by a reference that never saw it; every generated image by the mean of the 5 fold references):

- the default scorer's reference view (K = 16 x 2: the log errors and predicted-noise norms, averaged
  over the noise sets): the baseline;
- the embedded extractor's outputs (the digit classifier's 128-d features and 10 probabilities, the
  embedded CLIP's 64-d image embedding): what the image depicts;
- low-level statistics: the 17-level grey histogram, the log amplitude spectrum (``rfft2``), and the
  errors with each of them; and, as one raw number rather than a reference, the share of pixels at
  intermediate grey levels.

The AUROC is that of "far from the real images" (the product's score); its "near" twin (atypically
typical, e.g. a guided sample more prototypical than any real digit) is 1 minus it, so a figure under 0.5
says the family sits closer to the real images than they sit to each other. Not a test and not a product
feature: figures for benchmarks/RESULTS.md.

Usage: python benchmarks/reference_views_probe.py [--features FILE.npy]
(``--features``: the default scorer's features of ``digits_mixed(150)`` in order; computed, about 2
minutes on 2 cores, and saved there when the file does not exist.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cross_fitted(view: np.ndarray, y: np.ndarray, folds: int = 5) -> np.ndarray:
    """Each real row scored by a reference fitted without it; each generated row by the folds' mean."""
    from sklearn.model_selection import KFold

    from detectors.reference import RealReference

    real, fake = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    scores = np.zeros(len(y))
    for train, test in KFold(folds, shuffle=True, random_state=0).split(real):
        reference = RealReference().fit(view[real[train]])
        scores[real[test]] = reference.atypicality(view[real[test]])
        scores[fake] += reference.atypicality(view[fake]) / folds
    return scores


def default_features(path: Path, images: np.ndarray) -> np.ndarray:
    if path.is_file():
        return np.load(path)
    from detectors.job import DEFAULT_SCORER, build_scorer, features
    from detectors.noise_model import load_noise_model

    model = load_noise_model("embedded:digits-ddpm")
    feats, _ = features(model, build_scorer(DEFAULT_SCORER, model), images)
    np.save(path, feats)
    return feats


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from audit.features import get_extractor
    from detectors.builtin import digits_mixed
    from detectors.job import DEFAULT_SCORER, build_scorer
    from detectors.noise_model import load_noise_model
    from detectors.reference import reference_view

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="/tmp/genaudit-digits-mixed-default-features.npy")
    args = parser.parse_args()
    data = digits_mixed(150)
    y, family = data.y, np.asarray(data.family)
    feats = default_features(Path(args.features), data.images)
    if len(feats) != len(y):
        raise SystemExit(f"{args.features} holds {len(feats)} rows, digits_mixed(150) has {len(y)} images")
    scorer = build_scorer(DEFAULT_SCORER, load_noise_model("embedded:digits-ddpm"))
    blocks = feats.shape[1] // scorer.reference_columns() if not scorer.classes else None
    errors = reference_view(np.log(np.maximum(feats, 1e-12)), blocks or 1, scorer.reference_columns())
    embedded = get_extractor("embedded")(data.images)
    grey = data.images[..., 0].astype(np.float64) / 255.0
    levels = np.rint(grey.reshape(len(grey), -1) * 16).astype(int)
    histogram = np.stack([(levels == k).mean(1) for k in range(17)], axis=1)
    spectrum = np.log(np.abs(np.fft.rfft2(grey)).reshape(len(grey), -1) + 1e-6)
    views = {
        "errors (the product's view)": errors,
        "classifier features (128-d)": embedded["features"],
        "classifier probabilities (10)": embedded["probs"],
        "CLIP image embedding (64-d)": embedded["clip"],
        "grey-level histogram (17)": histogram,
        "amplitude spectrum (40)": spectrum,
        "errors + histogram": np.hstack([errors, histogram]),
        "errors + spectrum": np.hstack([errors, spectrum]),
    }
    families = list(dict.fromkeys(family[y == 1]))
    print("| view | " + " | ".join(families) + " |")
    print("| --- |" + " --- |" * len(families))
    for name, view in views.items():
        far = cross_fitted(np.asarray(view, dtype=np.float64).reshape(len(y), -1), y)
        cells = []
        for f in families:
            mask = (y == 0) | (family == f)
            cells.append(f"{roc_auc_score(y[mask], far[mask]):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    middle = ((levels > 0) & (levels < 16)).mean(1)  # one scalar, not a reference: more = generated
    cells = [f"{roc_auc_score(y[(y == 0) | (family == f)], middle[(y == 0) | (family == f)]):.3f}" for f in families]
    print("| share of pixels at intermediate grey levels (the raw number) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
