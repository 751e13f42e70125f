"""The detector's logistic fits: genaudit's exact Newton solver against scikit-learn's ``LogisticRegression``.

A calibration fits thousands of small logistic models (docs/detect.md, "Fitting the logistic models"). This
times one cross-fitted calibration as the demo's deepfake check makes it (``detectors.job.cross_fit``: all
1,347 images of ``builtin:digits-mixed``, the default scorer's 64 features, 5 folds stratified by source with
the DDPM's siblings in one fold, one model per generator, ``C`` chosen from the grid by inner folds) twice in
one process: with each block's model fitted by :func:`detectors.logistic.fit_logistic` (the product), and by
``LogisticRegression(C=C, max_iter=5000)`` (the anchor: the detector's code before, restored here for the
comparison), best of two runs each. It prints both times, their ratio, the cross-fitted AUROC of each and
how far each solution is from the exact optimum (scikit-learn's Newton solver at tolerance 1e-12) on the
largest single fit.

Usage: python benchmarks/logistic_bench.py [--cache DIR]   (about half a minute on 2 cores, plus 30 s for the
feature pass unless DIR keeps it)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from size_aware_probe import cached, probe_setup


def sklearn_linear(self, Z, y, C):  # noqa: N803 - the detector's _linear as it was, the anchor
    from sklearn.linear_model import LogisticRegression

    mean, std = Z.mean(0), Z.std(0)
    std = np.where(std > 0, std, 1.0)
    coefs, intercepts = [], []
    for block in np.split((Z - mean) / std, self.blocks, axis=1):
        model = LogisticRegression(C=C, max_iter=5000).fit(block, y)
        coefs.append(model.coef_[0].astype(np.float64) / self.blocks)
        intercepts.append(float(model.intercept_[0]))
    return mean, std, np.concatenate(coefs), float(np.mean(intercepts))


REPEATS = 2


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from detectors.detector import ReconstructionDetector
    from detectors.job import cross_fit, features
    from detectors.logistic import fit_logistic

    args, data, model, scorer = probe_setup(__doc__.splitlines()[0])
    feats = cached(args.cache, "clean", lambda: features(model, scorer, list(data.images))[0])
    y = np.asarray(data.y)

    def crossed() -> tuple[float, np.ndarray]:
        best, decisions = float("inf"), None
        for _ in range(REPEATS):
            start = time.perf_counter()
            result = cross_fit(scorer, feats, y, target_fpr=0.05, strata=data.source, siblings=data.siblings)
            best = min(best, time.perf_counter() - start)
            decisions = result.decisions
        return best, decisions

    ours_s, ours = crossed()
    product_linear = ReconstructionDetector._linear
    ReconstructionDetector._linear = sklearn_linear
    try:
        anchor_s, anchor = crossed()
    finally:
        ReconstructionDetector._linear = product_linear
    print(f"machine: {sys.platform}, Python {sys.version.split()[0]}; {len(y)} images, {feats.shape[1]} features")
    print(f"| fits by | cross_fit seconds (best of {REPEATS}) | AUROC |")
    print("| --- | --- | --- |")
    print(f"| LogisticRegression (anchor) | {anchor_s:.2f} | {roc_auc_score(y, anchor):.5f} |")
    print(f"| fit_logistic (genaudit) | {ours_s:.2f} | {roc_auc_score(y, ours):.5f} |")
    print(f"speed-up: {anchor_s / ours_s:.2f}x; largest decision difference {np.abs(ours - anchor).max():.4f}")
    # the largest single fit (every image, one block, C = 10): each solution's distance from the exact optimum
    logs = np.log(np.maximum(feats[:, : feats.shape[1] // 2], 1e-12))
    block = (logs - logs.mean(0)) / logs.std(0)
    exact = LogisticRegression(C=10.0, tol=1e-12, max_iter=100_000, solver="newton-cholesky").fit(block, y).coef_[0]
    default = LogisticRegression(C=10.0, max_iter=5000).fit(block, y).coef_[0]
    ours_coef = fit_logistic(block, y, 10.0)[0]
    print("largest coefficient error against the exact optimum (C = 10, all images, one block): "
          f"LogisticRegression {np.abs(default - exact).max():.2e}, "
          f"fit_logistic {np.abs(ours_coef - exact).max():.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
