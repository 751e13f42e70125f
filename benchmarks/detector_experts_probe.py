"""One model per generator, and what cross-fitting with siblings does to the figures (issue 20).

On ``builtin:digits-mixed`` with the default scorer's features (K = 16 x 2), every image scored out of
fold (5 folds stratified by source), per generator family, seen (every family in calibration) and left out
(calibrated on the real images and the other families):

- the product's detector, two-class alone (``reference="off"``): one pooled logistic model
  (``experts=False``) and one per generator (the default);
- two non-linear experts, combined the same way (the largest decision, each standardised on the real
  images' out-of-fold decisions): an RBF-kernel SVM per generator (C and gamma chosen by inner 3-fold
  cross-validation) and a k-nearest-neighbour likelihood ratio (log distance to the 5 nearest real
  images minus log distance to the 5 nearest of the generator's);

each twice: with plain folds, and with the DDPM's siblings (image i under every schedule, one seed) kept
in one fold. Prints one line per detector and protocol.

Usage: python benchmarks/detector_experts_probe.py [--cache DIR]   (about 2 minutes on 2 cores with the
features cached by ``nfe_curve.py --cache DIR``; add the feature pass, about 20 s, without)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

Scorer = Callable[[np.ndarray], np.ndarray]
Maker = Callable[[np.ndarray, np.ndarray, np.ndarray], Scorer]  # (log features, y, family) -> scorer


def folds(strata: np.ndarray, siblings: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if siblings is None:
        return list(StratifiedKFold(5, shuffle=True, random_state=0).split(strata, strata))
    return list(StratifiedGroupKFold(5, shuffle=True, random_state=0).split(strata, strata, siblings))


def figures(make: Maker, logs: np.ndarray, y: np.ndarray, family: np.ndarray, source: np.ndarray,
            siblings: np.ndarray | None) -> dict[str, tuple[float, float]]:  # fmt: skip
    """Per family: (seen AUROC, left-out AUROC), every image scored by a model that never saw it."""
    from sklearn.metrics import roc_auc_score

    families = [f for f in dict.fromkeys(family[y == 1])]
    seen = np.empty(len(y))
    for train, test in folds(source, siblings):
        seen[test] = make(logs[train], y[train], family[train])(logs[test])
    out = {}
    for held in families:
        pool, left = np.flatnonzero(family != held), np.flatnonzero(family == held)
        scores = np.empty(len(y))
        for j, (train, test) in enumerate(folds(source[pool], None if siblings is None else siblings[pool])):
            model = make(logs[pool[train]], y[pool[train]], family[pool[train]])
            scores[pool[test]] = model(logs[pool[test]])
            scores[left[j::5]] = model(logs[left[j::5]])
        rows = (y == 0) | (family == held)
        out[held] = (roc_auc_score(y[rows], seen[rows]), roc_auc_score(y[rows], scores[rows]))
    return out


def product(experts: bool) -> Maker:
    from detectors.detector import ReconstructionDetector

    def make(logs: np.ndarray, y: np.ndarray, family: np.ndarray) -> Scorer:
        det = ReconstructionDetector(blocks=2, reference="off", experts=experts).fit(np.exp(logs), y, family)
        return lambda query: det.decision_function(np.exp(query))

    return make


def largest_of(fit_expert: Callable[[np.ndarray, np.ndarray], tuple[Scorer, np.ndarray]]) -> Maker:
    """The largest of per-family experts, each standardised on its real images' out-of-fold decisions."""

    def make(logs: np.ndarray, y: np.ndarray, family: np.ndarray) -> Scorer:
        mean, std = logs[y == 0].mean(0), logs[y == 0].std(0)
        scaled = (logs - mean) / std
        experts = []
        for fam in dict.fromkeys(family[y == 1]):
            rows = (y == 0) | (family == fam)
            score, real_oof = fit_expert(scaled[rows], y[rows])
            experts.append((score, real_oof.mean(), real_oof.std()))
        return lambda query: np.max([(s((query - mean) / std) - c) / v for s, c, v in experts], axis=0)

    return make


def svm_expert(logs: np.ndarray, y: np.ndarray) -> tuple[Scorer, np.ndarray]:
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
    from sklearn.svm import SVC

    grid = {"C": [1, 3, 10], "gamma": [0.005, 0.015, 0.03, 0.06]}
    search = GridSearchCV(SVC(class_weight="balanced"), grid, scoring="roc_auc",
                          cv=StratifiedKFold(3, shuffle=True, random_state=0)).fit(logs, y)  # fmt: skip
    refolds = StratifiedKFold(3, shuffle=True, random_state=1)
    oof = cross_val_predict(SVC(class_weight="balanced", **search.best_params_), logs, y, cv=refolds,
                            method="decision_function")  # fmt: skip
    return search.best_estimator_.decision_function, oof[y == 0]


def knn_expert(logs: np.ndarray, y: np.ndarray, k: int = 5) -> tuple[Scorer, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors

    real, fake = NearestNeighbors().fit(logs[y == 0]), NearestNeighbors().fit(logs[y == 1])

    def score(query: np.ndarray) -> np.ndarray:
        return np.log(real.kneighbors(query, k)[0].mean(1)) - np.log(fake.kneighbors(query, k)[0].mean(1))

    own = np.log(real.kneighbors(logs[y == 0], k + 1)[0][:, 1:].mean(1))  # each real image without itself
    return score, own - np.log(fake.kneighbors(logs[y == 0], k)[0].mean(1))


def main() -> None:
    from detectors.builtin import digits_mixed
    from detectors.job import build_scorer, features
    from detectors.noise_model import load_noise_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="nfe_curve.py's feature cache (k16_x2.npy)")
    args = parser.parse_args()
    data = digits_mixed(150)
    cached = args.cache / "k16_x2.npy" if args.cache else None
    if cached is not None and cached.is_file():
        feats = np.load(cached)
    else:
        model = load_noise_model("embedded:digits-ddpm")
        feats, _ = features(model, build_scorer({"name": "diffusion-loss", "k": 16, "noise_sets": 2}, model),
                            data.images)  # fmt: skip
    logs = np.log(np.maximum(feats, 1e-12))
    y, family, source = np.asarray(data.y), data.family, np.asarray(data.source)
    short = {"diffusion": "DDPM", "adversarial": "GAN", "statistical": "mixture"}
    makers = {"pooled logistic (product, experts=False)": product(False),
              "logistic per generator (product default)": product(True),
              "RBF SVM per generator, largest": largest_of(svm_expert),
              "5-NN likelihood ratio per generator, largest": largest_of(knn_expert)}  # fmt: skip
    for name, make in makers.items():
        for protocol, siblings in (("plain folds", None), ("siblings in one fold", data.siblings)):
            result = figures(make, logs, y, family, source, siblings)
            cells = "  ".join(f"{short[f.split(' ')[0]]} {s:.3f} / {o:.3f}" for f, (s, o) in result.items())
            print(f"{name:46s} {protocol:21s} seen / left out: {cells}", flush=True)


if __name__ == "__main__":
    main()
