"""Perturbed copies of calibration images: what images go through in the wild, seen at calibration.

A detector calibrated on pristine files learns traces that one JPEG pass erases (the demo's AUROC fell from
0.94 to 0.61 at JPEG q50 and to chance at a 0.5x resize). Detectors in the literature train with the
perturbations they will meet (Wang et al. 2020, "CNN-generated images are surprisingly easy to spot... for
now": blur and JPEG, each with probability 0.5). Here every calibration image gets ``copies`` perturbed
copies, each a random chain of

- Gaussian blur, sigma uniform in [0.2, 1.0] pixels (probability 0.3: mild, the images are small),
- a resize by a factor log-uniform in [0.5, 2] (probability 0.5; the scorer brings every size to the model's),
- JPEG at a quality uniform in 30..95 (probability 0.7; last, as a re-upload does),

drawn from a generator seeded by (seed, the image's index, the copy's index): the same copy whatever the
order or the shard the images come in. A copy is labelled as its original and stays in its original's
cross-fitting fold, so no detector is evaluated on a copy of an image it was calibrated on
(docs/detect.md, "Augmented calibration").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

BLUR_P, BLUR_SIGMA = 0.3, (0.2, 1.0)
RESIZE_P, RESIZE_FACTOR = 0.5, (0.5, 2.0)
JPEG_P, JPEG_QUALITY = 0.7, (30, 95)


def perturb(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random chain of blur, resize and JPEG (see the module docstring) applied to uint8 RGB ``image``;
    the resize and the JPEG pass are the robustness sweep's own (:mod:`detectors.evaluation`)."""
    from PIL import Image, ImageFilter

    from detectors.evaluation import jpeg, resize

    out = np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB"))
    if rng.random() < BLUR_P:
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(float(rng.uniform(*BLUR_SIGMA)))))
    if rng.random() < RESIZE_P:
        out = resize(float(np.exp(rng.uniform(*np.log(RESIZE_FACTOR)))))(out)
    if rng.random() < JPEG_P:
        out = jpeg(int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))(out)
    return out


class AugmentedImages(Sequence[np.ndarray]):
    """``copies`` perturbed copies of every image of ``images``, made on access (a chunk at a time when
    scored, never all at once): copy ``j`` is copy ``j % copies`` of image ``j // copies``."""

    def __init__(self, images: Sequence[np.ndarray], copies: int, seed: int = 0) -> None:
        self.images, self.copies, self.seed = images, int(copies), int(seed)

    def __len__(self) -> int:
        return len(self.images) * self.copies

    @property
    def parents(self) -> np.ndarray:
        """The index of each copy's original."""
        return np.repeat(np.arange(len(self.images)), self.copies)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        image, copy = divmod(int(index), self.copies)
        return perturb(np.asarray(self.images[image]), np.random.default_rng([self.seed, image, copy]))
