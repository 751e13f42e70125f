"""Card builder for ``dataset-audit`` results: who appears, perceived age and gender per class."""

from __future__ import annotations

from typing import Any

from reports import figures
from reports.cards import base_context

MAX_CLASSES_SHOWN = 40  # per-class rows and figure entries in a card; every class stays in the JSON twin
MAX_FLAGS_SHOWN = 30


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _num(v: float | None, fmt: str = "{:.1f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def _row(c: dict[str, Any]) -> list[Any]:
    ci = c["female_share_ci"]
    share = _pct(c["female_share"]) + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")
    skew = _num(c["gender_skewness"], "{:.2f}") if c["gender_skewness"] is not None else "undefined"
    return [
        c["class"],
        c["images"],
        c["images_with_faces"],
        c["faces"],
        _num(c["faces_per_image"], "{:.2f}"),
        f"{_num(c['mean_age'])} (sd {_num(c['std_age'])})",
        _num(c["mean_age_female"]),
        _num(c["mean_age_male"]),
        share,
        skew,
        c["abstentions"],
        c["children"],
    ]


def shown_classes(classes: list[dict[str, Any]], limit: int = MAX_CLASSES_SHOWN) -> tuple[list[dict[str, Any]], str]:
    """The classes a card lists by name: all of them up to ``limit``, else the ``limit / 2`` with the most
    faces and the ``limit / 2`` with the fewest (in name order), with a sentence saying so. A dataset of
    thousands of classes still gets a card within the size budget; the full table is in the JSON twin and
    the audit's ``classes.csv``."""
    if len(classes) <= limit:
        return classes, ""
    by_faces = sorted(classes, key=lambda c: (-c["faces"], c["class"]))
    keep = {id(c) for c in by_faces[: limit // 2] + by_faces[-(limit // 2) :]}
    shown = [c for c in classes if id(c) in keep]
    note = (
        f"The dataset has {len(classes):,} classes: the per-class table and figures show the {limit // 2} with the "
        f"most faces and the {limit // 2} with the fewest ({len(shown)} in all); the distributions below cover "
        "every class, and every class's row is in the JSON twin (data.classes) and in classes.csv beside the "
        "audit's results."
    )
    return shown, note


def _first(items: Any, limit: int = MAX_CLASSES_SHOWN) -> str:
    """The first ``limit`` items joined, and how many more there are."""
    items = list(items)
    more = f", ... and {len(items) - limit:,} more (JSON twin)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _near_text(near: dict[str, Any]) -> str:
    """Near-duplicate clusters in words (results written before clusters existed have pairs only)."""
    text = f"{near['pairs']:,} pair(s) within {near['max_bits']} bits of a 64-bit dHash"
    if "clusters" in near:
        text += f", in {near['clusters']:,} cluster(s) of {near['images_in_clusters']:,} images"
        largest = near["examples"][0] if near["examples"] else None
        if largest:
            text += f" (largest: {largest['size']:,}, e.g. {', '.join(largest['images'][:3])})"
    return text


def _class_distributions(classes: list[dict[str, Any]]) -> str | None:
    """Histograms over every class: perceived female share and mean perceived age (for many classes)."""
    shares = [c["female_share"] for c in classes if c["female_share"] is not None]
    ages = [c["mean_age"] for c in classes if c["mean_age"] is not None]
    if not shares and not ages:
        return None
    plt = figures._pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 2.6))
    left.hist(shares, bins=20, range=(0, 1), color="#4a78b5")
    left.set_xlabel("perceived female share")
    left.set_ylabel("classes")
    left.set_title(f"female share over {len(shares):,} classes")
    right.hist(ages, bins=20, color="#b5654a")
    right.set_xlabel("mean perceived age")
    right.set_title(f"mean age over {len(ages):,} classes")
    for ax in (left, right):
        ax.grid(axis="y", alpha=0.3)
    return figures.svg_data_uri(fig)


def _scatter(classes: list[dict[str, Any]]) -> str | None:
    pts = [c for c in classes if c["mean_age"] is not None]
    if not pts:
        return None
    plt = figures._pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    skew = [c["gender_skewness"] if c["gender_skewness"] is not None else 0.0 for c in pts]
    sc = ax.scatter(
        [c["faces_per_image"] for c in pts],
        [c["mean_age"] for c in pts],
        c=skew,
        cmap="coolwarm",
        vmin=-3,
        vmax=3,
        s=[20 + 4 * min(c["faces"], 100) for c in pts],
        edgecolors="black",
        linewidths=0.5,
    )
    for c in pts:
        ax.annotate(
            str(c["class"]),
            (c["faces_per_image"], c["mean_age"]),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    fig.colorbar(sc, ax=ax, label="gender skewness xi (blue: male-dominated)")
    ax.set_xlabel("faces per image (eta)")
    ax.set_ylabel("mean perceived age (alpha)")
    ax.set_title("classes: faces per image, age, skew (size: faces)")
    ax.grid(alpha=0.3)
    return figures.svg_data_uri(fig)


def _age_bands(overall: dict[str, Any]) -> str | None:
    """Share of faces in each perceived age band, with the Wilson 95% intervals the audit computed."""
    bands = overall["age_bands"]
    total = sum(bands.values())
    if not total:
        return None
    plt = figures._pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 2.8))
    names = list(bands)
    shares = [bands[b] / total for b in names]
    cis = [overall["age_bands_ci"][b] for b in names]
    err = [
        [s - ci[0] for s, ci in zip(shares, cis, strict=True)],
        [ci[1] - s for s, ci in zip(shares, cis, strict=True)],
    ]
    ax.bar(range(len(names)), shares, color="#4a78b5", yerr=err, capsize=3, ecolor="#333333")
    ax.set_xticks(range(len(names)), labels=names)
    ax.set_ylabel("share of faces")
    ax.set_title(f"perceived age bands ({total} faces), Wilson 95% intervals")
    ax.grid(axis="y", alpha=0.3)
    return figures.svg_data_uri(fig)


def _female_share(classes: list[dict[str, Any]], overall: dict[str, Any]) -> str | None:
    rows = [c for c in [*classes, overall] if c["female_share"] is not None]
    if not rows:
        return None
    plt = figures._pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 0.35 * len(rows) + 1.2))
    ys = list(range(len(rows)))[::-1]
    for y, c in zip(ys, rows, strict=True):
        lo, hi = c["female_share_ci"]
        ax.errorbar(
            [c["female_share"]],
            [y],
            xerr=[[c["female_share"] - lo], [hi - c["female_share"]]],
            fmt="o",
            capsize=3,
            color="#4a78b5",
        )
    ax.axvline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_yticks(ys, labels=[f"{c['class']} (n={c['gendered_faces']})" for c in rows], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("perceived female share, Wilson 95% interval")
    ax.set_title("perceived gender by class")
    ax.grid(axis="x", alpha=0.3)
    return figures.svg_data_uri(fig)


def _comparison_section(data: dict[str, Any]) -> dict[str, Any]:
    comp = data["comparison"]
    d = comp["disagreement"]
    first, second = data["analyzer"]["backend"], comp["backend"]
    other = {c["class"]: c for c in comp["classes"]}
    rows = []
    for c in [*shown_classes(data["classes"])[0], data["overall"]]:
        o = comp["overall"] if c["class"] == "overall" else other.get(c["class"])
        if o is None:
            continue
        rows.append(
            [
                c["class"],
                c["faces"],
                o["faces"],
                _pct(c["female_share"]),
                _pct(o["female_share"]),
                _num(c["mean_age"]),
                _num(o["mean_age"]),
            ]
        )
    ci = d["gender_disagreement_ci"]
    return {
        "title": "Two backends on the same images",
        "paragraphs": [
            f"{first} and {second} disagree on which faces exist in {_pct(d['detection_disagreement'])} of the faces "
            f"either found ({d['faces_only_first']} only by {first}, {d['faces_only_second']} only by {second}, "
            f"{d['faces_matched']} by both at IoU >= {d['match_iou']}). On the faces both found, perceived gender "
            f"differs for {_pct(d['gender_disagreement'])}"
            + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")
            + f" of {d['gender_compared']}, and perceived age by {_num(d['mean_abs_age_difference'])} years on "
            "average. The statistics of this card depend on the detector as much as on the dataset."
        ],
        "tables": [
            {
                "caption": f"{first} vs {second}",
                "columns": [
                    "class",
                    f"faces ({first})",
                    f"faces ({second})",
                    f"female share ({first})",
                    f"female share ({second})",
                    f"mean age ({first})",
                    f"mean age ({second})",
                ],
                "rows": rows,
            }
        ],
    }


def _nsfw_text(nsfw: dict[str, Any] | str) -> str:
    if isinstance(nsfw, str):
        return nsfw
    ci = nsfw["flagged_share_ci"]
    by_class = ", ".join(f"{k}: {v}" for k, v in nsfw["flagged_by_class"].items())
    return (
        f"{nsfw['flagged']} of {nsfw['checked']} images flagged explicit"
        + (f" (95% CI {_pct(ci[0])} to {_pct(ci[1])})" if ci else "")
        + (f"; by class {by_class}" if by_class else "")
        + f"; flagged images are not shown here. {nsfw['model']}."
    )


def _datasheet_section(sheet: dict[str, Any]) -> dict[str, Any]:
    comp = sheet.get("measured_composition")
    facts = []
    if comp:
        bal = comp["class_balance"]
        facts = [
            ("instances", f"{comp['instances']} ({comp['readable']} readable)"),
            ("classes", _first(f"{k}: {v}" for k, v in comp["classes"].items())),
            (
                "balance",
                f"largest/smallest {_num(bal['largest_to_smallest'], '{:.2f}')}, "
                f"normalised entropy {_num(bal['normalized_entropy'], '{:.3f}')}",
            ),
            (
                "exact duplicates",
                f"{comp['exact_duplicates']['groups']} group(s), "
                f"{comp['exact_duplicates']['extra_copies']} extra copies",
            ),
            (
                "near duplicates",
                _near_text(comp["near_duplicates"]),
            ),
            ("unreadable", ", ".join(f"{k}: {v}" for k, v in comp["unreadable"].items()) or "none"),
            ("formats", ", ".join(f"{k}: {v}" for k, v in comp["formats"].items())),
            ("EXIF / GPS", f"{comp['exif_present']} with EXIF, {comp['gps_tagged']} GPS-tagged (privacy)"),
            ("identifiable people", f"{comp['images_with_faces']} images with a detectable face"),
            ("NSFW", _nsfw_text(comp["nsfw"])),
        ]
    rows = [
        [section, item["question"], item["answer"] or "unanswered"]
        for section, items in sheet["sections"].items()
        for item in items
    ]
    answered = sum(r[2] != "unanswered" for r in rows)
    return {
        "title": "Datasheet (Gebru et al.)",
        "paragraphs": [
            "Composition is measured from the data; the other sections are the dataset owner's answers "
            f"(--datasheet-answers): {answered} of {len(rows)} questions answered."
        ],
        "facts": facts,
        "tables": [{"caption": "Questions and answers", "columns": ["section", "question", "answer"], "rows": rows}],
    }


def build(doc: dict[str, Any]) -> dict[str, Any]:
    data = doc["data"]
    all_classes, overall = data["classes"], data["overall"]
    classes, shown_note = shown_classes(all_classes)
    analyzer = data["analyzer"]
    summary = (
        f"{overall['faces']} faces found in {overall['images_with_faces']} of {overall['images']} images; "
        f"perceived female share {_pct(overall['female_share'])}"
        + (
            f" [{_pct(overall['female_share_ci'][0])}, {_pct(overall['female_share_ci'][1])}]"
            if overall["female_share_ci"]
            else ""
        )
        + f", mean perceived age {_num(overall['mean_age'])}. "
        f"Perceived by {analyzer.get('model', analyzer.get('backend'))}: model outputs, not facts."
    )
    figs = []
    for src, alt in (
        (_scatter(classes), "classes by faces per image and mean perceived age, coloured by skew"),
        (_female_share(classes, overall), "perceived female share per class with intervals"),
        (_class_distributions(all_classes) if shown_note else None, "distributions over every class"),
    ):
        if src:
            figs.append({"src": src, "alt": alt})
    age_bands = _age_bands(overall)
    if age_bands:
        figs.append({"src": age_bands, "alt": "share of faces per perceived age band with Wilson intervals"})
    columns = [
        "class",
        "images",
        "with faces",
        "faces",
        "faces/image",
        "mean age",
        "mean age F",
        "mean age M",
        "female share [95% CI]",
        "skewness xi",
        "abstained",
        "under 18",
    ]
    sections = [
        {
            "title": "Per class",
            "paragraphs": [
                f"Gender skewness xi is the Fisher-Pearson skewness of per-face values coded male = 1, female = 0 "
                f"(Prabhu & Birhane 2021): negative means male-dominated; undefined with fewer than 2 gendered faces "
                f"or one gender only. Faces whose gender confidence is below {data['abstain_below']:.2f} are "
                "counted as faces and for age but abstained from for gender.",
                *([shown_note] if shown_note else []),
            ],
            "figures": figs,
            "tables": [
                {
                    "caption": "Per class, then overall",
                    "columns": columns,
                    "rows": [_row(c) for c in [*classes, overall]],
                }
            ],
        },
        {
            "title": "Flags",
            "notes": data["flags"][:MAX_FLAGS_SHOWN]
            + (
                [f"... and {len(data['flags']) - MAX_FLAGS_SHOWN:,} more flags in the JSON twin (data.flags)."]
                if len(data["flags"]) > MAX_FLAGS_SHOWN
                else []
            )
            or ["No class has faces perceived as children, and no class has an extreme skew at n >= 20."],
        },
        {
            "title": "Limitations",
            "notes": data["limitations"],
            "facts": [
                ("model", str(analyzer.get("model", analyzer.get("backend")))),
                ("model licences", "; ".join(analyzer.get("licences", [])) or "not recorded"),
                (
                    "detection",
                    f"images upscaled to at least {analyzer.get('min_detect_side')} px on the shorter side; "
                    f"scales used: {', '.join(f'{s:g}' for s in data['detection_scales']) or 'none'}",
                ),
                ("face crops", "none stored; records hold boxes, scores and perceived attributes"),
            ],
        },
    ]
    thumbs = data.get("thumbnails")
    if thumbs and thumbs["grids"]:
        sections.append(
            {
                "title": "Samples",
                "paragraphs": [
                    "Up to eight images per class, those with faces first. "
                    + (
                        "Every detected face is blurred (--show-faces turns this off); a face the detector "
                        "missed is not blurred, so look at these samples before publishing the card."
                        if thumbs["faces_blurred"]
                        else "Faces are NOT blurred (--show-faces was given)."
                    )
                ],
                "figures": [
                    {
                        "src": "data:image/png;base64," + g["png"],
                        "alt": f"sample images of class {g['class']}",
                        "caption": f"class {g['class']}",
                        "chart": False,
                    }
                    for g in thumbs["grids"]
                ],
            }
        )
    from reports.audit_depth import sections as depth_sections

    sections[1:1] = depth_sections(data)  # after the per-class table, before the flags
    if data.get("comparison"):
        sections.append(_comparison_section(data))
    sheet = data.get("datasheet")
    if sheet:
        sections.append(_datasheet_section(sheet))
    if data["unreadable"]["count"]:
        sections.append(
            {
                "title": "Unreadable files",
                "tables": [
                    {
                        "caption": "Counted, not analysed",
                        "columns": ["file", "reason", "detail"],
                        "rows": [
                            [f["image"], f["reason"], f["message"] or ""] for f in data["unreadable"]["files"][:200]
                        ],
                    }
                ],
            }
        )
    return base_context(doc, summary=summary, sections=sections)
