"""The results document of a deepfake check (kind ``deepfake-detection``): what the card shows, with
provenance (model ids and hashes, scorer configuration, noise seeds, calibration, package versions)."""

from __future__ import annotations

import sys
from typing import Any

from audit.provenance import provenance

LIMITATIONS = [
    "A reconstruction detector knows the generators it was calibrated on: images from other generators, or "
    "from these after editing, can pass as real. On builtin:digits-mixed a detector calibrated without a "
    "family catches the Gaussian mixture (AUROC 0.97) but not the DDPM (0.70) or the GAN (0.68). Its scores "
    "say how the embedded or given model sees an image, nothing more.",
    "Which way the error points (generated images reconstructing better or worse than real ones) depends on "
    "the model; it is learned at calibration and shown below, never assumed.",
    "The threshold holds its false-positive rate only for real images like the calibration set; on other "
    "real images (other cameras, compression, subjects) the rate can be far higher.",
    "Simple, flat or heavily compressed real images reconstruct well and are flagged more often.",
    "Re-encoding erases much of what the detector reads (JPEG q75: AUROC 0.875 to 0.640 on the embedded world). "
    "A JPEG route, where the detector has one, scores JPEGs below quality 90 with a detector calibrated on JPEG "
    "copies (0.739 there), but a JPEG that was also resized, or a PNG that was once a JPEG, is scored by a "
    "detector that never saw such an image. The threshold is set on the calibration images and holds only for "
    "images like them: without a route, 21.5% of real digits saved at JPEG q95 and 100% of those re-encoded at "
    "q75 or resized were flagged at the threshold that flags 4.4% of clean ones (the scan warns about such inputs).",
    "Real images the generator was trained on fit it unusually well and are flagged far more often than "
    "other real images (membership inference). On the embedded digits model 19% of its training digits "
    "are flagged at a 5% FPR threshold (41% when only its own samples were in calibration); the demo's card "
    "measures it. Do not use the detector to "
    "judge images that may be in the generator's training data.",
    "One fold draw and one set of noise draws give one number: on the DDPM's images of builtin:digits-mixed "
    "(before its GAN and mixture joined) the cross-fitted AUROC moved between 0.952 and 0.965 over noise "
    "seeds and fold draws (benchmarks/RESULTS.md), more than the last digit shown here.",
    "A flag is a reason to look closer, not proof: never act on it alone against a person.",
]


def build_results(
    *,
    title: str,
    dataset: str,
    model: Any,
    detector: Any,
    meta: dict[str, Any],
    evaluation: dict[str, Any] | None,
    curves: dict[str, Any] | None,
    costs: list[dict[str, Any]],
    detections: list[dict[str, Any]],
    n_flagged: int,
    n_scored: int,
    warnings: list[str],
    notes: list[str],
    fairness: dict[str, Any] | None,
    config: dict[str, Any],
) -> dict[str, Any]:
    headline: list[dict[str, Any]] = []
    if evaluation is not None:
        headline += [
            {"label": "AUROC", "value": evaluation["auroc"], "format": "float3"},
            {"label": "average precision", "value": evaluation["ap"], "format": "float3"},
            {"label": "TPR at 5% FPR", "value": evaluation["tpr_at_fpr_5pct"], "format": "pct"},
        ]
    headline.append({"label": "images flagged", "value": f"{n_flagged} of {n_scored}"})
    names = meta.get("feature_names")
    return {
        "schema": "genaudit.results/1",
        "kind": "deepfake-detection",
        "id": "detect-" + "".join(ch if ch.isalnum() else "-" for ch in dataset.lower()).strip("-")[:60],
        "title": title,
        "headline": headline,
        "provenance": provenance(
            command=" ".join(["genaudit", *sys.argv[1:]])
            if sys.argv and "genaudit" in sys.argv[0]
            else "detectors.job",
            config={
                **config,
                "model": meta.get("model"),
                "scorer": meta.get("scorer"),
                "detector": detector.get_params(),
                "threshold": detector.threshold_,
                "routes": meta.get("routes"),
            },
            seeds={"noise": int((meta.get("scorer") or {}).get("seed", 0)), "folds": 0, "bootstrap": 0},
            models=model.models(),
            preprocessing={
                "model_input": "uint8 RGB -> the model's own encoding (pixels in [-1, 1] or VAE latents)",
                "features": "log of the scorer's features, standardised",
            },
        ),
        "data": {
            "dataset": dataset,
            "model": meta.get("model"),
            "scorer": meta.get("scorer"),
            "calibrated_on": meta.get("calibrated_on"),
            "threshold": detector.threshold_,
            "target_fpr": detector.target_fpr,
            "calibration": detector.calibration,
            "mode": detector.mode_,
            "reference_weight": float(detector.combination_[4]) if detector.mode_ == "combined" else None,
            "direction": detector.direction(names) if names and len(names) == detector.n_features_in_ else None,
            "routes": _routes(detector, meta),
            "evaluation": evaluation,
            "curves": curves,
            "costs": costs,
            "detections": detections,
            "flagged": n_flagged,
            "scored": n_scored,
            "warnings": warnings,
            "notes": notes,
            "fairness": fairness,
            "limitations": LIMITATIONS,
        },
    }


def _routes(detector: Any, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The detector's routes (:mod:`detectors.routing`): each one's threshold, mode and which inputs it takes
    (JPEGs below ``below_quality``, lossy WebPs below ``webp_below_quality``:
    :func:`detectors.recompression.recompressed`; ``enlarged``: inputs larger than the calibration images)."""
    from detectors.recompression import WEBP_QUALITY_LIMIT
    from detectors.routing import JPEG_ROUTE, takes_enlarged

    out = {}
    for name, route in (getattr(detector, "routes", None) or {}).items():
        entry = (meta.get("routes") or {}).get(name) or {}
        out[name] = {"threshold": route.threshold_, "mode": route.mode_, "below_quality": entry.get("below_quality"),
                     "webp_below_quality": WEBP_QUALITY_LIMIT, "file": entry.get("file"),
                     "enlarged": name == JPEG_ROUTE and takes_enlarged(meta),
                     "sha256": entry.get("sha256")}  # fmt: skip
    return out or None
