"""Per-class demographics of the faces found in a dataset (Prabhu & Birhane, WACV 2021).

For a class c, from its faces' perceived age and perceived gender (model outputs, not facts):

* eta: faces, and faces per image;
* alpha: mean perceived age (population std), overall and per perceived gender;
* xi: gender skewness, the Fisher-Pearson g1 = m3 / m2^(3/2) of the per-face values coded male = 1,
  female = 0; for binary values g1 = (1 - 2p) / sqrt(p (1 - p)) with p the male share. Negative means
  male-dominated. Undefined (``None``, with the reason) with fewer than 2 faces or one gender only;
* the female share with a Wilson 95% interval;
* abstentions: faces whose gender confidence is below a threshold count as faces (and for age) but
  not for gender;
* age bands 0-2, 3-9, 10-19, ..., 60-69, 70+.

Everything is computed in float64 from plain lists; no model is imported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("0-2", 0, 3),
    ("3-9", 3, 10),
    ("10-19", 10, 20),
    ("20-29", 20, 30),
    ("30-39", 30, 40),
    ("40-49", 40, 50),
    ("50-59", 50, 60),
    ("60-69", 60, 70),
    ("70+", 70, math.inf),
)
CHILD_AGE = 18  # a face perceived younger than this makes a class "with children"
DEFAULT_ABSTAIN_BELOW = 0.6  # gender confidence (probability of the chosen gender) below which we abstain


@dataclass(frozen=True)
class Face:
    """One detected face: its image and class, perceived age (years) and probability of "male"."""

    image: str
    label: str
    age: float | None
    p_male: float | None
    det_score: float | None = None
    gender_confidence: float | None = None  # defaults to max(p_male, 1 - p_male)

    def confidence(self) -> float | None:
        if self.gender_confidence is not None:
            return self.gender_confidence
        return None if self.p_male is None else max(self.p_male, 1.0 - self.p_male)

    def gender(self, abstain_below: float) -> str | None:
        """``"male"``, ``"female"``, or ``None`` (no gender output, or an abstention)."""
        conf = self.confidence()
        if self.p_male is None or conf is None or conf < abstain_below:
            return None
        return "male" if self.p_male >= 0.5 else "female"


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion; ``None`` when n = 0."""
    if n == 0:
        return None
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends, not 1 - 1e-16
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def gender_skewness(genders: Sequence[str]) -> tuple[float | None, str | None]:
    """Fisher-Pearson skewness of the genders coded male = 1, female = 0, and why it is undefined."""
    n = len(genders)
    if n < 2:
        return None, "fewer than 2 faces with a perceived gender"
    x = [1.0 if g == "male" else 0.0 for g in genders]
    mean = sum(x) / n
    m2 = sum((v - mean) ** 2 for v in x) / n
    if m2 == 0:
        return None, f"only one perceived gender ({genders[0]})"
    m3 = sum((v - mean) ** 3 for v in x) / n
    return m3 / m2**1.5, None


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def age_bands(ages: Iterable[float]) -> dict[str, int]:
    counts = {name: 0 for name, _, _ in AGE_BANDS}
    for age in ages:
        for name, lo, hi in AGE_BANDS:
            if lo <= age < hi:
                counts[name] += 1
                break
    return counts


def summarize(
    label: str, images: int, images_with_faces: int, faces: Sequence[Face], abstain_below: float
) -> dict[str, Any]:
    """The statistics of one class (or, with every face, of the whole dataset)."""
    ages = [f.age for f in faces if f.age is not None]
    genders = [f.gender(abstain_below) for f in faces]
    decided = [g for g in genders if g is not None]
    female = sum(g == "female" for g in decided)
    mean_age, std_age = _mean_std(ages)
    by_gender = {
        g: _mean_std([f.age for f, fg in zip(faces, genders, strict=True) if fg == g and f.age is not None])
        for g in ("female", "male")
    }
    skew, skew_undefined = gender_skewness(decided)
    return {
        "class": label,
        "images": images,
        "images_with_faces": images_with_faces,
        "faces": len(faces),
        "faces_per_image": len(faces) / images if images else None,
        "mean_age": mean_age,
        "std_age": std_age,
        "mean_age_female": by_gender["female"][0],
        "std_age_female": by_gender["female"][1],
        "mean_age_male": by_gender["male"][0],
        "std_age_male": by_gender["male"][1],
        "gendered_faces": len(decided),
        "abstentions": len(faces) - len(decided),
        "female_share": female / len(decided) if decided else None,
        "female_share_ci": list(ci) if (ci := wilson_interval(female, len(decided))) else None,
        "gender_skewness": skew,
        "gender_skewness_undefined": skew_undefined,
        "age_bands": (bands := age_bands(ages)),
        "age_bands_ci": {
            name: list(ci) if (ci := wilson_interval(k, len(ages))) else None for name, k in bands.items()
        },
        "children": sum(a < CHILD_AGE for a in ages),
    }


def aggregate(
    faces: Sequence[Face],
    images_per_class: dict[str, int],
    images_with_faces_per_class: dict[str, int] | None = None,
    *,
    abstain_below: float = DEFAULT_ABSTAIN_BELOW,
) -> dict[str, Any]:
    """Per-class statistics (classes sorted by name) and the overall row with the same keys."""
    by_class: dict[str, list[Face]] = {label: [] for label in images_per_class}
    for face in faces:
        by_class.setdefault(face.label, []).append(face)
    with_faces = images_with_faces_per_class
    if with_faces is None:
        with_faces = {label: len({f.image for f in fs}) for label, fs in by_class.items()}
    classes = [
        summarize(label, images_per_class.get(label, 0), with_faces.get(label, 0), by_class[label], abstain_below)
        for label in sorted(by_class)
    ]
    overall = summarize("overall", sum(images_per_class.values()), sum(with_faces.values()), list(faces), abstain_below)
    return {"classes": classes, "overall": overall, "abstain_below": abstain_below}
