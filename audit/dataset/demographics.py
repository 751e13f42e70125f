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

Everything is computed in float64 from faces as columns (:class:`FaceColumns`); no model is imported
here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

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
    return skewness_from_counts(sum(g == "male" for g in genders), len(genders))


def skewness_from_counts(males: int, n: int) -> tuple[float | None, str | None]:
    """:func:`gender_skewness` from the counts alone: for binary values with male share p the central
    moments are m2 = p (1 - p) and m3 = p (1 - p) (1 - 2 p), so g1 = (1 - 2 p) / sqrt(p (1 - p))."""
    if n < 2:
        return None, "fewer than 2 faces with a perceived gender"
    if males in (0, n):
        return None, f"only one perceived gender ({'male' if males else 'female'})"
    p = males / n
    return (1.0 - 2.0 * p) / math.sqrt(p * (1.0 - p)), None


def _mean_std(values: np.ndarray) -> tuple[float | None, float | None]:
    if not len(values):
        return None, None
    mean = float(values.mean())
    return mean, float(np.sqrt(np.mean((values - mean) ** 2)))


def age_bands(ages: Iterable[float]) -> dict[str, int]:
    values = np.fromiter(ages, dtype=np.float64)
    return {name: int(np.count_nonzero((values >= lo) & (values < hi))) for name, lo, hi in AGE_BANDS}


@dataclass
class FaceColumns:
    """Faces as columns (what a million faces cost: 28 bytes each, not a Python object each). ``age``,
    ``p_male`` and ``confidence`` are NaN where the model gave no value; ``label`` indexes ``labels``."""

    label: np.ndarray
    age: np.ndarray
    p_male: np.ndarray
    confidence: np.ndarray

    @classmethod
    def from_faces(cls, faces: Sequence[Face], labels: Sequence[str]) -> FaceColumns:
        code = {name: i for i, name in enumerate(labels)}
        nan = float("nan")
        return cls(
            label=np.array([code[f.label] for f in faces], dtype=np.int32),
            age=np.array([nan if f.age is None else f.age for f in faces], dtype=np.float64),
            p_male=np.array([nan if f.p_male is None else f.p_male for f in faces], dtype=np.float64),
            confidence=np.array([nan if (c := f.confidence()) is None else c for f in faces], dtype=np.float64),
        )

    def select(self, mask: np.ndarray) -> FaceColumns:
        return FaceColumns(self.label[mask], self.age[mask], self.p_male[mask], self.confidence[mask])


def summarize(
    label: str, images: int, images_with_faces: int, faces: Sequence[Face] | FaceColumns, abstain_below: float
) -> dict[str, Any]:
    """The statistics of one class (or, with every face, of the whole dataset)."""
    cols = faces if isinstance(faces, FaceColumns) else FaceColumns.from_faces(faces, sorted({f.label for f in faces}))
    n_faces = len(cols.age)
    has_age = ~np.isnan(cols.age)
    ages = cols.age[has_age]
    # a gender is decided where the model gave one with enough confidence (NaN compares False: undecided)
    decided = ~np.isnan(cols.p_male) & (cols.confidence >= abstain_below)
    male = decided & (cols.p_male >= 0.5)
    female = decided & ~male
    n_decided, n_female = int(np.count_nonzero(decided)), int(np.count_nonzero(female))
    mean_age, std_age = _mean_std(ages)
    by_gender = {g: _mean_std(cols.age[mask & has_age]) for g, mask in (("female", female), ("male", male))}
    skew, skew_undefined = skewness_from_counts(n_decided - n_female, n_decided)
    return {
        "class": label,
        "images": images,
        "images_with_faces": images_with_faces,
        "faces": n_faces,
        "faces_per_image": n_faces / images if images else None,
        "mean_age": mean_age,
        "std_age": std_age,
        "mean_age_female": by_gender["female"][0],
        "std_age_female": by_gender["female"][1],
        "mean_age_male": by_gender["male"][0],
        "std_age_male": by_gender["male"][1],
        "gendered_faces": n_decided,
        "abstentions": n_faces - n_decided,
        "female_share": n_female / n_decided if n_decided else None,
        "female_share_ci": list(ci) if (ci := wilson_interval(n_female, n_decided)) else None,
        "gender_skewness": skew,
        "gender_skewness_undefined": skew_undefined,
        "age_bands": (bands := age_bands(ages)),
        "age_bands_ci": {
            name: list(ci) if (ci := wilson_interval(k, len(ages))) else None for name, k in bands.items()
        },
        "children": int(np.count_nonzero(ages < CHILD_AGE)),
    }


def aggregate(
    faces: Sequence[Face],
    images_per_class: dict[str, int],
    images_with_faces_per_class: dict[str, int] | None = None,
    *,
    abstain_below: float = DEFAULT_ABSTAIN_BELOW,
) -> dict[str, Any]:
    """Per-class statistics (classes sorted by name) and the overall row with the same keys."""
    labels = sorted({*images_per_class, *(f.label for f in faces)})
    with_faces = images_with_faces_per_class
    if with_faces is None:
        images_of: dict[str, set[str]] = {label: set() for label in labels}
        for face in faces:
            images_of[face.label].add(face.image)
        with_faces = {label: len(names) for label, names in images_of.items()}
    return aggregate_columns(
        FaceColumns.from_faces(faces, labels), labels, images_per_class, with_faces, abstain_below=abstain_below
    )


def aggregate_columns(
    faces: FaceColumns,
    labels: Sequence[str],
    images_per_class: dict[str, int],
    images_with_faces_per_class: dict[str, int],
    *,
    abstain_below: float = DEFAULT_ABSTAIN_BELOW,
) -> dict[str, Any]:
    """:func:`aggregate` over faces as columns (``faces.label`` indexes ``labels``): what the streamed
    audit calls, one class at a time, so no per-face object is ever built."""
    with_faces = images_with_faces_per_class
    classes = []
    for code, label in sorted(enumerate(labels), key=lambda kv: kv[1]):
        mine = faces.select(faces.label == code)
        classes.append(summarize(label, images_per_class.get(label, 0), with_faces.get(label, 0), mine, abstain_below))
    overall = summarize("overall", sum(images_per_class.values()), sum(with_faces.values()), faces, abstain_below)
    return {"classes": classes, "overall": overall, "abstain_below": abstain_below}
