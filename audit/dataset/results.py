"""The audit's results document (kind ``dataset-audit``): statistics, flags, limitations, provenance."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from audit.provenance import provenance

EXTREME_SKEW = 2.0  # |xi| >= 2: a male (or female) share of about 83% or more
EXTREME_MIN_FACES = 20  # ... with at least this many gendered faces, so small classes are not flagged

CAVEATS = [
    "Perceived gender and age are the outputs of one model looking at a face; they are not a person's "
    "gender or age, and nobody was asked.",
    "The gender model is binary: it cannot represent non-binary people, and it assigns everyone to one of "
    "two classes (Keyes 2018).",
    "Error rates of face analysis differ between groups: commercial gender classifiers erred up to 34.7% "
    "on darker-skinned women and 0.8% on lighter-skinned men (Buolamwini & Gebru 2018, Gender Shades). "
    "Age estimation is less accurate for women.",
    "Faces the detector misses (small, profile, occluded, low light) are not counted; the detection "
    "resolution used is recorded below.",
]


def flags(classes: list[dict[str, Any]]) -> list[str]:
    out = []
    for c in classes:
        if c["children"]:
            out.append(f"class {c['class']!r}: {c['children']} face(s) perceived as younger than 18")
        skew = c["gender_skewness"]
        if skew is not None and abs(skew) >= EXTREME_SKEW and c["gendered_faces"] >= EXTREME_MIN_FACES:
            side = "male" if skew < 0 else "female"
            out.append(
                f"class {c['class']!r}: extreme perceived-gender skew {skew:.2f} towards {side} "
                f"({c['gendered_faces']} faces)"
            )
    return out


def known_face_check(records: list[dict[str, Any]], known: dict[str, list[str]]) -> dict[str, Any]:
    """Compare perceived genders with documented ones, image by image (counts per gender, so no face
    has to be matched to a name)."""
    rows = []
    for r in records:
        if r["image"] not in known or r["status"] != "ok":
            continue
        perceived = Counter("male" if f["p_male"] >= 0.5 else "female" for f in r["faces"])
        documented = Counter(known[r["image"]])
        missed = sum(documented.values()) - len(r["faces"])
        wrong = sum((documented - perceived).values()) - max(missed, 0)
        rows.append(
            {
                "image": r["image"],
                "documented": dict(documented),
                "perceived": dict(perceived),
                "faces_found": len(r["faces"]),
                "missed": max(missed, 0),
                "misgendered": max(wrong, 0),
            }
        )
    return {
        "images": rows,
        "misgendered": sum(r["misgendered"] for r in rows),
        "missed": sum(r["missed"] for r in rows),
    }


def licence_limitations(analyzer_info: dict[str, Any]) -> list[str]:
    """A warning for each model whose licence restricts use (InsightFace packs: non-commercial research)."""
    return [
        f"Licence: {lic}. Check that licence before using these results commercially."
        for lic in analyzer_info.get("licences", [])
        if "non-commercial" in lic
    ]


def observed_limitations(check: dict[str, Any]) -> list[str]:
    notes = []
    for r in check.get("images", []):
        if r["misgendered"]:
            notes.append(
                f"Observed: in {r['image']} (documented {r['documented']}) the model perceived {r['perceived']}: "
                f"{r['misgendered']} face(s) misgendered."
            )
        if r["missed"]:
            notes.append(f"Observed: in {r['image']} the detector missed {r['missed']} documented face(s).")
    return notes


def build_audit_results(
    spec: str, stats: dict[str, Any], analyzer_info: dict[str, Any], records: list[dict[str, Any]] | None
) -> dict[str, Any]:
    from audit.dataset.builtin import KNOWN_GENDERS

    check = known_face_check(records, KNOWN_GENDERS) if records is not None and spec == "builtin:faces-demo" else {}
    overall = stats["overall"]
    headline = [
        {"label": "images", "value": overall["images"], "format": "int"},
        {"label": "faces found", "value": overall["faces"], "format": "int"},
        {"label": "perceived female share", "value": overall["female_share"], "format": "pct"},
        {"label": "gender skewness (xi)", "value": overall["gender_skewness"], "format": "float2"},
    ]
    return {
        "schema": "genaudit.results/1",
        "kind": "dataset-audit",
        "id": "dataset-audit-" + "".join(ch if ch.isalnum() else "-" for ch in spec.lower()).strip("-")[:60],
        "title": f"Dataset audit: {spec}",
        "headline": headline,
        "provenance": provenance(
            command=" ".join(["genaudit", *sys.argv[1:]]) if sys.argv and "genaudit" in sys.argv[0] else "run_audit",
            config={"dataset": spec, "abstain_below": stats["abstain_below"], **analyzer_info},
            models=[
                {"id": analyzer_info.get("model", analyzer_info.get("backend")), "sha256": analyzer_info.get("sha256")}
            ],
            preprocessing={
                "detection_scales": stats["detection_scales"],
                "min_detect_side": analyzer_info.get("min_detect_side"),
            },
        ),
        "data": {
            "dataset": spec,
            "analyzer": analyzer_info,
            "classes": stats["classes"],
            "overall": overall,
            "abstain_below": stats["abstain_below"],
            "unreadable": stats["unreadable"],
            "detection_scales": stats["detection_scales"],
            "flags": flags(stats["classes"]),
            "known_faces": check,
            "limitations": CAVEATS + licence_limitations(analyzer_info) + observed_limitations(check),
        },
    }
