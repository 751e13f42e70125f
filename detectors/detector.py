"""The detector: scikit-learn's estimator contract over reconstruction features.

:class:`ReconstructionDetector` takes the per-image feature vectors of a scorer (per-timestep errors, a
residual, ...), learns which direction means "generated" and how the features combine (logistic
regression on standardised log features, its regularisation chosen by cross-validation), calibrates a
probability (Platt scaling or isotonic regression on cross-fitted scores, so calibration never sees a
score the model was fitted on) and picks the flagging threshold on the real images for a target
false-positive rate. With ``blocks`` B (a scorer's B independent noise sets, side by side), it fits one
logistic model per block and averages their decisions: on the digits DDPM an ensemble over noise sets
beats one model on all of them together (which gained nothing) and averaging the features.

``__init__`` only stores parameters; ``fit(X, y)`` (y = 1 for generated) returns ``self``;
``decision_function`` (higher = more likely generated), ``predict_proba``, ``predict`` (the FPR
threshold) and ``score`` (accuracy) follow scikit-learn. A fitted detector is saved as JSON (parameters,
provenance, the arrays' sha256) plus safetensors (the arrays): no pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from audit.errors import InputError, WeightsError

CALIBRATIONS = ("logistic", "isotonic")
C_GRID = (0.01, 0.1, 1.0, 10.0)
LOG_FLOOR = 1e-12
FORMAT = "genaudit.detector/2"  # 2: a sha256 over the whole JSON (parameters, threshold, meta)


class OutdatedDetectorError(WeightsError):
    """A detector saved by an older genaudit, in a format this version no longer reads."""


def is_detector_document(doc: Any) -> bool:
    """Whether a parsed JSON document is a saved genaudit detector (any format version)."""
    return isinstance(doc, dict) and str(doc.get("format", "")).startswith("genaudit.detector/")


def _document_sha256(doc: dict[str, Any]) -> str:
    """sha256 of a saved detector's JSON less its own ``sha256`` field, canonically serialised: the
    threshold, calibration and scorer config are covered, as the arrays are by their own hash."""
    import hashlib

    body = {k: v for k, v in doc.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _log_features(X: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(X, dtype=np.float64), LOG_FLOOR))


class ReconstructionDetector(ClassifierMixin, BaseEstimator):
    """Calibrated synthetic-image detector on reconstruction features (see the module docstring)."""

    def __init__(
        self,
        calibration: str = "logistic",
        target_fpr: float = 0.05,
        C: float | str = "auto",  # inverse regularisation strength; "auto": chosen by cross-validated AUROC
        cv: int = 5,
        log_features: bool = True,
        random_state: int = 0,
        blocks: int = 1,  # equal column blocks (a scorer's noise sets): one logistic model each, averaged
    ) -> None:
        self.calibration = calibration
        self.target_fpr = target_fpr
        self.C = C
        self.cv = cv
        self.log_features = log_features
        self.random_state = random_state
        self.blocks = blocks

    # -- fitting ------------------------------------------------------------------------------------
    def _z(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise InputError(f"features must be a 2-D array (images x features), got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise InputError("features contain NaN or infinity")
        return _log_features(X) if self.log_features else X

    def _linear(
        self, Z: np.ndarray, y: np.ndarray, C: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Standardise, then one logistic model per column block; the mean of the blocks' decisions is
        itself linear in all the features (coefficients side by side over ``blocks``, intercepts averaged),
        so a block ensemble is stored, applied and explained like one model."""
        from sklearn.linear_model import LogisticRegression

        mean, std = Z.mean(0), Z.std(0)
        std = np.where(std > 0, std, 1.0)
        coefs, intercepts = [], []
        for block in np.split((Z - mean) / std, self.blocks, axis=1):
            model = LogisticRegression(C=C or self.C_, max_iter=5000).fit(block, y)
            coefs.append(model.coef_[0].astype(np.float64) / self.blocks)
            intercepts.append(float(model.intercept_[0]))
        return mean, std, np.concatenate(coefs), float(np.mean(intercepts))

    def _choose_c(self, Z: np.ndarray, y: np.ndarray, folds: int) -> tuple[float, np.ndarray]:
        """``C`` itself, or with ``"auto"`` the grid value whose cross-fitted AUROC on the calibration data
        is highest (ties: the stronger regularisation), with its cross-fitted decisions. The evaluation
        data never takes part."""
        if self.C != "auto":
            return float(self.C), self._cross_fitted(Z, y, folds, float(self.C))
        from detectors.evaluation import point_metrics

        best, best_oof, best_auc = C_GRID[0], None, -1.0
        for c in C_GRID:
            oof = self._cross_fitted(Z, y, folds, c)
            auc = point_metrics(y, oof)["auroc"]
            if auc > best_auc + 1e-9:
                best, best_oof, best_auc = c, oof, auc
        return best, best_oof

    def fit(self, X: Any, y: Any) -> ReconstructionDetector:
        if self.calibration not in CALIBRATIONS:
            raise InputError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        if not 0.0 < self.target_fpr < 1.0:
            raise InputError(f"target_fpr must be in (0, 1), got {self.target_fpr}")
        Z = self._z(X)
        if int(self.blocks) < 1 or Z.shape[1] % int(self.blocks):
            raise InputError(f"blocks must divide the {Z.shape[1]} features into equal blocks, got {self.blocks}")
        y = np.asarray(y).astype(int).ravel()
        if len(y) != len(Z) or not set(np.unique(y)) <= {0, 1}:
            raise InputError("y must hold one label per image: 1 = generated, 0 = real")
        counts = np.bincount(y, minlength=2)
        folds = max(2, min(int(self.cv), int(counts.min())))
        if counts.min() < 2:
            raise InputError(
                f"need at least 2 real and 2 generated images to calibrate, got {counts[0]} and {counts[1]}"
            )
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = Z.shape[1]
        self.C_, oof = self._choose_c(Z, y, folds)
        self.mean_, self.scale_, self.coef_, self.intercept_ = self._linear(Z, y)
        self._calibrate(oof, y)
        real = np.sort(oof[y == 0])
        # the smallest threshold that keeps the cross-fitted FPR on the real images at or below target
        k = int(np.floor(self.target_fpr * len(real)))
        self.threshold_ = float(np.nextafter(real[len(real) - k - 1], np.inf)) if k < len(real) else float(real[0])
        self.cv_decisions_ = oof
        self.cv_labels_ = y
        return self

    def _cross_fitted(self, Z: np.ndarray, y: np.ndarray, folds: int, C: float) -> np.ndarray:
        from sklearn.model_selection import StratifiedKFold

        oof = np.empty(len(y))
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=self.random_state).split(Z, y):
            mean, std, coef, intercept = self._linear(Z[train], y[train], C)
            oof[test] = ((Z[test] - mean) / std) @ coef + intercept
        return oof

    def _calibrate(self, decisions: np.ndarray, y: np.ndarray) -> None:
        if self.calibration == "logistic":
            from sklearn.linear_model import LogisticRegression

            platt = LogisticRegression(C=1e6, max_iter=5000).fit(decisions[:, None], y)
            self.platt_ = np.array([platt.coef_[0, 0], platt.intercept_[0]], dtype=np.float64)
        else:
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(decisions, y)
            self.isotonic_x_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
            self.isotonic_y_ = np.asarray(iso.y_thresholds_, dtype=np.float64)

    # -- predicting ---------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this detector is not calibrated yet: call fit(X, y) or load a saved one")

    def decision_function(self, X: Any) -> np.ndarray:
        """Higher = more likely generated (the direction was learned in ``fit``)."""
        self._check_fitted()
        Z = self._z(X)
        if Z.shape[1] != self.n_features_in_:
            raise InputError(f"expected {self.n_features_in_} features per image, got {Z.shape[1]}")
        return ((Z - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def probability(self, decisions: np.ndarray) -> np.ndarray:
        """Calibrated P(generated) for decision values."""
        self._check_fitted()
        if self.calibration == "logistic":
            return 1.0 / (1.0 + np.exp(-(self.platt_[0] * decisions + self.platt_[1])))
        return np.interp(decisions, self.isotonic_x_, self.isotonic_y_)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self.probability(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """1 (flagged as generated) where the decision reaches the target-FPR threshold."""
        return (self.decision_function(X) >= self.threshold_).astype(int)

    def direction(self, feature_names: list[str] | None = None) -> list[dict[str, Any]]:
        """Per feature: its weight and which way it points ("higher means generated" or "... real")."""
        self._check_fitted()
        names = feature_names or [f"feature {i}" for i in range(self.n_features_in_)]
        return [
            {"feature": n, "weight": float(w), "higher_means": "generated" if w > 0 else "real"}
            for n, w in zip(names, self.coef_, strict=True)
        ]

    # -- saving -------------------------------------------------------------------------------------
    ARRAYS = ("mean_", "scale_", "coef_", "platt_", "isotonic_x_", "isotonic_y_")

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """``path`` (JSON: parameters, threshold, ``meta``, the arrays file's sha256) and
        ``path`` with suffix ``.safetensors`` (the fitted arrays), both written atomically."""
        from safetensors.numpy import save as save_arrays

        from audit.atomic import write_bytes_atomic, write_json_atomic
        from audit.hashing import sha256_bytes

        self._check_fitted()
        path = Path(path)
        arrays = {name: np.ascontiguousarray(getattr(self, name)) for name in self.ARRAYS if hasattr(self, name)}
        arrays["intercept_"] = np.array([self.intercept_])
        blob = save_arrays(arrays)
        tensors = path.with_suffix(".safetensors")
        write_bytes_atomic(tensors, blob)
        doc = {
            "format": FORMAT,
            "params": self.get_params(),
            "C_chosen": self.C_,
            "n_features_in": int(self.n_features_in_),
            "threshold": self.threshold_,
            "arrays": {"file": tensors.name, "sha256": sha256_bytes(blob)},
            "meta": meta or {},
        }
        doc["sha256"] = _document_sha256(doc)
        write_json_atomic(path, doc)
        return path

    @classmethod
    def load(cls, path: str | Path) -> tuple[ReconstructionDetector, dict[str, Any]]:
        """A saved detector and its ``meta``; the arrays must match the recorded sha256."""
        from safetensors.numpy import load as load_arrays

        from audit.hashing import sha256_bytes

        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise WeightsError(f"cannot read detector {path}: {type(exc).__name__}: {exc}") from None
        if not is_detector_document(doc):
            raise WeightsError(f"{path} is not a genaudit detector")
        if doc.get("format") != FORMAT:
            raise OutdatedDetectorError(
                f"{path} was saved by an older genaudit (format {doc.get('format')!r}, without a hash over its "
                "parameters): recalibrate it with `genaudit detect calibrate`"
            )
        try:
            intact = doc.get("sha256") == _document_sha256(doc)
        except (ValueError, TypeError):  # NaN or a non-JSON value edited in
            intact = False
        if not intact:
            raise WeightsError(
                f"corrupt detector: {path}: its parameters (threshold, calibration, scorer, meta) do not match the "
                "sha256 recorded when it was saved; it was edited or damaged: recalibrate it"
            )
        try:
            tensors, recorded = path.with_name(doc["arrays"]["file"]), doc["arrays"]["sha256"]
            blob = tensors.read_bytes()
        except OSError as exc:
            raise WeightsError(f"detector arrays missing: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"corrupt detector: {path}: no arrays file and hash recorded ({exc})") from None
        if sha256_bytes(blob) != recorded:
            raise WeightsError(f"{tensors} does not match the sha256 recorded in {path}")
        try:
            detector = cls._from_saved(doc, load_arrays(blob))
        except Exception as exc:  # any structural damage the hashes let through (a forged pair of files)
            raise WeightsError(f"corrupt detector: {path}: {type(exc).__name__}: {exc}") from None
        return detector, doc["meta"]

    @classmethod
    def _from_saved(cls, doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> ReconstructionDetector:
        """A detector rebuilt from its saved parameters and arrays, checked for consistent shapes and a
        finite decision on a probe row."""
        detector = cls(**doc["params"])
        for name, value in arrays.items():
            setattr(detector, name, value)
        detector.intercept_ = float(detector.intercept_[0])
        detector.threshold_ = float(doc["threshold"])
        detector.C_ = float(doc["C_chosen"])
        detector.n_features_in_ = int(doc["n_features_in"])
        detector.classes_ = np.array([0, 1])
        n = detector.n_features_in_
        for name in ("mean_", "scale_"):
            if np.shape(getattr(detector, name)) != (n,):
                raise ValueError(f"{name} has shape {np.shape(getattr(detector, name))}, expected ({n},)")
        probe = detector.decision_function(np.ones((1, n)))
        if not (np.all(np.isfinite(probe)) and np.isfinite(detector.threshold_)):
            raise ValueError("its decision or threshold is not finite")
        return detector
