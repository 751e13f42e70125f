"""Card builder for ``audit-review`` results: the page beside ``review.csv`` listing what needs a person.

It names files and classes with what the model saw, never shows an image: the reviewer opens the files
themselves. Every item is in the CSV; the page lists the first ``page_items`` of each kind.
"""

from __future__ import annotations

from typing import Any

from reports.cards import base_context

KIND_TITLES = {
    "nsfw": "NSFW hits (NudeNet)",
    "minor": "Faces perceived as under 18",
    "skew": "Classes with an extreme perceived-gender skew",
    "caption": "Captions below the coherence threshold",
    "term": "Captions holding an offensive term",
    "class-term": "Class names holding an offensive term",
    "gps": "GPS-tagged images",
    "near-duplicate": "Near-duplicate clusters",
}


def build(doc: dict[str, Any]) -> dict[str, Any]:
    data = doc["data"]
    counts = data["counts"]
    sections: list[dict[str, Any]] = [
        {
            "title": "How to review",
            "paragraphs": [
                f"Open {data['sheet']} (beside this page) in a spreadsheet. For each row, look at the file or class "
                "and write confirmed or rejected in the decision column (leave it empty if not reviewed), with a "
                "note if useful. Then run genaudit audit on the same dataset with --out set to this folder, "
                f"--resume and --reviewed {data['sheet']}: the card and datasheet show your confirmed counts beside "
                "the models' counts.",
                f"Running genaudit audit review again keeps every decision already written "
                f"({data['decisions_kept']} kept this time"
                + (
                    f"; {data['decisions_stale']} for items no longer flagged moved to review-stale.csv"
                    if data["decisions_stale"]
                    else ""
                )
                + ").",
            ],
            "facts": [(KIND_TITLES[k], f"{n:,}") for k, n in counts.items()],
        }
    ]
    for kind, items in data["by_kind"].items():
        if not items:
            continue
        more = counts[kind] - len(items)
        sections.append(
            {
                "title": KIND_TITLES[kind],
                "paragraphs": [
                    f"{counts[kind]:,} item(s)"
                    + (f"; the first {len(items)} are listed, all are in the CSV" if more > 0 else "")
                    + "."
                ],
                "tables": [
                    {
                        "caption": KIND_TITLES[kind],
                        "columns": ["id", "class", "image", "what the model saw"],
                        "rows": [[it["id"], it["class"], it["image"], it["detail"]] for it in items],
                    }
                ],
            }
        )
    summary = f"{data['items']:,} item(s) of {data['dataset']} need a person's decision."
    return base_context(doc, summary=summary, sections=sections)
