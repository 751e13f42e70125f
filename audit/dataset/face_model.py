"""What every face backend shares: a detection, the perceived attributes of a box, the face record that
combines them, and the detection-resolution rule.

A backend is a detector (boxes with scores) combined with an attribute model (perceived age and gender
of a box): see :mod:`audit.dataset.backends`. Boxes are always in the original image's pixels
(left, top, right, bottom, inclusive); detectors that work on an upscaled copy map them back and record
the scale they used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_DETECT_SIDE = 400
MAX_UPSCALE = 8.0

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Detection:
    box: Box  # left, top, right, bottom in the original image (inclusive)
    score: float
    scale: float  # how much the image was upscaled for detection


@dataclass(frozen=True)
class PerceivedAttributes:
    age: float
    p_male: float  # the model's probability of "male" (its gender output turned into one number)
    confidence: float  # the model's confidence in its binary answer, max(p_male, 1 - p_male) or its own


@dataclass(frozen=True)
class DetectedFace:
    box: Box
    det_score: float
    age: float
    p_male: float
    gender_confidence: float
    detect_scale: float


def upscaled_for_detection(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The image to detect on (bicubic upscale so the shorter side reaches MIN_DETECT_SIDE, at most
    MAX_UPSCALE times, and never past the pixel limit, so a 12 x 7,000,000 strip is not blown up 8-fold)
    and the scale used. Detectors with a smallest face (dlib's HOG: about 80 px) otherwise miss every face
    of a small image."""
    from PIL import Image

    from audit.io.images import bounded_scale, default_max_pixels

    h, w = image.shape[:2]
    limit = default_max_pixels()
    scale = bounded_scale(h, w, min(MAX_UPSCALE, max(1.0, MIN_DETECT_SIDE / min(h, w))), limit)
    if scale == 1.0:
        return image, scale
    size = (round(w * scale), round(h * scale))
    if size[0] * size[1] > limit:  # rounding up must not cross the limit either
        size = (int(w * scale), int(h * scale))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC)), scale


def box_in_original(
    left: float, top: float, right: float, bottom: float, scale: float, shape: tuple[int, ...]
) -> Box | None:
    """A box found on an image upscaled by ``scale``, in the original image's pixels and clipped to it;
    None when less than 2 px remain on a side."""
    h, w = shape[:2]
    box = (
        max(0, int(left / scale)),
        max(0, int(top / scale)),
        min(w - 1, int(right / scale)),
        min(h - 1, int(bottom / scale)),
    )
    return box if box[2] - box[0] >= 2 and box[3] - box[1] >= 2 else None
