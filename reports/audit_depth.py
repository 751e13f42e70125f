"""The audit card's in-depth sections: captions, offensive terms, cross-tables and the human review.

Every number comes from the results JSON (``data.captions``, ``data.offensive_terms``, ``data.crosstabs``,
``data.review``). Sensitive cells (NSFW, perceived minors) are counts: no image of theirs is shown.
"""

from __future__ import annotations

from typing import Any

from reports import figures
from reports.audit_card import _pct

MAX_ROWS = 40


def _ci(ci: list[float] | None) -> str:
    return f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""


def _caption_figure(caps: dict[str, Any]) -> str | None:
    """Per class (and overall): the caption score's 5-25-50-75-95 quantiles, with the threshold."""
    rows = [c for c in [*caps["classes"][:MAX_ROWS], caps["overall"]] if c["quantiles"]]
    if not rows:
        return None
    plt = figures._pyplot()
    fig, ax = plt.subplots(figsize=(5.4, 0.32 * len(rows) + 1.3))
    ys = list(range(len(rows)))[::-1]
    for y, c in zip(ys, rows, strict=True):
        q = c["quantiles"]
        ax.plot([q["q5"], q["q95"]], [y, y], color="#4a78b5", lw=1)
        ax.plot([q["q25"], q["q75"]], [y, y], color="#4a78b5", lw=5, solid_capstyle="butt")
        ax.plot([q["q50"]], [y], "o", color="white", markeredgecolor="#1d3557", markersize=4)
    ax.axvline(caps["threshold"], color="#b5654a", ls="--", lw=1, label=f"threshold {caps['threshold']:g}")
    ax.set_yticks(ys, labels=[f"{c['class']} (n={c['scored']})" for c in rows], fontsize=7)
    ax.set_xlabel("caption CLIP-score: 5-95% (line), 25-75% (bar), median (dot)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return figures.svg_data_uri(fig)


def captions_section(data: dict[str, Any]) -> dict[str, Any] | None:
    caps = data.get("captions")
    if caps is None:
        return None
    if isinstance(caps, str):
        return {"title": "Captions", "paragraphs": [f"Captions: {caps}."]}
    o, model = caps["overall"], caps["model"] or {}
    rows = [
        [
            c["class"],
            c["captions"],
            c["scored"],
            f"{c['mean']:.1f}" if c["mean"] is not None else "n/a",
            f"{c['below_threshold']} ({_pct(c['below_share'])}{_ci(c['below_share_ci'])})",
        ]
        for c in [*caps["classes"][:MAX_ROWS], o]
    ]
    section: dict[str, Any] = {
        "title": "Captions",
        "paragraphs": [
            f"{o['scored']:,} of {o['captions']:,} captions scored with {model.get('caption_model', 'n/a')} "
            f"({model.get('id', '')}); {o['below_threshold']:,} ({_pct(o['below_share'])}{_ci(o['below_share_ci'])}, "
            f"Wilson 95%) score below {caps['threshold']:g}, the threshold for an incoherent caption.",
            "The caption score is the CLIP-score of the image and its own caption: it says how well one CLIP model "
            "thinks the text describes the picture. It cannot tell whether a caption is true, fair or harmful, it "
            "inherits the model's blind spots and biases, and it is low for captions outside what the model "
            "learnt (the embedded digits CLIP knows only captions of handwritten digits). A low score is a "
            "pointer for review, not a verdict.",
        ],
        "figures": [],
        "tables": [
            {
                "caption": "Caption scores per class, then overall",
                "columns": ["class", "captions", "scored", "mean score", "below threshold [95% CI]"],
                "rows": rows,
            }
        ],
    }
    src = _caption_figure(caps)
    if src:
        section["figures"].append({"src": src, "alt": "caption score quantiles per class with the threshold"})
    if caps.get("least_coherent_png"):
        section["figures"].append(
            {
                "src": "data:image/png;base64," + caps["least_coherent_png"],
                "chart": False,
                "alt": "the least coherent captioned images",
                "caption": "least coherent: "
                + "; ".join(
                    f"{r['image']} ({r['caption_score']:.1f}: {r['caption'][:60]})" for r in caps["least_coherent"][:8]
                ),
            }
        )
    return section


def terms_section(data: dict[str, Any]) -> dict[str, Any] | None:
    terms = data.get("offensive_terms")
    if not isinstance(terms, dict):
        return None
    sources = "; ".join(f"{s['source']} ({s['licence']})" for s in terms["list"]["sources"])
    rows = [
        [
            c["class"],
            c["captions"],
            f"{c['captions_with_terms']} ({_pct(c['share'])}{_ci(c['share_ci'])})",
            ", ".join(f"{t} x{n}" for t, n in list(c["terms"].items())[:8]),
        ]
        for c in terms["by_class"]
        if c["captions_with_terms"]
    ][:MAX_ROWS]
    flagged = terms["classes_flagged"]
    return {
        "title": "Offensive terms in labels and captions",
        "paragraphs": [
            f"{len(flagged)} class name(s) and {terms['captions_with_terms']:,} of {terms['captions_checked']:,} "
            f"caption(s) hold a term of the list ({terms['list']['terms']:,} terms: {sources}; "
            f"{terms['list']['matching']}). Images of a flagged class are never shown in this card, nor are images "
            "whose caption holds a term.",
            "A word list finds words, not meaning: it misses slurs it does not list, offensive phrases of ordinary "
            "words and other languages, and flags quoted or reclaimed uses. Add terms with --offensive-terms FILE.",
        ],
        "notes": [f"class {c['class']!r}: {', '.join(c['terms'])}" for c in flagged[:MAX_ROWS]],
        "tables": [
            {
                "caption": "Classes whose captions hold terms",
                "rows": rows,
                "columns": ["class", "captions", "with terms [95% CI]", "terms (count)"],
            }
        ]
        if rows
        else [],
    }


def _band_rows(bands: dict[str, dict[str, Any]]) -> list[list[Any]]:
    return [
        [name, c["faces"], c["female"], c["male"], c["abstained"], _pct(c["female_share"]) + _ci(c["female_share_ci"])]
        for name, c in bands.items()
        if c["faces"]
    ]


def crosstabs_section(data: dict[str, Any]) -> dict[str, Any] | None:
    tabs = data.get("crosstabs")
    if not tabs:
        return None
    kids, infants = tabs["classes_with_children"], tabs["classes_with_infants"]
    paragraphs = [
        f"{kids['count']} class(es) have a face perceived as under {kids['under']}"
        + (f" ({', '.join(kids['classes'][:MAX_ROWS])})" if kids["classes"] else "")
        + f"; {infants['count']} have one perceived as {infants['band']} years old. Perceived ages are model "
        "outputs: the counts say where to look, not who is a child.",
    ]
    tables = [
        {
            "caption": "Perceived age band x perceived gender, all faces",
            "columns": ["age band", "faces", "female", "male", "abstained", "female share [95% CI]"],
            "rows": _band_rows(tabs["age_by_gender"]["overall"]),
        }
    ]
    if not tables[0]["rows"]:  # no face with an age: the sentence above says 0, no empty table
        tables = []
    per_class = [
        [c["class"], *row] for c in tabs["age_by_gender"]["classes"][:MAX_ROWS] for row in _band_rows(c["bands"])
    ]
    if per_class:
        tables.append(
            {
                "caption": "Perceived age band x perceived gender per class (JSON twin: every class)",
                "columns": ["class", "age band", "faces", "female", "male", "abstained", "female share [95% CI]"],
                "rows": per_class,
            }
        )
    nsfw = tabs["nsfw"]
    if isinstance(nsfw, str):
        paragraphs.append(f"NSFW cross-tables: {nsfw}.")
    else:
        m = nsfw["by_perceived_minor"]
        tables.append(
            {
                "caption": "Images: NSFW flag x perceived under-18 (counts only: none of these images is shown)",
                "columns": [
                    "",
                    "with a face perceived under 18",
                    "faces, none perceived under 18",
                    "no face",
                    "images",
                ],
                "rows": [
                    [
                        k.replace("_", " "),
                        v["with_perceived_minor"],
                        v["faces_all_adult_or_unaged"],
                        v["no_face"],
                        v["images"],
                    ]
                    for k, v in m.items()
                ],
            }
        )
        g = nsfw["faces_by_gender"]
        tables.append(
            {
                "caption": "Faces: NSFW flag of their image x perceived gender",
                "columns": ["", "faces", "female", "male", "abstained", "female share [95% CI]"],
                "rows": [
                    [
                        k.replace("_", " "),
                        c["faces"],
                        c["female"],
                        c["male"],
                        c["abstained"],
                        _pct(c["female_share"]) + _ci(c["female_share_ci"]),
                    ]
                    for k, c in g.items()
                ],
            }
        )
        paragraphs.append(
            f"Of the images with a face perceived under 18, {_pct(nsfw['flagged_share_with_minor'])}"
            f"{_ci(nsfw['flagged_share_with_minor_ci'])} are flagged NSFW; of those whose faces are all perceived "
            f"18 or older, {_pct(nsfw['flagged_share_adult_faces'])}{_ci(nsfw['flagged_share_adult_faces_ci'])}."
        )
    return {"title": "Cross-tables", "paragraphs": paragraphs, "tables": tables}


def review_section(data: dict[str, Any]) -> dict[str, Any] | None:
    review = data.get("review")
    if not review:
        return None
    rows = [
        [k, c["flagged"], c["confirmed"], c["rejected"], c["unreviewed"]]
        for k, c in review["kinds"].items()
        if c["flagged"]
    ]
    per_class = [
        [label, *(f"{per[k]['flagged']} / {per[k]['confirmed']}" if k in per else "" for k in ("nsfw", "minor"))]
        for label, per in review["classes"].items()
        if "nsfw" in per or "minor" in per
    ][:MAX_ROWS]
    tables = [
        {
            "caption": "Flagged by the models, and what the owner decided",
            "columns": ["kind", "flagged by the model", "confirmed", "rejected", "not reviewed"],
            "rows": rows,
        }
    ]
    if per_class:
        tables.append(
            {
                "caption": "Per class: flagged by the model / confirmed by the owner",
                "columns": ["class", "NSFW", "perceived minors"],
                "rows": per_class,
            }
        )
    return {
        "title": "Human review",
        "paragraphs": [
            f"{review['decisions']:,} decision(s) from {review['source']} folded in: confirmed counts "
            "beside the models' counts, as the ImageNet audit reported both (Prabhu & Birhane 2021)."
        ],
        "tables": tables,
    }


def sections(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The in-depth sections that apply to this audit, in reading order."""
    out = [s(data) for s in (review_section, crosstabs_section, captions_section, terms_section)]
    return [s for s in out if s]
