"""Card builder for ``guidance-bench`` results: which guidance schedule wins on this generator."""

from __future__ import annotations

from typing import Any

from reports import figures
from reports.cards import base_context

DIFF_METRICS = ("fid", "kid", "clip_score", "class_adherence", "recall", "coverage", "vendi")


def _with_ci(m: dict[str, Any] | None) -> str:
    if not m:
        return "n/a"
    value = m.get("value", m.get("diff"))
    text = _num(value)
    if m.get("ci95"):
        lo, hi = m["ci95"]
        text += f" [{_num(lo)}, {_num(hi)}]"
    return text


def _num(v: float) -> str:
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def _ci(m: dict[str, Any]) -> tuple[float, float] | None:
    return tuple(m["ci95"]) if m.get("ci95") else None  # type: ignore[return-value]


def _curves(
    cells: list[dict[str, Any]], x_metric: str, y_metric: str
) -> tuple[dict[str, list[Any]], dict[str, list[str]]]:
    """Per schedule, its cells ordered by scale, each starting at the unguided baseline (w = 0)."""
    baseline = [c for c in cells if c["schedule"]["name"] == "static" and c["schedule"].get("scale") == 0.0]
    series: dict[str, list[Any]] = {}
    notes: dict[str, list[str]] = {}
    names = list(dict.fromkeys(c["schedule"]["name"] for c in cells))
    for name in names:
        own = [c for c in cells if c["schedule"]["name"] == name and c not in baseline]
        own.sort(key=lambda c: c["schedule"].get("scale", 0.0))
        if not own:
            continue
        run = baseline + own
        label = own[0]["label"].split(" @ ")[0]
        series[label] = [
            (
                c["schedule"].get("scale", 0.0) if x_metric == "scale" else c["metrics"][x_metric]["value"],
                c["metrics"][y_metric]["value"],
                None if x_metric == "scale" else _ci(c["metrics"][x_metric]),
                _ci(c["metrics"][y_metric]),
            )
            for c in run
        ]
        notes[label] = [f"w={c['schedule']['scale']:g}" if "scale" in c["schedule"] else "" for c in run]
    return series, notes


def _chart(data: dict[str, Any], x: str, y: str, title: str, front: bool = False) -> dict[str, Any]:
    labels = {**data["metric_labels"], "scale": "guidance scale w (mean weight, paper convention)"}
    cells = data["cells"]
    series, notes = _curves(cells, x, y)
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
        [c["label"] + (" *" if c["label"] in front else ""), *[_with_ci(c["metrics"].get(m)) for m in present]]
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
        [r["label"], *[_with_ci(r["metrics"].get(m)) for m in present], r["metrics"]["fid"]["verdict"]] for r in paired
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


def _matched_section(data: dict[str, Any]) -> dict[str, Any]:
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
             _with_ci({"diff": r["diff"], "ci95": r["ci95"]}), r["verdict"], same_scale.get(r["label"], "n/a")]
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


def _negative_section(data: dict[str, Any]) -> dict[str, Any]:
    """Every cell with the negative prompt minus the same cell without it (``--pair-negative``)."""
    pairs = data["negative_pairs"]
    labels = data["metric_labels"]
    present = [m for m in DIFF_METRICS if pairs["rows"] and m in pairs["rows"][0]["metrics"]]
    form = (
        f"the three-branch form, eps_c + w (eps_c - eps_u) - {pairs['negative_weight']:g} (eps_neg - eps_u)"
        if pairs["negative_weight"] is not None
        else "diffusers' form (the negative prompt replaces the unconditional branch)"
    )
    rows = [[r["label"], *[_with_ci(r["metrics"].get(m)) for m in present],
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
    return "n/a" if value is None else _with_ci({"value": value, "ci95": ci})


def _attributes_section(data: dict[str, Any]) -> dict[str, Any]:
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
    for cond in conditions[:6]:
        cells = [{**c, "metrics": {"female": {"value": c["attributes"]["conditions"][cond]["female_share"],
                                              "ci95": c["attributes"]["conditions"][cond]["female_share_ci"]}}}
                 for c in data["cells"] if c["attributes"]["conditions"][cond]["female_share"] is not None]  # fmt: skip
        if not cells:
            continue
        series, _ = _curves(cells, "scale", "female")
        src = figures.tradeoff_chart(series, title=f"perceived female share: {cond}",
                                     xlabel="guidance scale w (mean weight, paper convention)",
                                     ylabel="perceived female share")  # fmt: skip
        charts.append({"src": src, "alt": f"perceived female share against guidance scale for {cond}"})
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


def _tuning_section(data: dict[str, Any]) -> dict[str, Any]:
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


def _memorization_section(data: dict[str, Any]) -> dict[str, Any]:
    """Near-copies of training images per cell (``bench --training``): share against scale, the table, the
    closest pairs side by side."""
    memo = data["memorization"]
    training = memo["training"]
    criterion = memo["criterion"]
    cells = [{**c, "metrics": {"copies": {"value": c["memorization"]["share"], "ci95": c["memorization"]["ci95"]}}}
             for c in data["cells"]]  # fmt: skip
    series, _ = _curves(cells, "scale", "copies")
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
            [c["label"], f"{m['count']} / {m['images']}", _with_ci({"value": m["share"], "ci95": m["ci95"]}),
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
        sections.append(_matched_section(data))
    if data.get("negative_pairs"):
        sections.append(_negative_section(data))
    if data.get("tuning"):
        sections.append(_tuning_section(data))
    if data.get("attributes"):
        sections.append(_attributes_section(data))
    if data.get("memorization"):
        sections.append(_memorization_section(data))
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
