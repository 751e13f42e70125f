"""What enlarged copies in the JPEG route's calibration cost and win, over several draws of copies (issue 20).

The JPEG route (:mod:`detectors.routing`) is calibrated on one copy of every calibration image. Its copies were
JPEGs alone; now a share ``ENLARGE_P`` of them are enlarged instead (1.1-2x, bicubic), so that inputs larger than
the calibration images can be routed too. One draw of copies moves a route's AUROC by up to 0.02, so each
recipe is drawn with three seeds (``ENLARGE_P`` 0: JPEG copies alone, seeds 1, 5, 6; 0.5, the product's: seeds
2, 3, 4). Each draw's route is cross-fitted on its copies alone (5 folds stratified by source, the DDPM's
siblings in one fold) and scores every image of ``builtin:digits-mixed`` perturbed (all 1,347, each by the
fold detector that never saw it or a copy of it): AUROC per perturbation, then the mean per recipe.

Usage: python benchmarks/route_copies_draws.py [--cache DIR]   (about 5 minutes on 2 cores without the cache;
the feature passes are kept in DIR when given, shared with size_aware_probe.py)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from size_aware_probe import cached, extra_perturbations, probe_setup

RECIPES = {0.0: (1, 5, 6), 0.5: (2, 3, 4)}  # ENLARGE_P: copy seeds
SWEPT = ("jpeg q75", "jpeg q50", "webp q75", "resize 2x", "resize 1.5x", "resize 1.25x")


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from detectors import routing
    from detectors.evaluation import PERTURBATIONS, perturbed
    from detectors.job import copy_features, cross_fit, features

    args, data, model, scorer = probe_setup(__doc__.splitlines()[0])
    y, every = np.asarray(data.y), np.arange(len(data.y))
    extra = extra_perturbations()

    def swept(name: str) -> np.ndarray:
        if name in PERTURBATIONS:
            return features(model, scorer, perturbed(list(data.images), name))[0]
        return features(model, scorer, [extra[name](np.asarray(im)) for im in data.images])[0]

    tests = {name: cached(args.cache, name.replace(" ", "_"), lambda n=name: swept(n)) for name in SWEPT}
    print(f"AUROC of the route alone, {len(y)} images ({int((y == 0).sum())} real), every image out of fold")
    print(f"{'enlarge p, seed':16s} " + " ".join(f"{n:>12s}" for n in SWEPT))
    defaults = routing.COPY_SEED, routing.ENLARGE_P
    means = {}
    try:
        for share, seeds in RECIPES.items():
            rows = []
            for seed in seeds:
                routing.COPY_SEED, routing.ENLARGE_P = seed, share
                copies = cached(args.cache, f"route_copies_p{share}_seed{seed}",
                                lambda: copy_features(model, scorer, list(data.images)))  # fmt: skip
                route = cross_fit(scorer, copies, y, target_fpr=0.05, strata=data.source, siblings=data.siblings)
                rows.append([roc_auc_score(y, route.score(tests[n], every)) for n in SWEPT])
                print(f"{share:<5} seed {seed:<6d} " + " ".join(f"{a:12.3f}" for a in rows[-1]), flush=True)
            means[share] = np.mean(rows, axis=0)
    finally:
        routing.COPY_SEED, routing.ENLARGE_P = defaults
    for share, mean in means.items():
        print(f"{share:<5} mean        " + " ".join(f"{a:12.3f}" for a in mean))


if __name__ == "__main__":
    main()
