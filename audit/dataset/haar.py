"""``opencv-haar``: OpenCV's frontal-face Haar cascade, a second, independent detector. Auditing the same
data with two detectors shows how much the numbers depend on which faces get found. The detector score
is the cascade's level weight (``detectMultiScale3``). Small images are upscaled to the same minimum
side as the other detectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.dataset.face_model import Detection, box_in_original, upscaled_for_detection

CASCADE = "haarcascade_frontalface_default.xml"


@dataclass
class HaarDetector:
    scale_factor: float = 1.1
    min_neighbors: int = 6
    id: str = field(default="opencv-haar", init=False)

    def __post_init__(self) -> None:
        import cv2

        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
        if self._cascade.empty():
            from audit.errors import WeightsError

            raise WeightsError(f"OpenCV has no {CASCADE} (opencv 5.x wheels ship none: keep opencv < 5)")

    def describe(self) -> dict[str, Any]:
        from audit.provenance import package_versions

        return {
            "id": self.id,
            "model": f"OpenCV Haar cascade {CASCADE}",
            "version": package_versions(("opencv-python", "opencv-python-headless")),
            "licence": "BSD (OpenCV cascades)",
            "scale_factor": self.scale_factor,
            "min_neighbors": self.min_neighbors,
        }

    def detect(self, image: np.ndarray) -> list[Detection]:
        detect, scale = upscaled_for_detection(image)
        grey = self._cv2.cvtColor(detect, self._cv2.COLOR_RGB2GRAY)
        boxes, _, weights = self._cascade.detectMultiScale3(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, outputRejectLevels=True
        )
        found = []
        for (x, y, bw, bh), weight in zip(boxes, np.ravel(weights) if len(boxes) else [], strict=True):
            box = box_in_original(x, y, x + bw, y + bh, scale, image.shape)
            if box is not None:
                found.append(Detection(box, float(weight), scale))
        return found
