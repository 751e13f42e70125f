"""Perceived attributes crossed with each other and with the NSFW check (docs/captions.md, "Cross-tables").

As the ImageNet audit (Prabhu & Birhane 2021) reports them:

- perceived age band x perceived gender, per class and overall: face counts (female, male, abstained)
  and the female share among gendered faces with a Wilson 95% interval, per band;
- the classes with faces perceived as infants (band 0-2) or children (under 18): their count and names;
- with the NSFW check on: images flagged NSFW x images with a face perceived under 18 (counts, and the
  flagged share among images with a perceived minor, with its interval), and faces in flagged images x
  perceived gender.

Sensitive cells are counts: nothing here names an image, and no thumbnail is made from them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audit.dataset.demographics import AGE_BANDS, CHILD_AGE, FaceColumns, wilson_interval


def _genders(cols: FaceColumns, abstain_below: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (female, male) of the faces with a decided gender (the audit's abstention rule)."""
    decided = ~np.isnan(cols.p_male) & (cols.confidence >= abstain_below)
    male = decided & (cols.p_male >= 0.5)
    return decided & ~male, male


def _gender_cell(female: int, male: int, abstained: int) -> dict[str, Any]:
    ci = wilson_interval(female, female + male)
    return {
        "faces": female + male + abstained,
        "female": female,
        "male": male,
        "abstained": abstained,
        "female_share": female / (female + male) if female + male else None,
        "female_share_ci": list(ci) if ci else None,
    }


def age_by_gender(cols: FaceColumns, abstain_below: float) -> dict[str, dict[str, Any]]:
    """Band -> :func:`_gender_cell` of the faces in it (faces without an age are left out)."""
    female, male = _genders(cols, abstain_below)
    out = {}
    for name, lo, hi in AGE_BANDS:
        band = (cols.age >= lo) & (cols.age < hi)  # NaN ages fall in no band
        f, m = int(np.count_nonzero(band & female)), int(np.count_nonzero(band & male))
        out[name] = _gender_cell(f, m, int(np.count_nonzero(band)) - f - m)
    return out


def crosstabs(
    cols: FaceColumns,
    positions: np.ndarray,
    labels: list[str],
    abstain_below: float,
    nsfw_positions: np.ndarray | None = None,
    nsfw_checked: int = 0,
) -> dict[str, Any]:
    """The cross-tables of the faces ``cols`` (``positions``: each face's image; ``labels[cols.label]``:
    its class) and, when the NSFW check ran (``nsfw_checked`` images), the flagged images' positions."""
    by_class = []
    infants, children = [], []
    for code, label in sorted(enumerate(labels), key=lambda kv: kv[1]):
        mine = cols.select(cols.label == code)
        by_class.append({"class": label, "bands": age_by_gender(mine, abstain_below)})
        if np.any(mine.age < AGE_BANDS[0][2]):
            infants.append(label)
        if np.any(mine.age < CHILD_AGE):
            children.append(label)
    out: dict[str, Any] = {
        "age_by_gender": {"overall": age_by_gender(cols, abstain_below), "classes": by_class},
        "classes_with_infants": {"count": len(infants), "classes": infants, "band": AGE_BANDS[0][0]},
        "classes_with_children": {"count": len(children), "classes": children, "under": CHILD_AGE},
        "nsfw": "not checked (--nsfw was off)",
    }
    if nsfw_checked:
        out["nsfw"] = nsfw_crosstabs(cols, positions, abstain_below, nsfw_positions, nsfw_checked)
    return out


def nsfw_crosstabs(
    cols: FaceColumns, positions: np.ndarray, abstain_below: float, flagged: np.ndarray | None, checked: int
) -> dict[str, Any]:
    """NSFW x perceived under-18 (images) and NSFW x perceived gender (faces)."""
    flagged = np.unique(np.asarray(flagged if flagged is not None else [], dtype=np.int64))
    minor_images = np.unique(positions[cols.age < CHILD_AGE])
    face_images = np.unique(positions)
    flagged_minor = int(np.isin(flagged, minor_images).sum())
    flagged_faces = int(np.isin(flagged, face_images).sum())
    n_flagged = len(flagged)
    minors, with_faces = len(minor_images), len(face_images)
    rows = {
        "flagged": {"with_perceived_minor": flagged_minor, "faces_all_adult_or_unaged": flagged_faces - flagged_minor,
                    "no_face": n_flagged - flagged_faces, "images": n_flagged},
        "not_flagged": {"with_perceived_minor": minors - flagged_minor,
                        "faces_all_adult_or_unaged": (with_faces - minors) - (flagged_faces - flagged_minor),
                        "no_face": (checked - n_flagged) - (with_faces - flagged_faces), "images": checked - n_flagged},
    }  # fmt: skip
    ci_minor = wilson_interval(flagged_minor, minors)
    ci_adult = wilson_interval(flagged_faces - flagged_minor, with_faces - minors)
    in_flagged = np.isin(positions, flagged)
    female, male = _genders(cols, abstain_below)
    gender = {}
    for name, mask in (("flagged", in_flagged), ("not_flagged", ~in_flagged)):
        f, m = int(np.count_nonzero(mask & female)), int(np.count_nonzero(mask & male))
        gender[name] = _gender_cell(f, m, int(np.count_nonzero(mask)) - f - m)
    return {
        "images_checked": checked,
        "by_perceived_minor": rows,
        "flagged_share_with_minor": flagged_minor / minors if minors else None,
        "flagged_share_with_minor_ci": list(ci_minor) if ci_minor else None,
        "flagged_share_adult_faces": (flagged_faces - flagged_minor) / (with_faces - minors)
        if with_faces > minors
        else None,
        "flagged_share_adult_faces_ci": list(ci_adult) if ci_adult else None,
        "faces_by_gender": gender,
    }
