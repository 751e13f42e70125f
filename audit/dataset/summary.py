"""From per-image records (``records.jsonl``) or face-record CSVs to the audit's statistics."""

from __future__ import annotations

from collections import Counter
from typing import Any

from audit.dataset.demographics import DEFAULT_ABSTAIN_BELOW, Face, aggregate


def faces_from_records(records: list[dict[str, Any]]) -> tuple[list[Face], dict[str, int], dict[str, int]]:
    """Faces of the readable images, images per class and images with faces per class."""
    faces: list[Face] = []
    images: Counter[str] = Counter()
    with_faces: Counter[str] = Counter()
    for r in records:
        if r["status"] != "ok":
            continue
        images[r["class"]] += 1
        if r["faces"]:
            with_faces[r["class"]] += 1
        for f in r["faces"]:
            faces.append(Face(r["image"], r["class"], f["age"], f["p_male"], f["det_score"], f["gender_confidence"]))
    return faces, dict(images), {label: with_faces.get(label, 0) for label in images}


def summarize_records(records: list[dict[str, Any]], abstain_below: float = DEFAULT_ABSTAIN_BELOW) -> dict[str, Any]:
    """``classes`` and ``overall`` (see :func:`audit.dataset.demographics.aggregate`), plus unreadable
    files by reason and the detection resolutions used."""
    faces, images, with_faces = faces_from_records(records)
    stats = aggregate(faces, images, with_faces, abstain_below=abstain_below)
    refused = [r for r in records if r["status"] != "ok"]
    scales = sorted({f["detect_scale"] for r in records for f in r["faces"]})
    stats["unreadable"] = {
        "count": len(refused),
        "by_reason": dict(Counter(r["status"] for r in refused)),
        "files": [{"image": r["image"], "reason": r["status"], "message": r.get("message")} for r in refused],
    }
    stats["detection_scales"] = scales
    return stats
