"""Probe for issue 20, part 1: how far an atypicality score fitted on real images only gets on each
generator family of ``builtin:digits-mixed``, against the two-class detector with that family left out.

Not a product feature yet: it measures whether the idea is worth building. The score is the squared
Mahalanobis distance of an image's standardised log features from the real images' (Ledoit-Wolf
shrinkage covariance), two-sided by construction (atypically easy and atypically hard to reconstruct
both count), cross-fitted over 5 folds of the real images (each real image scored by a model that never
saw it; every generated image by the mean of the 5 fold models). No generated image is used to fit it.

Usage: python benchmarks/real_reference_probe.py [--features FILE.npy]
(``--features``: the default scorer's features of ``digits_mixed(150)`` in order, saved by an earlier
run; computed, about 2 minutes on 2 cores, and saved there when the file does not exist.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def atypicality(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of ``test`` rows from ``train`` rows (standardised, Ledoit-Wolf)."""
    from sklearn.covariance import LedoitWolf

    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)
    fitted = LedoitWolf().fit((train - mean) / std)
    d = (test - mean) / std - fitted.location_
    return np.einsum("ij,jk,ik->i", d, fitted.precision_, d)


def cross_fitted(z: np.ndarray, y: np.ndarray, folds: int = 5) -> np.ndarray:
    from sklearn.model_selection import KFold

    real, fake = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    scores = np.zeros(len(y))
    for train, test in KFold(folds, shuffle=True, random_state=0).split(real):
        scores[real[test]] = atypicality(z[real[train]], z[real[test]])
        scores[fake] += atypicality(z[real[train]], z[fake]) / folds
    return scores


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from detectors.builtin import digits_mixed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="/tmp/genaudit-digits-mixed-features.npy")
    args = parser.parse_args()
    data = digits_mixed(150)
    path = Path(args.features)
    if path.is_file():
        feats = np.load(path)
    else:
        from detectors.job import DEFAULT_SCORER, build_scorer, features
        from detectors.noise_model import load_noise_model

        model = load_noise_model("embedded:digits-ddpm")
        feats, _ = features(model, build_scorer(DEFAULT_SCORER, model), data.images)
        np.save(path, feats)
    if len(feats) != len(data.y):
        raise SystemExit(f"{path} holds {len(feats)} rows, digits_mixed(150) has {len(data.y)} images")
    logs = np.log(np.maximum(feats, 1e-12))
    variants = {
        "per noise set, averaged (4 x 130-d)": lambda: np.mean(
            [cross_fitted(block, data.y) for block in np.split(logs, 4, axis=1)], axis=0
        ),
        "features averaged over the noise sets (130-d)": lambda: cross_fitted(
            np.mean(np.split(logs, 4, axis=1), axis=0), data.y
        ),
    }
    family = data.family
    for name, run in variants.items():
        scores = run()
        print(name)
        for f in dict.fromkeys(family[data.y == 1]):
            mask = (data.y == 0) | (family == f)
            print(f"  {f}: AUROC {roc_auc_score(data.y[mask], scores[mask]):.3f}")


if __name__ == "__main__":
    main()
