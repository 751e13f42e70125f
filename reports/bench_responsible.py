"""The guidance-bench card's sections on responsible generation and fair comparison: schedules at the same
adherence, tuned parameters on held-out seeds, with and without the negative prompt, who the generated
images show, and near-copies of training images (docs/memorization.md, docs/attributes.md, docs/tuning.md,
docs/negative-prompts.md)."""

from __future__ import annotations

from typing import Any

from reports import figures
from reports.bench_common import DIFF_METRICS, curves, with_ci


def matched_section(data: dict[str, Any]) -> dict[str, Any]:
    """Each schedule against static guidance at the same adherence (CLIP-score, class adherence)."""
    labels = data["metric_labels"]
    tables, paragraphs = (
        [],
        [
            "Scales are not comparable across schedules, so each guided cell is also compared with static guidance "
            "at the SAME adherence: static's FID interpolated along its own curve (its cells by scale, the rising "
            "part only) at the cell's adherence; intervals from the paired resampling draws, each draw "
            "interpolated on its own. Cells beyond static's range are not extrapolated."
        ],
    )
    same_scale = {r["label"]: r["metrics"].get("fid", {}).get("verdict", "n/a") for r in data["paired_vs_static"]}
    for axis, found in data["matched_vs_static"].items():
        paragraphs.append(found["readings"]["sentence"])
        rows = [
            [r["label"], f"{r['adherence']:.3g}", f"{r['static_fid']:.3g}",
             with_ci({"diff": r["diff"], "ci95": r["ci95"]}), r["verdict"], same_scale.get(r["label"], "n/a")]
            for r in found["rows"]
        ]  # fmt: skip
        rows += [[o["label"], f"{o['adherence']:.3g}", "outside static's range", "n/a", "not compared",
                  same_scale.get(o["label"], "n/a")] for o in found["outside"]]  # fmt: skip
        lo, hi = found["range"] or (float("nan"), float("nan"))
        tables.append(
            {
                "caption": f"FID minus static's FID at the same {labels[axis]} (static's range {lo:.3g} to {hi:.3g})",
                "columns": ["cell", labels[axis], "static FID there", "d FID [95% paired interval]",
                            "at the same " + labels[axis], "at the same scale"],
                "rows": rows,
            }
        )  # fmt: skip
    return {"title": "At the same adherence", "paragraphs": paragraphs, "tables": tables}


def negative_section(data: dict[str, Any]) -> dict[str, Any]:
    """Every cell with the negative prompt minus the same cell without it (``--pair-negative``)."""
    pairs = data["negative_pairs"]
    labels = data["metric_labels"]
    present = [m for m in DIFF_METRICS if pairs["rows"] and m in pairs["rows"][0]["metrics"]]
    form = (
        f"the three-branch form, eps_c + w (eps_c - eps_u) - {pairs['negative_weight']:g} (eps_neg - eps_u)"
        if pairs["negative_weight"] is not None
        else "diffusers' form (the negative prompt replaces the unconditional branch)"
    )
    rows = [[r["label"], *[with_ci(r["metrics"].get(m)) for m in present],
             r["metrics"].get("fid", {}).get("verdict", "n/a")] for r in pairs["rows"]]  # fmt: skip
    return {
        "title": "With and without the negative prompt",
        "paragraphs": [
            f"Every cell was run again without the negative prompt “{pairs['negative_prompt']}”, on the same "
            f"conditions and seeds (in {pairs['without']}); the negative prompt was applied in {form}. "
            "Differences are with minus without, 95% intervals from the paired resampling draws."
        ],
        "tables": [
            {
                "caption": "With the negative prompt minus without, value [95% paired interval]",
                "columns": ["cell", *[f"d {labels[m]}" for m in present], "FID verdict"],
                "rows": rows,
            }
        ],
    }


def _share(value: float | None, ci: list[float] | None) -> str:
    return "n/a" if value is None else with_ci({"value": value, "ci95": ci})


def attributes_section(data: dict[str, Any]) -> dict[str, Any]:
    """Perceived gender and age of the generated images per cell and condition, and against guidance."""
    attrs = data["attributes"]
    ref = attrs["reference"]
    conditions = list(data["cells"][0]["attributes"]["conditions"])
    rows = []
    for c in data["cells"]:
        for cond, s in c["attributes"]["conditions"].items():
            rows.append([c["label"], cond, f"{s['images_with_faces']} / {s['images']}", str(s["faces"]),
                         _share(s["female_share"], s["female_share_ci"]),
                         "n/a" if s["mean_age"] is None else f"{s['mean_age']:.1f}",
                         _share(s["under_18_share"], s["under_18_ci"]), str(s["abstentions"])])  # fmt: skip
    charts = []
    plotted = (("female_share", "female_share_ci", "perceived female share"), ("mean_age", None, "mean perceived age"))
    for cond in conditions[:6]:  # a chart per prompt and figure: share (with its interval) and age
        for key, ci_key, what in plotted:
            cells = [
                {**c, "metrics": {key: {"value": stats[key], "ci95": stats[ci_key] if ci_key else None}}}
                for c in data["cells"]
                if (stats := c["attributes"]["conditions"][cond])[key] is not None
            ]
            if not cells:
                continue
            series, _ = curves(cells, "scale", key)
            xlabel = "guidance scale w (mean weight, paper convention)"
            src = figures.tradeoff_chart(series, title=f"{what}: {cond}", xlabel=xlabel, ylabel=what)
            charts.append({"src": src, "alt": f"{what} against guidance scale for {cond}"})
    diff_rows = [
        [r["label"], r["condition"], r["against"], _share(r["female_share"]["diff"], r["female_share"]["ci95"]),
         _share(r["mean_age"]["diff"], r["mean_age"]["ci95"])]
        for r in attrs["vs_static"]
    ]  # fmt: skip
    per_cell = {
        "caption": "Per cell and condition",
        "columns": ["cell", "condition", "images with faces", "faces", "female share [95%]", "mean age",
                    "under 18 [95%]", "abstentions"],
        "rows": rows,
    }  # fmt: skip
    against_static = {
        "caption": "Against static guidance at the same scale, difference [95% paired interval]",
        "columns": ["cell", "condition", "against", "d female share", "d mean age"],
        "rows": diff_rows,
    }
    return {
        "title": "Who the generated images show (perceived gender and age)",
        "paragraphs": [
            f"Every generated image went through the audit's face pipeline: {attrs['model']['model']} "
            f"(backend {attrs['backend']}); a face whose gender confidence is below {attrs['abstain_below']:g} "
            "counts for age but abstains on gender. Shares are of faces, with 95% Wilson intervals.",
            f"Reference share for the skew: {ref['share']:.2f} ({ref['source']}). The skew is the distance of a "
            "cell's perceived female share from it; its change from the unguided cell has a 95% interval from a "
            "paired bootstrap over images (the same conditions and seeds in every cell).",
            *attrs["sentences"],
        ],
        "figures": charts,
        "tables": [per_cell, against_static],
        "notes": attrs["caveats"],
    }


def tuning_section(data: dict[str, Any]) -> dict[str, Any]:
    """Tuned against held-out FID of every candidate of each parametrized schedule (``--tune``)."""
    tuning = data["tuning"]
    rows = []
    for r in tuning["rows"]:
        for c in r["candidates"]:
            mark = " (chosen)" if c["label"] == r["chosen"] else ""
            best = " (held-out best)" if c["label"] == r["heldout_best"] else ""
            rows.append([c["label"] + mark + best, f"{c['tune_fid']:.3g}", f"{c['heldout_fid']:.3g}",
                         "yes" if r["held"] else "no" if mark else ""])  # fmt: skip
    return {
        "title": "Tuned parameters on held-out seeds",
        "paragraphs": [
            "Each parametrized schedule's candidates were run on a tuning split (other seeds, and the other half "
            f"of the prompts; {tuning['tuning_run']}) and on the held-out split this card reports. The "
            "candidate with the lowest tuning FID is the choice; it held when it is the best, or not "
            "significantly worse than the best (paired interval), on the held-out split.",
            tuning["sentence"],
        ],
        "tables": [
            {
                "caption": "Every candidate: FID on the tuning split and on the held-out split",
                "columns": ["candidate", "tuning FID", "held-out FID", "choice held"],
                "rows": rows,
            },
        ],
    }


def memorization_section(data: dict[str, Any]) -> dict[str, Any]:
    """Near-copies of training images per cell (``bench --training``): share against scale, the table, the
    closest pairs side by side."""
    memo = data["memorization"]
    training = memo["training"]
    criterion = memo["criterion"]
    cells = [{**c, "metrics": {"copies": {"value": c["memorization"]["share"], "ci95": c["memorization"]["ci95"]}}}
             for c in data["cells"]]  # fmt: skip
    series, _ = curves(cells, "scale", "copies")
    chart = figures.tradeoff_chart(
        series, title="near-copies of training images by guidance scale",
        xlabel="guidance scale w (mean weight, paper convention)", ylabel="share of near-copies",
    )  # fmt: skip
    other = [n for n in memo["criteria"] if n != criterion]
    rows = []
    for c in data["cells"]:
        m = c["memorization"]
        near = m["nearest"]["ratio_quantiles"]
        rows.append(
            [c["label"], f"{m['count']} / {m['images']}", with_ci({"value": m["share"], "ci95": m["ci95"]}),
             *[str(m["criteria"][n]["count"]) if n in m["criteria"] else "n/a" for n in other],
             f"{near['min']:.3f} / {near['median']:.3f}"]
        )  # fmt: skip
    figures_out: list[dict[str, Any]] = [{"src": chart, "alt": "share of near-copies against guidance scale"}]
    for c in data["cells"]:
        m = c["memorization"]
        if m.get("pairs_png"):
            pairs = "; ".join(f"{p['index']} | {p['training']} (ratio {p['ratio']:.2f})" for p in m["closest"])
            figures_out.append(
                {
                    "src": "data:image/png;base64," + m["pairs_png"],
                    "alt": f"{c['label']}: closest generated | training pairs",
                    "caption": f"{c['label']}, closest first, generated | training: {pairs}",
                    "chart": False,
                }
            )
    copies = sum(c["memorization"]["count"] for c in data["cells"])
    return {
        "title": "Memorization: near-copies of training images",
        "paragraphs": [
            f"Every generated image was compared with the {training['images']} training images of "
            f"{training['spec']} ({training.get('source', 'read through genaudit’s loader')}). A near-copy by "
            f"{memo['criteria'][criterion]}. {copies} near-copies in all cells.",
            "Also counted: " + "; ".join(memo["criteria"][n] for n in other) + ".",
            "Each cell's closest pairs (generated | training) are drawn below whether they count as copies or "
            "not, so the threshold can be judged by eye. A share of 0 with its interval bounds how often this "
            "generator copies at this n; it does not prove it never does.",
        ],
        "figures": figures_out,
        "tables": [
            {
                "caption": "Near-copies per cell: count, share [95% Wilson interval], the other criterion's count, "
                "nearest-neighbour ratio (min / median)",
                "columns": ["cell", "near-copies", "share", *[f"{n} count" for n in other], "ratio min / median"],
                "rows": rows,
            }
        ],
        "notes": [
            "The pixel criterion is a relative test: an image is a near-copy when one training image is much "
            "closer than its other nearest ones; shifts, crops and flips are not caught (docs/memorization.md).",
            "The feature criterion's space is the benchmark's extractor, not a copy-detection model (SSCD); its "
            "threshold was set on the embedded digits (docs/memorization.md) and does not transfer.",
        ],
    }
