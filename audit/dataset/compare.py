"""Two face backends on the same images: which faces both found, and how often they disagree.

Faces are matched per image by box overlap (greedy, highest IoU first, IoU >= :data:`MATCH_IOU`).
Detection disagreement is the share of faces found by only one backend; gender disagreement the share
of matched faces (both with a perceived gender) given different genders, with a Wilson interval; age
disagreement the mean absolute difference of matched perceived ages.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from audit.dataset.demographics import DEFAULT_ABSTAIN_BELOW, wilson_interval

MATCH_IOU = 0.5


def iou(a: list[int], b: list[int]) -> float:
    """Intersection over union of two inclusive [left, top, right, bottom] boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def match_faces(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[tuple[int, int]]:
    candidates = sorted(
        ((iou(fa["box"], fb["box"]), i, j) for i, fa in enumerate(a) for j, fb in enumerate(b)), reverse=True
    )
    used_a, used_b, pairs = set(), set(), []
    for overlap, i, j in candidates:
        if overlap < MATCH_IOU:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    return pairs


def _gender(face: dict[str, Any], abstain_below: float) -> str | None:
    if face["gender_confidence"] < abstain_below:
        return None
    return "male" if face["p_male"] >= 0.5 else "female"


def disagreement(
    records_a: Iterable[dict[str, Any]],
    records_b: Iterable[dict[str, Any]],
    abstain_below: float = DEFAULT_ABSTAIN_BELOW,
) -> dict[str, Any]:
    """Records of the same images by two backends (any order, either may be a stream) paired by their
    source position (``index``; by name for records without one). The second backend's faces are held,
    only the fields compared; the first's are streamed."""
    from audit.dataset.record_store import record_key

    keep = ("box", "p_male", "age", "gender_confidence")
    faces_b = {record_key(r): [{k: f[k] for k in keep} for f in r["faces"]] for r in records_b if r["status"] == "ok"}
    matched = only_a = only_b = gendered = differ = 0
    age_diffs: list[float] = []
    for ra in records_a:
        fbs = faces_b.get(record_key(ra))
        if ra["status"] != "ok" or fbs is None:
            continue
        pairs = match_faces(ra["faces"], fbs)
        matched += len(pairs)
        only_a += len(ra["faces"]) - len(pairs)
        only_b += len(fbs) - len(pairs)
        for i, j in pairs:
            fa, fb = ra["faces"][i], fbs[j]
            ga, gb = _gender(fa, abstain_below), _gender(fb, abstain_below)
            if ga and gb:
                gendered += 1
                differ += ga != gb
            age_diffs.append(abs(fa["age"] - fb["age"]))
    found = matched + only_a + only_b
    return {
        "faces_matched": matched,
        "faces_only_first": only_a,
        "faces_only_second": only_b,
        "detection_disagreement": (only_a + only_b) / found if found else None,
        "gender_compared": gendered,
        "gender_disagreement": differ / gendered if gendered else None,
        "gender_disagreement_ci": list(ci) if (ci := wilson_interval(differ, gendered)) else None,
        "mean_abs_age_difference": sum(age_diffs) / len(age_diffs) if age_diffs else None,
        "match_iou": MATCH_IOU,
    }
