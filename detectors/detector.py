"""The detector: scikit-learn's estimator contract over reconstruction features.

:class:`ReconstructionDetector` takes the per-image feature vectors of a scorer (per-timestep errors, a
residual, ...), learns which direction means "generated" and how the features combine (logistic
regression on standardised log features, its regularisation chosen by cross-validation), calibrates a
probability (Platt scaling or isotonic regression on cross-fitted scores, so calibration never sees a
score the model was fitted on) and picks the flagging threshold on the real images for a target
false-positive rate. With ``blocks`` B (a scorer's B independent noise sets, side by side), it fits one
logistic model per block and averages their decisions: on the digits DDPM an ensemble over noise sets
beats one model on all of them together (which gained nothing) and averaging the features.

One model per generator ("experts", docs/detect.md, "One model per generator"): given each image's source
(``groups``), every generator gets its own logistic model against the real images, and an image's two-class
decision is the largest of the models' decisions, each standardised by the mean and spread of its
decisions on its real calibration images. Generators can err in opposite directions (the digits GAN is
reconstructed worse than real digits, the DDPM's own samples better): one pooled linear model must put both
on one side and serves neither, while the largest standardised expert flags whatever any one of them would.

With ``reference="combined"`` (the default) the two-class decision is joined by the real-reference score
(:mod:`detectors.reference`: how atypical an image's features are among the real images, in every
direction), which needs no generated image and so does not share the two-class model's blind spot for a
generator that errs the other way. Both are standardised on the real images' cross-fitted scores and
added, the reference weighted by the largest ``lambda`` on a grid that keeps the cross-fitted AUROC of
*every* calibration generator within ``reference_tolerance`` of the two-class detector's (docs/detect.md,
"Combining the two"). Given real images only (every y = 0), ``fit`` makes a reference-only detector: its
decision is the reference score, its threshold keeps the target FPR on the real images, and its
"probability" is one minus the conformal p-value against them (there is no generated image to calibrate a
posterior on).

``__init__`` only stores parameters; ``fit(X, y)`` (y = 1 for generated) returns ``self``;
``decision_function`` (higher = more likely generated), ``predict_proba``, ``predict`` (the FPR
threshold) and ``score`` (accuracy) follow scikit-learn. A fitted detector is saved as JSON (parameters,
provenance, the arrays' sha256) plus safetensors (the arrays): no pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from audit.errors import InputError, WeightsError

CALIBRATIONS = ("logistic", "isotonic")
REFERENCE_MODES = ("off", "combined")
C_GRID = (0.01, 0.1, 1.0, 10.0)
LAMBDA_GRID = tuple(np.arange(13) * 0.25)  # the reference's weight in the combination: 0, 0.25, ..., 3
LOG_FLOOR = 1e-12
# 2: a sha256 over the whole JSON (parameters, threshold, meta); 3: the real reference and the mode;
# 4: one model per generator (the arrays gain a leading generator axis)
FORMAT = "genaudit.detector/4"
DETECTOR_FILE = "detector.json"  # what a detector folder holds (`detect calibrate --out FOLDER`)
MODES = ("two-class", "combined", "reference")


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


def _parents(parents: Any, y: np.ndarray) -> np.ndarray:
    """Each row's original row (see :meth:`ReconstructionDetector.fit`), checked: it must be an original with
    the same label."""
    if parents is None:
        return np.arange(len(y))
    parents = np.asarray(parents).astype(int).ravel()
    if len(parents) != len(y) or parents.min(initial=0) < 0 or parents.max(initial=0) >= len(y):
        raise InputError("parents must give one row index per row")
    if np.any(parents[parents] != parents) or np.any(y[parents] != y):
        raise InputError("each row's parent must be an original row (its own parent) with the same label")
    return parents


def _centre_scale(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (1 where it is 0) of ``values``."""
    scale = float(np.std(values))
    return float(np.mean(values)), scale if scale > 0 else 1.0


def _decide(Z: np.ndarray, mean: np.ndarray, std: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    """A linear model's decisions on log features ``Z`` (standardised by its ``mean`` and ``std``)."""
    return ((Z - mean) / std) @ coef + intercept


def _expert_decision(Z: np.ndarray, model: tuple[Any, ...], centre: float, spread: float) -> np.ndarray:
    """An expert's decisions, standardised by the ``centre`` and ``spread`` of its decisions on its real
    rows (docs/detect.md, "One model per generator"): the scale every expert is compared on."""
    return (_decide(Z, *model) - centre) / spread


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
        experts: bool = True,  # one model per generator source (groups), the largest standardised decision
        reference: str = "combined",  # "off": the two-class detector alone
        reference_columns: int | None = None,  # the first columns of each block the reference uses (None: all)
        reference_neighbours: int = 5,
        reference_tolerance: float = 0.005,  # the AUROC on any calibration generator the reference may cost
    ) -> None:
        self.calibration = calibration
        self.target_fpr = target_fpr
        self.C = C
        self.cv = cv
        self.log_features = log_features
        self.random_state = random_state
        self.blocks = blocks
        self.experts = experts
        self.reference = reference
        self.reference_columns = reference_columns
        self.reference_neighbours = reference_neighbours
        self.reference_tolerance = reference_tolerance

    # -- fitting ------------------------------------------------------------------------------------
    def _z(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise InputError(f"features must be a 2-D array (images x features), got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise InputError("features contain NaN or infinity")
        return _log_features(X) if self.log_features else X

    def _linear(self, Z: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Standardise, then one logistic model per column block; the mean of the blocks' decisions is
        itself linear in all the features (coefficients side by side over ``blocks``, intercepts averaged),
        so a block ensemble is stored, applied and explained like one model. Each block's model is
        scikit-learn's ``LogisticRegression(C=C)`` solved exactly (:mod:`detectors.logistic`)."""
        from detectors.logistic import fit_logistic

        mean, std = Z.mean(0), Z.std(0)
        std = np.where(std > 0, std, 1.0)
        coefs, intercepts = [], []
        for block in np.split((Z - mean) / std, self.blocks, axis=1):
            coef, intercept = fit_logistic(block, y, C)
            coefs.append(coef / self.blocks)
            intercepts.append(intercept)
        return mean, std, np.concatenate(coefs), float(np.mean(intercepts))

    def _standardised(self, Z: np.ndarray, y: np.ndarray, C: float) -> tuple[tuple[Any, ...], float, float]:
        """:meth:`_linear`, with the mean and spread of its decisions on its own real rows: every model, a
        fold's or the final one, is standardised this one way, so that their decisions share a scale even
        where strong regularisation shrinks their coefficients differently with the number of rows."""
        model = self._linear(Z, y, C)
        return (model, *_centre_scale(_decide(Z[y == 0], *model)))

    def _choose_c(self, Z: np.ndarray, y: np.ndarray, splits: list[Any]) -> tuple[float, np.ndarray]:
        """``C`` itself, or with ``"auto"`` the grid value whose cross-fitted AUROC on the calibration data
        is highest (ties: the stronger regularisation), with its cross-fitted decisions. The evaluation
        data never takes part."""
        if self.C != "auto":
            return float(self.C), self._cross_fitted(Z, y, splits, float(self.C))
        from detectors.evaluation import point_metrics

        best, best_oof, best_auc = C_GRID[0], None, -1.0
        for c in C_GRID:
            oof = self._cross_fitted(Z, y, splits, c)
            auc = point_metrics(y, oof)["auroc"]
            if auc > best_auc + 1e-9:
                best, best_oof, best_auc = c, oof, auc
        return best, best_oof

    def fit(self, X: Any, y: Any, groups: Any = None, parents: Any = None) -> ReconstructionDetector:
        """Calibrate on features ``X`` and labels ``y`` (1 = generated). ``groups``: each image's source
        (e.g. its generator), so that the reference's weight keeps every generator's AUROC; all-zero ``y``
        (real images only) makes a reference-only detector. ``parents``: for augmented calibration
        (:mod:`detectors.augment`), the row of each row's original (its own row for an original): a copy
        stays in its original's cross-fitting fold and reference group, and the threshold keeps the target
        FPR on the original real images."""
        if self.calibration not in CALIBRATIONS:
            raise InputError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        if self.reference not in REFERENCE_MODES:
            raise InputError(f"reference must be one of {REFERENCE_MODES}, got {self.reference!r}")
        if not 0.0 < self.target_fpr < 1.0:
            raise InputError(f"target_fpr must be in (0, 1), got {self.target_fpr}")
        Z = self._z(X)
        if int(self.blocks) < 1 or Z.shape[1] % int(self.blocks):
            raise InputError(f"blocks must divide the {Z.shape[1]} features into equal blocks, got {self.blocks}")
        y = np.asarray(y).astype(int).ravel()
        if len(y) != len(Z) or not set(np.unique(y)) <= {0, 1}:
            raise InputError("y must hold one label per image: 1 = generated, 0 = real")
        parents = _parents(parents, y)
        original = parents == np.arange(len(y))
        counts = np.bincount(y[original], minlength=2)
        real_only = counts[1] == 0 and self.reference != "off"
        if counts[0] < 2 or (counts[1] < 2 and not real_only):
            raise InputError(
                f"need at least 2 real and 2 generated images to calibrate, got {counts[0]} and {counts[1]}"
                + ("" if self.reference == "off" else " (or only real images, at least 2, for the real reference)")
            )
        for name in (*self.ARRAYS, "intercept_", "C_", "experts_", "reference_"):  # a refit keeps none
            self.__dict__.pop(name, None)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = Z.shape[1]
        self.mode_ = "reference" if real_only else ("two-class" if self.reference == "off" else "combined")
        if self.mode_ != "reference":
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1, user_api="blas"):  # thousands of small fits: threads cost, not help
                oof = self._fit_experts(Z, y, groups, parents)
        if self.mode_ != "two-class":
            oof = self._fit_reference(Z, y, None if real_only else oof, groups, parents)
        if self.mode_ == "reference":
            self.real_decisions_ = np.sort(oof[original])
        else:
            self._calibrate(oof, y)
        real = np.sort(oof[(y == 0) & original])
        # the smallest threshold that keeps the cross-fitted FPR on the real images at or below target
        k = int(np.floor(self.target_fpr * len(real)))
        self.threshold_ = float(np.nextafter(real[len(real) - k - 1], np.inf)) if k < len(real) else float(real[0])
        self.cv_decisions_ = oof
        self.cv_labels_ = y
        return self

    def _fit_experts(self, Z: np.ndarray, y: np.ndarray, groups: Any, parents: np.ndarray) -> np.ndarray:
        """One logistic model per generator source against all the real images (one for all generated images
        with ``experts=False``, no ``groups``, or a source of fewer than 2 images), each standardised by the
        mean and spread of its decisions on its own real rows; returns every row's cross-fitted two-class
        decision: the largest standardised expert. A row an expert was calibrated on gets that expert's
        out-of-fold decision; any other row, which it never saw, its decision as fitted."""
        sources = np.full(len(y), "generated", dtype=object)
        if groups is not None and self.experts:
            sources = np.array(groups, dtype=object)  # a copy: it may be rewritten below
            if len(sources) != len(y):
                raise InputError("groups must give one source per image")
        original = parents == np.arange(len(y))
        names = list(dict.fromkeys(sources[(y == 1) & original]))
        if min(int(np.sum((sources == n) & original)) for n in names) < 2:  # e.g. a fold of a 2-image source
            sources[:], names = "generated", ["generated"]  # too few to fit a model on: one pooled model
        local = np.full(len(y), -1)
        fitted, standard, chosen, decisions = [], [], [], []
        for name in names:
            rows = np.flatnonzero((y == 0) | (sources == name))
            local[rows] = np.arange(len(rows))
            sub_y, sub_parents = y[rows], local[parents[rows]]
            counts = np.bincount(sub_y[sub_parents == np.arange(len(rows))], minlength=2)
            splits = self._splits(sub_y, sub_parents, max(2, min(int(self.cv), int(counts.min()))))
            C, sub_oof = self._choose_c(Z[rows], sub_y, splits)
            model, centre, spread = self._standardised(Z[rows], sub_y, C)
            d = _expert_decision(Z, model, centre, spread)
            d[rows] = sub_oof
            decisions.append(d)
            fitted.append(model)
            standard.append((centre, spread))
            chosen.append(C)
        self.experts_ = [str(n) for n in names]
        self.C_ = np.array(chosen, dtype=np.float64)
        self.mean_, self.scale_, self.coef_ = (np.stack([f[i] for f in fitted]) for i in range(3))
        self.intercept_ = np.array([f[3] for f in fitted], dtype=np.float64)
        self.expert_standard_ = np.array(standard, dtype=np.float64)
        return np.max(decisions, axis=0)

    def _reference_view(self, Z: np.ndarray) -> np.ndarray:
        from detectors.reference import reference_view

        return reference_view(Z, int(self.blocks), self.reference_columns)

    def _fit_reference(
        self, Z: np.ndarray, y: np.ndarray, oof: np.ndarray | None, groups: Any, parents: np.ndarray
    ) -> np.ndarray:
        """Fit the real reference; return the cross-fitted decisions of the combination (or of the reference
        alone when ``oof``, the two-class cross-fitted decisions, is None). Real images are scored leave one
        out, so no image is scored against itself."""
        from detectors.evaluation import point_metrics
        from detectors.reference import RealReference

        V, real = self._reference_view(Z), y == 0
        self.reference_ = RealReference(self.reference_neighbours).fit(V[real], groups=parents[real])
        atyp = np.empty(len(y))
        atyp[real] = self.reference_.atypicality(V[real], leave_one_out=True)
        if (~real).any():
            atyp[~real] = self.reference_.atypicality(V[~real])
        m_a, s_a = _centre_scale(atyp[real])
        z_a = (atyp - m_a) / s_a
        if oof is None:
            self.combination_ = np.array([0.0, 1.0, m_a, s_a, 1.0])
            return z_a
        m_d, s_d = _centre_scale(oof[real])
        z_d = (oof - m_d) / s_d
        sources = np.asarray(["generated"] * len(y) if groups is None else groups, dtype=object)
        pools = [real | (sources == g) for g in dict.fromkeys(sources[~real])]
        floor = [point_metrics(y[p], z_d[p])["auroc"] - self.reference_tolerance for p in pools]
        lam = 0.0
        for candidate in LAMBDA_GRID[1:]:
            combined = z_d + candidate * z_a
            if all(point_metrics(y[p], combined[p])["auroc"] >= f for p, f in zip(pools, floor, strict=True)):
                lam = float(candidate)
        self.combination_ = np.array([m_d, s_d, m_a, s_a, lam])
        return z_d + lam * z_a

    def _splits(self, y: np.ndarray, parents: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Stratified folds over the original rows, each copy in its original's fold."""
        from sklearn.model_selection import StratifiedKFold

        originals = np.flatnonzero(parents == np.arange(len(y)))
        out = []
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=self.random_state).split(
            originals, y[originals]
        ):
            out.append(
                (np.flatnonzero(np.isin(parents, originals[train])), np.flatnonzero(np.isin(parents, originals[test])))
            )
        return out

    def _cross_fitted(self, Z: np.ndarray, y: np.ndarray, splits: list[Any], C: float) -> np.ndarray:
        """Every row's decision by a model fitted without it (its fold's), standardised as the final model
        is (:meth:`_standardised`)."""
        oof = np.empty(len(y))
        for train, test in splits:
            model, centre, spread = self._standardised(Z[train], y[train], C)
            oof[test] = _expert_decision(Z[test], model, centre, spread)
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
        if not hasattr(self, "threshold_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this detector is not calibrated yet: call fit(X, y) or load a saved one")

    def decision_function(self, X: Any) -> np.ndarray:
        """Higher = more likely generated (the direction was learned in ``fit``)."""
        self._check_fitted()
        Z = self._z(X)
        if Z.shape[1] != self.n_features_in_:
            raise InputError(f"expected {self.n_features_in_} features per image, got {Z.shape[1]}")
        if self.mode_ == "two-class":
            return self._two_class(Z)
        m_d, s_d, m_a, s_a, lam = self.combination_
        z_a = (self.reference_.atypicality(self._reference_view(Z)) - m_a) / s_a
        return z_a if self.mode_ == "reference" else (self._two_class(Z) - m_d) / s_d + lam * z_a

    def _two_class(self, Z: np.ndarray) -> np.ndarray:
        """The largest of the generators' standardised decisions."""
        models = zip(self.mean_, self.scale_, self.coef_, self.intercept_, strict=True)
        standards = self.expert_standard_
        return np.max([_expert_decision(Z, m, c, s) for m, (c, s) in zip(models, standards, strict=True)], axis=0)

    def probability(self, decisions: np.ndarray) -> np.ndarray:
        """Calibrated P(generated) for decision values; reference-only: one minus the conformal p-value
        ``(1 + #real >= d) / (n + 1)`` against the real images' cross-fitted decisions, an atypicality level,
        not a posterior (no generated image was given)."""
        self._check_fitted()
        decisions = np.asarray(decisions, dtype=np.float64)
        if self.mode_ == "reference":
            real = self.real_decisions_
            at_least = len(real) - np.searchsorted(real, decisions, side="left")
            return 1.0 - (1.0 + at_least) / (len(real) + 1.0)
        if self.calibration == "logistic":
            from scipy.special import expit  # 1 / (1 + exp(-z)) without overflow far from the threshold

            return expit(self.platt_[0] * decisions + self.platt_[1])
        return np.interp(decisions, self.isotonic_x_, self.isotonic_y_)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self.probability(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """1 (flagged as generated) where the decision reaches the target-FPR threshold."""
        return (self.decision_function(X) >= self.threshold_).astype(int)

    def direction(self, feature_names: list[str] | None = None) -> list[dict[str, Any]]:
        """Per feature (and per generator, when there are several): its weight in the two-class model and which
        way it points ("higher means generated" or "... real"); empty for a reference-only detector, which has
        no direction."""
        self._check_fitted()
        if self.mode_ == "reference":
            return []
        names = feature_names or [f"feature {i}" for i in range(self.n_features_in_)]
        return [
            {
                **({"generator": generator} if len(self.experts_) > 1 else {}),
                "feature": n, "weight": float(w), "higher_means": "generated" if w > 0 else "real",
            }
            for generator, coef in zip(self.experts_, self.coef_, strict=True)
            for n, w in zip(names, coef, strict=True)
        ]  # fmt: skip

    # -- saving -------------------------------------------------------------------------------------
    ARRAYS = (
        "mean_", "scale_", "coef_", "intercept_", "expert_standard_", "platt_", "isotonic_x_", "isotonic_y_",
        "combination_", "real_decisions_",
    )  # fmt: skip
    REFERENCE_ARRAYS: ClassVar[dict[str, str]] = {
        "reference_mean_": "mean_", "reference_scale_": "scale_", "reference_rows_": "rows_"
    }  # fmt: skip

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """``path`` (JSON: parameters, threshold, ``meta``, the arrays file's sha256) and
        ``path`` with suffix ``.safetensors`` (the fitted arrays), both written atomically."""
        from safetensors.numpy import save as save_arrays

        from audit.atomic import write_bytes_atomic, write_json_atomic
        from audit.hashing import sha256_bytes

        self._check_fitted()
        path = Path(path)
        arrays = {name: np.ascontiguousarray(getattr(self, name)) for name in self.ARRAYS if hasattr(self, name)}
        if hasattr(self, "reference_"):
            for saved, attr in self.REFERENCE_ARRAYS.items():
                arrays[saved] = np.ascontiguousarray(getattr(self.reference_, attr))
        blob = save_arrays(arrays)
        tensors = path.with_suffix(".safetensors")
        write_bytes_atomic(tensors, blob)
        doc = {
            "format": FORMAT,
            "params": self.get_params(),
            "mode": self.mode_,
            "C_chosen": self.C_.tolist() if hasattr(self, "C_") else None,
            "experts": getattr(self, "experts_", None),
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
        """A saved detector and its ``meta``; the arrays must match the recorded sha256. ``path`` is its JSON
        file or the folder ``detect calibrate --out FOLDER`` saved it in (:data:`DETECTOR_FILE` there)."""
        from safetensors.numpy import load as load_arrays

        from audit.hashing import sha256_bytes

        path = Path(path)
        if path.is_dir():
            path = path / DETECTOR_FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise WeightsError(f"cannot read detector {path}: {type(exc).__name__}: {exc}") from None
        if not is_detector_document(doc):
            raise WeightsError(f"{path} is not a genaudit detector")
        if doc.get("format") != FORMAT:
            raise OutdatedDetectorError(
                f"{path} was saved by another genaudit (format {doc.get('format')!r}; this one reads {FORMAT!r}, "
                "one model per generator): recalibrate it with `genaudit detect calibrate`"
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
        from detectors.reference import RealReference

        detector = cls(**doc["params"])
        if doc["mode"] not in MODES:
            raise ValueError(f"unknown mode {doc['mode']!r}")
        detector.mode_ = doc["mode"]
        reference = {name: arrays.pop(name) for name in cls.REFERENCE_ARRAYS if name in arrays}
        for name, value in arrays.items():
            setattr(detector, name, value)
        if detector.mode_ != "reference":
            detector.C_ = np.asarray(doc["C_chosen"], dtype=np.float64)
            detector.experts_ = [str(n) for n in doc["experts"]]
        if detector.mode_ != "two-class":
            detector.reference_ = RealReference.from_arrays(
                reference["reference_mean_"],
                reference["reference_scale_"],
                reference["reference_rows_"],
                detector.reference_neighbours,
            )
            if np.shape(detector.combination_) != (5,):
                raise ValueError(f"combination_ has shape {np.shape(detector.combination_)}, expected (5,)")
        detector.threshold_ = float(doc["threshold"])
        detector.n_features_in_ = int(doc["n_features_in"])
        detector.classes_ = np.array([0, 1])
        n = detector.n_features_in_
        g = len(getattr(detector, "experts_", []))
        shapes = {"mean_": (g, n), "scale_": (g, n), "coef_": (g, n), "intercept_": (g,), "expert_standard_": (g, 2),
                  "C_": (g,)}  # fmt: skip
        for name, shape in shapes.items() if detector.mode_ != "reference" else ():
            if g < 1 or np.shape(getattr(detector, name)) != shape:
                raise ValueError(f"{name} has shape {np.shape(getattr(detector, name))}, expected {shape}")
        probe = detector.decision_function(np.ones((1, n)))
        if not (np.all(np.isfinite(probe)) and np.isfinite(detector.threshold_)):
            raise ValueError("its decision or threshold is not finite")
        return detector
