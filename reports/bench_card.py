"""Card builder for ``guidance-bench`` results: which guidance schedule wins on this generator."""

from __future__ import annotations

from typing import Any

from reports import bench_responsible as responsible
from reports import figures
from reports.bench_common import DIFF_METRICS, curves, with_ci
from reports.cards import base_context


def _chart(data: dict[str, Any], x: str, y: str, title: str, front: bool = False) -> dict[str, Any]:
    labels = {**data["metric_labels"], "scale": "guidance scale w (mean weight, paper convention)"}
    cells = data["cells"]
    series, notes = curves(cells, x, y)
    highlight = []
    if front:
        on_front = set(data["pareto_front"])
        highlight = [(c["metrics"][x]["value"], c["metrics"][y]["value"]) for c in cells if c["label"] in on_front]
    src = figures.tradeoff_chart(
        series,
        title=title,
        xlabel=labels[x],
        ylabel=labels[y],
        highlight=highlight,
        highlight_label="Pareto front" if highlight else "",
        annotate=None if x == "scale" else notes,
    )
    return {"src": src, "alt": f"{labels[y]} against {labels[x]}, one line per schedule across guidance scales"}


def _cells_table(data: dict[str, Any]) -> dict[str, Any]:
    labels = data["metric_labels"]
    ordered = [*data["lower_is_better"], *data["higher_is_better"]]  # the bench's own metric orderings
    present = [m for m in ordered if m in data["cells"][0]["metrics"]]
    front = set(data["pareto_front"])
    rows = [
        [c["label"] + (" *" if c["label"] in front else ""), *[with_ci(c["metrics"].get(m)) for m in present]]
        for c in data["cells"]
    ]
    return {
        "caption": "Every cell, value [95% interval]; * = on the Pareto front",
        "columns": ["cell", *[labels[m] for m in present]],
        "rows": rows,
    }


def _paired_section(data: dict[str, Any]) -> dict[str, Any]:
    labels = data["metric_labels"]
    paired = data["paired_vs_static"]
    if not paired:
        return {
            "title": "Paired differences to static guidance",
            "paragraphs": ["No cell has a static-guidance partner at the same scale: add static to --schedules."],
        }
    present = [m for m in DIFF_METRICS if m in paired[0]["metrics"]]
    fid_rows = [r for r in paired if "fid" in r["metrics"]]
    forest = figures.forest_plot(
        [r["label"] for r in fid_rows],
        [r["metrics"]["fid"]["diff"] for r in fid_rows],
        [tuple(r["metrics"]["fid"]["ci95"]) for r in fid_rows],
        title="FID(schedule) - FID(static) at the same scale",
        xlabel="difference in FID (below 0: the schedule is closer to the data)",
    )
    rows = [
        [r["label"], *[with_ci(r["metrics"].get(m)) for m in present], r["metrics"]["fid"]["verdict"]] for r in paired
    ]
    return {
        "title": "Paired differences to static guidance",
        "paragraphs": [
            "Each schedule minus static guidance at the same scale (for the mean-normalised shapes, the same "
            "mean weight), on the same conditions and noise seeds. Intervals come from the paired resampling "
            "draws: both cells were resampled with the same indices. Green: significantly better FID; "
            "red: significantly worse; grey: the interval includes 0."
        ],
        "figures": [{"src": forest, "alt": "FID difference to static guidance with 95% paired intervals"}],
        "tables": [
            {
                "caption": "Difference to static at the same scale, value [95% paired interval]",
                "columns": ["cell", *[f"d {labels[m]}" for m in present], "FID verdict"],
                "rows": rows,
            }
        ],
    }


def _disagreement_section(data: dict[str, Any]) -> dict[str, Any]:
    d = data["disagreements"]
    labels = data["metric_labels"]
    agree = ", ".join(f"{labels[m]} {rho:.2f}" for m, rho in d["spearman_vs_fid"].items())
    paragraphs = [
        "FID, KID and the Frechet distance in CLIP space all measure how far the generated set is from the "
        "reference, with different estimators and feature spaces; where they disagree, a conclusion drawn "
        "from FID alone is fragile."
    ]
    if agree:
        paragraphs.append(f"Rank correlation of the cells with FID (Spearman): {agree}.")
    notes = d["notes"] or [
        "No disagreement: every distance metric picks the same best cell, and no paired comparison "
        "has FID and another distance significant in opposite directions."
    ]
    return {"title": "Where the metrics disagree", "paragraphs": paragraphs, "notes": notes}


def build(doc: dict[str, Any]) -> dict[str, Any]:
    data = doc["data"]
    labels = data["metric_labels"]
    cond = data["conditioning_metric"]
    cells = data["cells"]
    win = data["winner"]
    verdict = data["verdict"]
    sections: list[dict[str, Any]] = []
    first_seed = doc["provenance"]["seeds"].get("first_image_seed", 0)
    winner_text = (
        f"Winner by the rule stated here ({win['rule']}): {win['schedule']}. Cells on the front per schedule: "
        + ", ".join(f"{k} {v}" for k, v in win["front_cells"].items())
        + "."
        if win
        else "No guided cells: no winner."
    )
    sections.append(
        {
            "title": "Verdict",
            "paragraphs": [verdict["sentence"], winner_text],
            "facts": [
                ("generator", data["generator"]),
                (
                    "images per cell",
                    f"{data['n']} (image i: condition i mod k, seed {first_seed} + i, the same in every cell)",
                ),
                ("sampling steps", str(data["steps"])),
                ("reference", f"{data['reference']['spec']} ({data['reference']['n']} images)"),
                ("feature extractor", data["extractor"]),
                (
                    "intervals",
                    f"95%, {data['bootstrap']} resampling draws over the generated images "
                    "(bootstrap or half-sample per metric)",
                ),
            ],
        }
    )
    figs = [_chart(data, "scale", "fid", "FID by guidance scale")]
    if cond:
        figs.append(_chart(data, cond, "fid", f"FID vs {labels[cond]} across scales", front=True))
        if cond != "class_adherence" and "class_adherence" in cells[0]["metrics"]:
            figs.append(_chart(data, "class_adherence", "fid", "FID vs class adherence across scales"))
    sections.append(
        {
            "title": "Fidelity against prompt adherence",
            "paragraphs": [
                "Each line is one schedule across guidance scales, starting from the unguided cell (w = 0). "
                "First FID against the scale itself; then against prompt adherence (point labels: the mean "
                "weight w), where lower and further right is better and ringed cells are on the Pareto front "
                f"(no other cell has both lower FID and higher {labels.get(cond, 'adherence')}). Error bars: "
                "95% intervals (conservative for FID: see the notes at the end)."
            ],
            "figures": figs,
        }
    )
    if cond:
        sections.append(
            {
                "title": "Diversity against prompt adherence",
                "paragraphs": [
                    "Guidance trades diversity for adherence; a better schedule keeps more diversity at the "
                    "same adherence."
                ],
                "figures": [
                    _chart(data, cond, m, f"{labels[m]} vs {labels[cond]}") for m in ("vendi", "recall", "coverage")
                ],
            }
        )
    if "inception_score" in cells[0]["metrics"]:
        sections.append(
            {
                "title": "IS against FID",
                "paragraphs": [
                    f"IS here is computed from {data['extractor']}'s class probabilities; it rewards confident, "
                    "class-diverse samples and ignores the reference set."
                ],
                "figures": [_chart(data, "fid", "inception_score", "IS vs FID")],
            }
        )
    curves = data["weight_curves"]
    applied = {
        c["label"].split(" @ ")[0]: c["step_weights"]
        for c in cells
        if c["schedule"].get("scale") == curves["scale"] or "scale" not in c["schedule"]
    }
    sections.append(
        {
            "title": "The schedules",
            "paragraphs": [
                f"w(p) at scale {curves['scale']:g} (lines) and the weight the sampler applied at each of its "
                f"{data['steps']} steps (dots). The mean-normalised shapes all average {curves['scale']:g} "
                "over the run."
            ],
            "figures": [
                {
                    "src": figures.step_curves(
                        curves["progress"], curves["curves"], title="guidance schedules", applied=applied
                    ),
                    "alt": "guidance weight over sampling progress for every schedule",
                }
            ],
        }
    )
    sections.append(_paired_section(data))
    if data.get("matched_vs_static"):
        sections.append(responsible.matched_section(data))
    if data.get("negative_pairs"):
        sections.append(responsible.negative_section(data))
    if data.get("tuning"):
        sections.append(responsible.tuning_section(data))
    if data.get("attributes"):
        sections.append(responsible.attributes_section(data))
    if data.get("memorization"):
        sections.append(responsible.memorization_section(data))
    sections.append(_disagreement_section(data))
    sections.append({"title": "All cells", "tables": [_cells_table(data)]})
    sections.append(
        {
            "title": "Samples: same conditions and seeds in every row",
            "paragraphs": ["The first images of each cell; the top row is unguided (w = 0)."],
            "figures": [
                {
                    "src": "data:image/png;base64," + g["png"],
                    "alt": f"samples at scale {g['scale']:g}, rows: " + ", ".join(g["rows"]),
                    "caption": f"scale {g['scale']:g}; rows: " + "; ".join(g["rows"]),
                    "chart": False,
                }
                for g in data["grids"]
            ],
        }
    )
    sections.append(
        {
            "title": "How to read these numbers",
            "notes": [
                "Intervals cover the sampling of the generated images only; the reference set is fixed. Recall, "
                "coverage, Vendi, IS and KID use half-samples (resampling with replacement biases them); their "
                "intervals describe variability at this n, not the estimators' small-sample bias.",
                "Measured calibration (benchmarks/interval_calibration.py, embedded model): the intervals of a "
                "single FID, FD or KID are several times wider than the spread over fresh seeds (conservative), "
                "which is why overlapping error bars on the curves say little; the paired differences the verdict "
                "uses are close to calibrated (FID's still conservative); recall's intervals are too narrow.",
                "FID and KID depend on n and on the feature extractor: compare cells within this card, not with "
                "figures computed elsewhere.",
                "The verdict is about this generator, sampler and step count; schedule rankings published for other "
                "models need not transfer.",
            ]
            + (
                [
                    "Embedded defaults: features come from genaudit's digits classifier and CLIP-score from its tiny "
                    "digits CLIP, not from Inception or a pretrained CLIP; the numbers are not comparable with "
                    "published FIDs.",
                    "Who a generator depicts (bench --attributes faces: perceived gender and age per prompt and "
                    "against guidance) needs a generator of people; the embedded DDPM draws digits, so this card "
                    "has no such section.",
                ]
                if data["extractor"].startswith("embedded")
                else []
            )
            + (
                [
                    "Large cells: FID, FD in CLIP space, Vendi and KID were resampled by blocks of generated images "
                    "(ci_method block-bootstrap / block-half-sample; docs/large-samples.md), each draw a d x d "
                    "eigenproblem instead of a pass over every image. Their interval widths are estimated from "
                    "32 to 256 blocks, so they are themselves uncertain by about 4-13%."
                ]
                if _blocked(data)
                else []
            ),
        }
    )
    return base_context(doc, summary=verdict["sentence"], sections=sections)


def _blocked(data: dict[str, Any]) -> bool:
    """Whether any cell's intervals came from block resampling (cells above the evaluator's dense limit)."""
    return any(
        str(entry.get("ci_method") or "").startswith("block-")
        for cell in data.get("cells", [])
        for entry in cell.get("metrics", {}).values()
        if isinstance(entry, dict)
    )
