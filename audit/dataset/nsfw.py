"""Optional NSFW check with NudeNet (``nudenet`` 3.4, its bundled ``320n.onnx`` body-part detector).

Off by default (``genaudit audit --nsfw`` turns it on) and not installed by default: the LICENSE file in
the nudenet wheel is the AGPL-3.0 (its package metadata says MIT), so it is the optional extra
``genaudit[nsfw]`` and never part of ``all``. An image is flagged when any explicit part (exposed
breast, genitalia, buttocks or anus) is detected with a score of at least :data:`MIN_SCORE`. The record
keeps the highest score per label, so the threshold can be revisited without re-running.

Flagged images are counted in the datasheet (with a Wilson interval) and never shown in the card's
thumbnails. NudeNet is one model with its own errors (skin tone, drawings, swimwear); its flags are
pointers for review, not verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audit.errors import WeightsError

EXPLICIT = (
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)
MIN_SCORE = 0.5
LICENCE = "AGPL-3.0 (the LICENSE file in the nudenet wheel; its package metadata says MIT)"


def explicit_labels(labels: dict[str, float], min_score: float = MIN_SCORE) -> list[str]:
    """The explicit labels among ``labels`` (label -> highest score) at or above ``min_score``."""
    return sorted(label for label in EXPLICIT if labels.get(label, 0.0) >= min_score)


@dataclass
class NudeNetChecker:
    min_score: float = MIN_SCORE
    id: str = field(default="nudenet", init=False)

    def __post_init__(self) -> None:
        try:
            from nudenet import NudeDetector
        except ImportError as exc:
            raise WeightsError(f'--nsfw needs nudenet: pip install "genaudit[nsfw]" (licence: {LICENCE})') from exc
        self._detector = NudeDetector()

    def describe(self) -> dict[str, Any]:
        import nudenet

        from audit.hashing import sha256_file
        from audit.provenance import package_versions

        weights = Path(nudenet.__file__).parent / "320n.onnx"
        return {
            "id": self.id,
            "model": "NudeNet 320n.onnx",
            "version": package_versions(("nudenet",)).get("nudenet"),
            "licence": LICENCE,
            "sha256": {"nudenet/320n.onnx": sha256_file(weights)},
            "explicit_labels": list(EXPLICIT),
            "min_score": self.min_score,
        }

    def check(self, image: np.ndarray) -> dict[str, Any]:
        """Highest score per NudeNet label on an RGB uint8 image, and the explicit labels it flags."""
        rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])  # nudenet converts RGBA to BGR
        labels: dict[str, float] = {}
        for det in self._detector.detect(rgba):
            labels[det["class"]] = round(max(labels.get(det["class"], 0.0), float(det["score"])), 4)
        return {"labels": dict(sorted(labels.items())), "explicit": explicit_labels(labels, self.min_score)}


def nsfw_composition(records: list[dict[str, Any]]) -> dict[str, Any] | str:
    """Images flagged explicit, overall (with a Wilson 95% interval) and per class; a sentence when the
    check was off."""
    from audit.dataset.digest import digest_list

    return digest_list(records)[0].nsfw()


def is_flagged(record: dict[str, Any]) -> bool:
    return bool(record.get("nsfw", {}).get("explicit"))
