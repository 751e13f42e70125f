"""Card builder for ``deepfake-detection`` results: how well the detector separates real from generated
images, how far that survives re-encoding, what it costs, and what it must not be used for."""

from __future__ import annotations

from typing import Any

from reports import figures
from reports.cards import base_context


def _ci(value: float | None, ci: list[float] | None, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    f = (lambda v: f"{100 * v:.1f}%") if pct else (lambda v: f"{v:.3f}")
    return f(value) + (f" [{f(ci[0])}, {f(ci[1])}]" if ci else "")


def _metric_cells(m: dict[str, Any]) -> list[str]:
    return [
        _ci(m["auroc"], m.get("auroc_ci")),
        _ci(m["ap"], m.get("ap_ci")),
        _ci(m["tpr_at_fpr_1pct"], m.get("tpr_at_fpr_1pct_ci"), pct=True),
        _ci(m["tpr_at_fpr_5pct"], m.get("tpr_at_fpr_5pct_ci"), pct=True),
    ]


METRIC_COLUMNS = ["AUROC [95% CI]", "AP", "TPR at 1% FPR", "TPR at 5% FPR"]


def _held_out_table(ev: dict[str, Any]) -> dict[str, Any]:
    """Each generator seen in calibration (the per-source row) beside left out of it: what to expect of a
    generator the detector never saw."""
    per_source = {s["source"]: s for s in ev.get("per_source") or []}
    rows = []
    for h in ev["held_out_generators"]:
        s = h.get("seen") or per_source.get(h["source"])
        alone, reference = h.get("two_class"), h.get("reference_only")
        rows.append([
            h["source"], _ci(s["auroc"], s.get("auroc_ci")) if s else "",
            _auroc(h.get("seen_two_class")), _ci(h["auroc"], h.get("auroc_ci")), _auroc(alone), _auroc(reference),
            _ci(h["tpr_at_fpr_5pct"], h.get("tpr_at_fpr_5pct_ci"), pct=True), f"{100 * h['flagged']:.1f}%",
            f"{100 * h['real_flagged']:.1f}%", ", ".join(h["calibrated_on"]),
        ])  # fmt: skip
    names = ", ".join(h["source"] for h in ev["held_out_generators"])
    routed = [h["routed_inputs"] for h in ev["held_out_generators"] if "routed_inputs" in h]
    route_note = (
        f" Every detector here has its JPEG route, calibrated as the route is, in its own folds; it scored the "
        f"recompressed inputs among the real and the left-out images ({', '.join(map(str, routed))} per "
        "generator), as a routed detector does."
        if routed
        else ""
    )
    return {
        "caption": f"Each generator left out of calibration (tested on {len(rows)} generators: {names}). Seen: "
        "cross-fitted with every generator in calibration. Left out: calibrated on the real images and the other "
        "generators, each real image scored by a fold detector that never saw it, each left-out image by one "
        "of those detectors in turn; flagged at each fold detector's own threshold. The detector is the "
        "two-class model combined with the real reference; 'two-class alone' is the same without the reference, "
        "'real reference alone' a detector calibrated on the real images only, which never sees a generated one."
        + route_note,
        "columns": ["generator", "AUROC seen", "seen, two-class alone", "AUROC left out",
                    "left out, two-class alone", "real reference alone", "TPR at 5% FPR, left out",
                    "flagged, left out", "real flagged", "calibrated on"],
        "rows": rows,
    }  # fmt: skip


def _robustness_table(ev: dict[str, Any]) -> dict[str, Any]:
    """Every perturbation's metrics; with a second detector (``compare``: calibrated with or without augmented
    copies), its AUROC and TPR beside them."""
    compare = ev.get("compare")
    rows = [["none", *_metric_cells(ev)]] + [[p["perturbation"], *_metric_cells(p)] for p in ev["perturbations"]]
    columns, captions = ["perturbation", *METRIC_COLUMNS], []
    if "flagged_real" in ev or any("flagged_real" in p for p in ev["perturbations"]):
        for row, m in zip(rows, [ev, *ev["perturbations"]], strict=True):
            row.append(_flagged(m))
        columns.append("flagged at its threshold: real / generated")
        captions.append(
            "The AUROC and the TPR at 5% FPR are read from the scores alone; 'flagged at its threshold' is what a "
            "user meets: the share of real and of generated images over the threshold set on clean real images. "
            "A share of real images far above the target FPR means the threshold does not hold for such images."
        )
    if compare:
        others = [compare, *(p.get("compare") for p in ev["perturbations"])]
        for row, other in zip(rows, others, strict=True):
            row += [_auroc(other), _ci(other["tpr_at_fpr_5pct"], None, pct=True) if other else ""]
        columns += [f"AUROC, {compare['label']}", "TPR at 5% FPR, same"]
        captions.append(f"Beside each row: the same images scored by the other detector ({compare['label']}).")
    if any(p.get("routed") for p in ev["perturbations"]):
        routed = [None, *(p.get("routed") for p in ev["perturbations"])]
        for row, other in zip(rows, routed, strict=True):
            taken = other is not None and other.get("route") == "jpeg"
            row += [_routed_by(other) if taken else "main", _auroc(other) if taken else "same",
                    _ci(other["tpr_at_fpr_5pct"], None, pct=True) if taken else "same",
                    _flagged(other) if taken else "same"]  # fmt: skip
        columns += ["scored by, routed", "AUROC, routed", "TPR at 5% FPR, routed", "flagged, routed"]
        copies = (ev.get("jpeg_route") or {}).get("copies") or {}
        low, high = (copies.get("jpeg") or {}).get("quality", (30, 95))
        enlarged = copies.get("enlarged")
        small, big = (enlarged or {}).get("factor", (1.1, 2.0))
        captions.append(  # results written before the limits were recorded used 90 and 80
            f"Routed: as the detector scores such files, a JPEG below quality {copies.get('below_quality', 90)} "
            "(estimated from its quantisation table), a lossy WebP below quality "
            f"{copies.get('webp_below_quality', 80)} (from its VP8 header)"
            + (" or an image larger than the calibration images" if enlarged else "")
            + " by its JPEG route, calibrated on one "
            + (
                f"copy of every calibration image (JPEG at quality {low}-{high} or enlarged {small}-{big}x, mild "
                "blur; a calibration image that is a JPEG or WebP it takes, as it is)"
                if enlarged
                else f"JPEG copy of every calibration image (quality {low}-{high}, mild blur; a "
                "calibration image that is such a file already, as it is)"
            )
            + ", every other image by the main detector. The first columns are the main detector alone."
        )
    return {"caption": " ".join(captions) or None, "columns": columns, "rows": rows}


def _routed_by(routed: dict[str, Any]) -> str:
    """Who scored a sweep row's routed images: the JPEG route, or it for some of them (a resize that enlarges
    only the images that end up larger than the calibration images)."""
    count, total = routed.get("routed_images"), routed.get("n_real", 0) + routed.get("n_fake", 0)
    if count is None or not total or count == total:
        return "JPEG route"
    return f"JPEG route ({count} of {total}), main"


def _flagged(metrics: dict[str, Any] | None) -> str:
    """Shares of real and generated images flagged at the detector's threshold, or empty (older results)."""
    if not metrics or "flagged_real" not in metrics:
        return ""
    return f"{100 * metrics['flagged_real']:.1f}% / {100 * metrics['flagged_generated']:.1f}%"


def _auroc(metrics: dict[str, Any] | None) -> str:
    """A result's AUROC with its interval, or an empty cell where the result is absent (older results)."""
    return _ci(metrics["auroc"], metrics.get("auroc_ci")) if metrics else ""


def _histogram(curves: dict[str, Any], threshold: float) -> str:
    plt = figures._pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 2.8))
    both = curves["scores_real"] + curves["scores_generated"]
    bins = 30 if both else 1
    ax.hist(curves["scores_real"], bins=bins, alpha=0.6, label="real", color="#4a78b5", density=True)
    ax.hist(curves["scores_generated"], bins=bins, alpha=0.6, label="generated", color="#c0504d", density=True)
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    ax.set_xlabel("detector score (higher = more likely generated)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    ax.set_title("Scores by class")
    return figures.svg_data_uri(fig)


def _roc(curves: dict[str, Any], auroc: float) -> str:
    plt = figures._pyplot()
    fig, ax = plt.subplots(figsize=(3.4, 3.2))
    ax.plot(curves["roc"]["fpr"], curves["roc"]["tpr"], color="#4a78b5", label=f"AUROC {auroc:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false-positive rate (real flagged)")
    ax.set_ylabel("true-positive rate")
    ax.set_title("ROC")
    ax.legend(fontsize=7, loc="lower right")
    return figures.svg_data_uri(fig)


def _reliability(curves: dict[str, Any]) -> str:
    plt = figures._pyplot()
    fig, ax = plt.subplots(figsize=(3.4, 3.2))
    rel = curves["reliability"]
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    ax.plot(
        [r["mean_p"] for r in rel],
        [r["fraction_generated"] for r in rel],
        marker="o",
        color="#c0504d",
        label="this detector",
    )
    ax.set_xlabel("predicted P(generated)")
    ax.set_ylabel("fraction actually generated")
    ax.set_title("Calibration")
    ax.legend(fontsize=7, loc="upper left")
    return figures.svg_data_uri(fig)


def _membership_section(m: dict[str, Any]) -> dict[str, Any]:
    train, real = m["training"], m["real"]
    return {
        "title": "The generator's own training images",
        "paragraphs": [
            f"Real images the generator was trained on ({m['training_images']}) scored by the same detector(s): "
            f"{_ci(train['rate'], train['rate_ci'], pct=True)} are flagged as generated, against "
            f"{_ci(real['rate'], real['rate_ci'], pct=True)} of the {m['real_images']} (Wilson 95% "
            "intervals). A diffusion model can fit its training images unusually well, and the detector reads "
            "a good fit as generated: where the first share is the higher, real images from the training set "
            "are not protected by the false-positive rate above. The score alone tells training from the other "
            "real images with AUROC "
            f"{_ci(m['auroc_training_vs_real'], m['auroc_training_vs_real_ci'])} (0.5 = not at all)."
        ],
        "tables": [
            {
                "columns": ["real images", "images", "flagged", "flagged share [95% CI]"],
                "rows": [
                    [label, r["n"], r["flagged"], _ci(r["rate"], r["rate_ci"], pct=True)]
                    for label, r in (("the generator's training images", train), (m["real_images"], real))
                ],
            }
        ],
    }


MODE_TEXT = {
    "two-class": "two-class detector",
    "combined": "two-class detector combined with the real reference (weight {weight:g})",
    "reference": "real-reference detector (calibrated on real images only: its p_synthetic is one minus a "
    "conformal p-value against them, not a posterior probability)",
}
DIRECTION_ROWS = 16  # the card lists the largest weights; the JSON keeps them all


def build(doc: dict[str, Any]) -> dict[str, Any]:
    data = doc["data"]
    ev = data["evaluation"]
    flagged = (
        f"{data['flagged']} of {data['scored']} images flagged at the threshold for {100 * data['target_fpr']:.0f}% FPR"
    )
    summary = (
        f"Model {data['model']}, scorer {data['scorer']['name']} "
        f"({', '.join(f'{k}={v}' for k, v in data['scorer'].items() if k != 'name')}); "
        f"{MODE_TEXT.get(data.get('mode'), 'two-class detector').format(weight=data.get('reference_weight'))}. "
        f"{flagged}."
    )
    for name, route in (data.get("routes") or {}).items():
        webp = route.get("webp_below_quality")
        summary += (
            f" It has a {name.upper()} route: inputs that are JPEGs below quality {route['below_quality']}"
            + (f"{',' if route.get('enlarged') else ' or'} lossy WebPs below quality {webp}" if webp else "")
            + (" or larger than its calibration images" if route.get("enlarged") else "")
            + " are scored by a second detector calibrated on "
            + ("JPEG or enlarged copies" if route.get("enlarged") else "JPEG copies")
            + " of its calibration images."
        )
    if ev is not None:
        summary += (
            f" AUROC {_ci(ev['auroc'], ev['auroc_ci'])} on {ev['n_real']} real and {ev['n_fake']} generated images."
        )
    sections: list[dict[str, Any]] = []
    if data["warnings"]:
        sections.append({"title": "Warnings", "notes": data["warnings"]})
    if ev is not None:
        curves = data["curves"]
        rows = [["this detector", *_metric_cells(ev)]]
        if ev.get("two_class"):
            rows.append(["two-class alone (no real reference)", *_metric_cells(ev["two_class"])])
        if ev.get("compare"):
            rows.append([ev["compare"]["label"], *_metric_cells(ev["compare"])])
        if ev.get("baseline"):
            b = ev["baseline"]
            on = f" (on {b['images']}: {b['n_real']} real, {b['n_fake']} generated)" if b.get("images") else ""
            rows.append([f"baseline: {b['scorer']['name']}{on}", *_metric_cells(b)])
        tables = [
            {
                "caption": "Held-out evaluation (stratified bootstrap 95% intervals)",
                "columns": ["", *METRIC_COLUMNS],
                "rows": rows,
            }
        ]
        if ev.get("per_source"):
            tables.append(
                {
                    "caption": "Per generated source, against the same real images",
                    "columns": ["generated images", *METRIC_COLUMNS],
                    "rows": [[s["source"], *_metric_cells(s)] for s in ev["per_source"]],
                }
            )
        if ev.get("held_out_generators"):
            tables.append(_held_out_table(ev))
        sections.append(
            {
                "title": "How well it separates real from generated",
                "paragraphs": [
                    ev.get("protocol") or "Calibrated on one random half of every source, evaluated on the other."
                ],
                "figures": [
                    {
                        "src": _histogram(curves, data["threshold"]),
                        "alt": "score histograms of real and generated images",
                    },
                    {"src": _roc(curves, ev["auroc"]), "alt": "ROC curve"},
                    {"src": _reliability(curves), "alt": "calibration curve"},
                ],
                "tables": tables,
            }
        )
        sections.append(
            {
                "title": "Robustness: both classes re-encoded the same way",
                "paragraphs": [
                    "Every real and every generated image goes through the same perturbation, then the "
                    "detector scores them (calibrated on clean images unless the table says it was augmented "
                    "with perturbed copies)."
                ],
                "tables": [_robustness_table(ev)],
            }
        )
    if ev is not None and ev.get("membership"):
        sections.append(_membership_section(ev["membership"]))
    if data.get("direction"):
        strongest = sorted(data["direction"], key=lambda d: -abs(d["weight"]))[:DIRECTION_ROWS]
        shown = "all" if len(strongest) == len(data["direction"]) else f"the {len(strongest)} largest"
        per_generator = any("generator" in d for d in strongest)
        lead = (
            "One logistic model per generator, each against the real images; an image's decision is the "
            "largest of them, each standardised on the real images. Weights of the standardised log features"
            if per_generator
            else "Weights of the standardised log features in the logistic model"
        )
        sections.append(
            {
                "title": "What the detector learned",
                "paragraphs": [
                    f"{lead}; the sign says which way each feature points. The direction is learned at "
                    f"calibration, not assumed. Shown: {shown} of {len(data['direction'])} weights (all in "
                    "the JSON)."
                ],
                "tables": [
                    {
                        "columns": [*(["generator"] if per_generator else []), "feature", "weight", "higher means"],
                        "rows": [_direction_row(d, per_generator) for d in strongest],
                    }
                ],
            }
        )
    sections.append(
        {
            "title": "Cost",
            "tables": [
                {
                    "columns": ["scorer", "network evaluations per image", "images", "seconds", "images per second"],
                    "rows": [
                        [c["scorer"], c["nfe_per_image"], c["images"], c["seconds"], c["images_per_second"]]
                        for c in data["costs"]
                    ],
                }
            ],
            "notes": data["notes"],
        }
    )
    if data.get("fairness"):
        fair = data["fairness"]
        sections.append(
            {
                "title": "False positives on real images by perceived group",
                "paragraphs": [
                    "Groups are perceived gender and age from the face pipeline: model outputs, not facts. "
                    f"{fair['real_images_with_faces']} real images had faces in the face records."
                ],
                "tables": [
                    {
                        "columns": ["group", "real images", "false positives", "FPR [95% CI]"],
                        "rows": [
                            [g["group"], g["real_images"], g["false_positives"], _ci(g["fpr"], g["fpr_ci"], True)]
                            for g in fair["groups"]
                        ],
                    }
                ],
            }
        )
    if data["detections"]:
        truth = "truth" in data["detections"][0]
        caveats = any(d.get("caveat") for d in data["detections"])  # a scan's warnings that count the image
        columns = ["image", "file", *(["truth", "source"] if truth else []), "score", "P(generated)", "flagged",
                   *(["caveat (flag not to be trusted: see the warnings)"] if caveats else [])]  # fmt: skip
        rows = [
            [{"img": "data:image/png;base64," + d["png"], "alt": d["path"]}, d["path"],
             *([d["truth"], d["source"]] if truth else []), d["score"], d["p_synthetic"], d["flagged"],
             *([d.get("caveat", "")] if caveats else [])]
            for d in data["detections"]
        ]  # fmt: skip
        sections.append({"title": "Images (highest and lowest scores)", "tables": [{"columns": columns, "rows": rows}]})
    sections.append({"title": "Limitations", "notes": data["limitations"]})
    return base_context(doc, summary=summary, sections=sections)


def _direction_row(entry: dict[str, Any], per_generator: bool) -> list[Any]:
    """One row of "What the detector learned": the generator first when there is one model per generator."""
    row = [entry["feature"], round(entry["weight"], 3), entry["higher_means"]]
    return [entry.get("generator", ""), *row] if per_generator else row
