"""Does the detector wrongly flag some people's real photos more than others'?

The false-positive rate on REAL images, broken down by the perceived gender and perceived age band of
the faces in them, with Wilson 95% intervals. Faces come from the dataset audit's face pipeline, either
as precomputed face records (``image, class, age, gender`` CSV, see :mod:`audit.dataset.face_records`)
or from running a face backend. An image counts once in every group one of its faces falls in (a photo
of a woman and a man counts for both); faces whose gender confidence is below the abstention threshold
count for age only. Perceived gender and age are model outputs, not facts: groups are "perceived".
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audit.dataset.demographics import AGE_BANDS, DEFAULT_ABSTAIN_BELOW, Face, wilson_interval


def _band(age: float) -> str | None:
    return next((name for name, lo, hi in AGE_BANDS if lo <= age < hi), None)


def faces_from_backend(images: Iterable[tuple[str, Any]] | dict[str, Any], backend: str) -> list[Face]:
    """Run the dataset audit's face backend on real images ((name, RGB uint8) pairs, decoded one at a time
    when given lazily, or a name -> image dict): one Face per face found."""
    from audit.dataset.backends import get_analyzer

    analyzer = get_analyzer(backend)
    pairs = images.items() if isinstance(images, dict) else images
    return [
        Face(image=name, label="real", age=f.age, p_male=f.p_male, det_score=f.det_score,
             gender_confidence=f.gender_confidence)
        for name, image in pairs
        for f in analyzer.analyze(image)
    ]  # fmt: skip


def fpr_by_group(
    flagged_real: dict[str, bool],
    face_records: str | Path | list[Face],
    abstain_below: float = DEFAULT_ABSTAIN_BELOW,
) -> dict[str, Any]:
    """FPR per perceived group for real images (name -> flagged). Faces come from a face-records CSV,
    matched by image name (the record's ``image`` equals the name or ends it, so relative paths in either
    place match), or are given (:func:`faces_from_backend`)."""
    from audit.dataset.face_records import read_face_records

    faces = face_records if isinstance(face_records, list) else read_face_records(face_records).faces
    groups: dict[str, set[str]] = {}
    names = list(flagged_real)

    def match(image: str) -> str | None:
        if image in flagged_real:
            return image
        return next((n for n in names if n.endswith("/" + image) or n.endswith(image)), None)

    matched: set[str] = set()
    for face in faces:
        name = match(face.image)
        if name is None:
            continue
        matched.add(name)
        confidence = face.confidence()
        if face.p_male is not None and confidence is not None and confidence >= abstain_below:
            groups.setdefault("perceived " + ("male" if face.p_male >= 0.5 else "female"), set()).add(name)
        if face.age is not None and (band := _band(face.age)):
            groups.setdefault(f"perceived age {band}", set()).add(name)
    rows = []
    order = ["perceived female", "perceived male"] + [f"perceived age {name}" for name, _, _ in AGE_BANDS]
    for group in (g for g in order if g in groups):
        members = groups[group]
        fp = sum(flagged_real[n] for n in members)
        ci = wilson_interval(fp, len(members))
        rows.append({"group": group, "real_images": len(members), "false_positives": fp,
                     "fpr": fp / len(members), "fpr_ci": list(ci) if ci else None})  # fmt: skip
    overall = sum(flagged_real.values())
    ci = wilson_interval(overall, len(flagged_real))
    return {
        "groups": rows,
        "overall": {"real_images": len(flagged_real), "false_positives": overall,
                    "fpr": overall / len(flagged_real) if flagged_real else None, "fpr_ci": list(ci) if ci else None},
        "real_images_with_faces": len(matched),
        "abstain_below": abstain_below,
        "faces_from": "given faces" if isinstance(face_records, list) else str(face_records),
    }  # fmt: skip
