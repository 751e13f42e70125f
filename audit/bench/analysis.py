"""From scored cells to conclusions: Pareto front, paired differences to static guidance, the verdict
on increasing schedules, the winner, and where the distance metrics disagree.

Paired differences use the per-draw values of both cells: with the same seed and n every cell drew the
same resampling indices, so ``draws(cell) - draws(static)`` is a paired bootstrap of the difference
(same conditions, same noise seeds, same resample).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audit.bench.config import cell_label
from audit.guidance import SHAPES
from audit.metrics.evaluator import centred_interval

LOWER_IS_BETTER = ("fid", "kid", "fd_clip")  # the distances, which should agree on the cell closest to the data
HIGHER_IS_BETTER = (
    "clip_score",
    "class_adherence",
    "precision",
    "recall",
    "density",
    "coverage",
    "vendi",
    "inception_score",
)
DISTANCES = LOWER_IS_BETTER
GRID_IMAGES = 10
LABELS = {"fid": "FID", "kid": "KID", "fd_clip": "FD in CLIP space"}


def conditioning_metric(cells: list[dict[str, Any]]) -> str | None:
    """The prompt/class-adherence axis of the trade-off: CLIP-score, else class adherence."""
    metrics = cells[0]["metrics"]
    return next((m for m in ("clip_score", "class_adherence") if m in metrics), None)


def pareto_front(fid: list[float], quality: list[float]) -> list[int]:
    """Indices of cells no other cell beats on both lower FID and higher ``quality`` (sorted by FID)."""
    front = []
    for i, (f, q) in enumerate(zip(fid, quality, strict=True)):
        dominated = any(
            fj <= f and qj >= q and (fj < f or qj > q)
            for j, (fj, qj) in enumerate(zip(fid, quality, strict=True))
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: fid[i])


def paired_differences(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every guided non-static cell minus static guidance at the same scale (the same mean weight for
    the mean-normalised shapes), per metric: difference, 95% paired interval, and the verdict sign."""
    static = {c["schedule"]["scale"]: c for c in cells if c["schedule"]["name"] == "static"}
    out = []
    for cell in cells:
        sched = cell["schedule"]
        if sched["name"] == "static" or "scale" not in sched or sched["scale"] not in static:
            continue
        base = static[sched["scale"]]
        row = {"label": cell["label"], "schedule": sched, "against": base["label"]}
        out.append({**row, "metrics": metric_differences(cell["metrics"], base["metrics"])})
    return out


def metric_differences(metrics: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` minus ``base`` for every metric both resampled with the same draws: difference, 95%
    paired interval (the draws' differences, centred) and verdict (better / worse / no difference)."""
    out = {}
    for name, draws in metrics.get("draws", {}).items():
        base_draws = base.get("draws", {}).get(name)
        if base_draws is None or len(base_draws) != len(draws) or not draws:
            continue
        diff = metrics[name]["value"] - base[name]["value"]
        lo, hi = centred_interval(np.asarray(draws) - np.asarray(base_draws), diff)
        better = -1 if name in LOWER_IS_BETTER else 1
        significant = lo > 0 or hi < 0
        out[name] = {
            "diff": diff,
            "ci95": [lo, hi],
            "verdict": ("better" if np.sign(diff) == better else "worse") if significant else "no difference",
        }
    return out


def increasing_verdict(generator_id: str, paired: list[dict[str, Any]], cond: str | None) -> dict[str, Any]:
    """Do increasing schedules beat static guidance here? "Beat" = significantly lower FID at the same
    scale without a significantly worse conditioning metric (CLIP-score or class adherence)."""
    increasing = {name for name, spec in SHAPES.items() if spec.increasing}
    rows = [r for r in paired if r["schedule"]["name"] in increasing and "fid" in r["metrics"]]
    names = sorted({r["schedule"]["name"] for r in rows})
    if not rows:
        return {
            "answer": "not tested",
            "sentence": "No increasing schedule was compared with static guidance at the same scale, so this "
            "card cannot say whether increasing schedules beat static guidance.",
            "comparisons": 0,
        }

    def cond_worse(r: dict[str, Any]) -> bool:
        return cond is not None and r["metrics"].get(cond, {}).get("verdict") == "worse"

    beats = [r for r in rows if r["metrics"]["fid"]["verdict"] == "better" and not cond_worse(r)]
    worse = [r for r in rows if r["metrics"]["fid"]["verdict"] == "worse"]
    costly = [r for r in rows if r["metrics"]["fid"]["verdict"] == "better" and cond_worse(r)]
    k, m = len(beats), len(rows)
    fid_diffs = [r["metrics"]["fid"]["diff"] for r in beats]
    cond_name = {"clip_score": "CLIP-score", "class_adherence": "class adherence"}.get(cond or "", "")
    what = f"increasing schedules ({', '.join(names)})"
    detail = f" (FID lower by {-max(fid_diffs):.3g} to {-min(fid_diffs):.3g})" if fid_diffs else ""
    cost = f" without a significant loss of {cond_name}" if cond_name else ""
    if k == m:
        answer, lead = "yes", f"Yes: on {generator_id}, {what} beat static guidance in all {m} comparisons"
    elif 2 * k > m:
        answer, lead = "mostly", f"Mostly: on {generator_id}, {what} beat static guidance in {k} of {m} comparisons"
    elif k == 0 and not worse:
        answer = "no difference"
        lead = f"No clear difference: on {generator_id}, no increasing schedule beat static guidance in {m} comparisons"
    elif k and worse:
        answer, lead = "mixed", f"Mixed: on {generator_id}, {what} beat static guidance in {k} of {m} comparisons"
    else:
        answer, lead = "no", f"No: on {generator_id}, {what} beat static guidance in only {k} of {m} comparisons"
    sentence = lead + (detail + cost if k else "") + " at the same scale (95% paired intervals)."
    if worse:
        sentence += f" FID was significantly worse in {len(worse)} ({', '.join(r['label'] for r in worse)})."
    if costly:
        sentence += f" In {len(costly)} more, FID improved but {cond_name} fell significantly."
    return {
        "answer": answer,
        "sentence": sentence,
        "comparisons": m,
        "beats": [r["label"] for r in beats],
        "worse": [r["label"] for r in worse],
        "fid_better_but_conditioning_worse": [r["label"] for r in costly],
    }


def winner(cells: list[dict[str, Any]], front: list[int]) -> dict[str, Any]:
    """The schedule with the most cells on the Pareto front (ties: lower mean FID over its cells); the
    unguided baseline belongs to no schedule."""
    guided = [c for c in cells if c["schedule"].get("scale", 1.0) != 0.0]
    names = sorted({c["schedule"]["name"] for c in guided})
    if not names:
        return {}
    on_front = {n: 0 for n in names}
    for i in front:
        if cells[i] in guided:
            on_front[cells[i]["schedule"]["name"]] += 1
    mean_fid = {
        n: float(np.mean([c["metrics"]["fid"]["value"] for c in guided if c["schedule"]["name"] == n])) for n in names
    }
    best = min(names, key=lambda n: (-on_front[n], mean_fid[n]))
    return {
        "schedule": best,
        "rule": "most cells on the FID / conditioning Pareto front; ties broken by lower mean FID",
        "front_cells": on_front,
        "mean_fid": mean_fid,
    }


def _ranks(values: list[float]) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return ranks


def disagreements(cells: list[dict[str, Any]], paired: list[dict[str, Any]]) -> dict[str, Any]:
    """Where FID and the other distances (KID, FD in CLIP space) tell different stories."""
    present = [m for m in DISTANCES if all(m in c["metrics"] for c in cells)]
    best = {m: min(cells, key=lambda c: c["metrics"][m]["value"])["label"] for m in present}
    spearman = {}
    for m in present:
        if m != "fid" and len(cells) >= 3:
            a = _ranks([c["metrics"]["fid"]["value"] for c in cells])
            b = _ranks([c["metrics"][m]["value"] for c in cells])
            spearman[m] = float(np.corrcoef(a, b)[0, 1])
    opposite = []
    for r in paired:
        fid_v = r["metrics"].get("fid", {}).get("verdict")
        for m in present:
            other = r["metrics"].get(m, {}).get("verdict")
            if m != "fid" and {fid_v, other} == {"better", "worse"}:
                opposite.append({"cell": r["label"], "fid": fid_v, "metric": m, "verdict": other})
    notes = []
    for m in present:
        if m != "fid" and best[m] != best["fid"]:
            notes.append(f"FID ranks {best['fid']} best, {LABELS[m]} ranks {best[m]} best.")
    for m, rho in spearman.items():
        if rho < 0.8:
            notes.append(f"FID and {LABELS[m]} order the cells differently (Spearman rank correlation {rho:.2f}).")
    for o in opposite:
        notes.append(
            f"{o['cell']} vs static: FID says {o['fid']}, {LABELS[o['metric']]} says {o['verdict']} "
            "(both with 95% paired intervals excluding 0)."
        )
    return {"best_cell": best, "spearman_vs_fid": spearman, "opposite_paired_verdicts": opposite, "notes": notes}


def weight_curves(config: Any, points: int = 101) -> dict[str, Any]:
    """w(p) of every schedule at one scale (1.0 if swept, else the middle scale), on a fine grid."""
    from audit.guidance import get_schedule

    scales = list(config.scales)
    scale = 1.0 if 1.0 in scales else scales[len(scales) // 2]
    progress = np.linspace(0.0, 1.0, points)
    curves = {}
    for spec in config.schedules:
        params = {k: v for k, v in spec.items() if k != "name"}
        schedule = (
            get_schedule(spec["name"])
            if spec["name"].startswith("python:")
            else get_schedule(spec["name"], scale, **params)
        )
        try:
            curves[cell_label(spec)] = [round(schedule.weight(float(p)), 6) for p in progress]
        except ValueError:  # a noise-level interval needs the sampler's sigma: plot its applied steps only
            continue
    return {"scale": scale, "progress": [round(float(p), 4) for p in progress], "curves": curves}


def sample_grids(config: Any, cells: list[dict[str, Any]], cells_root: Any) -> list[dict[str, Any]]:
    """Per scale, one grid: a row per schedule, the same first images (same condition, same seed)."""
    from audit.bench.store import CellStore
    from audit.guidance import get_schedule
    from audit.io import load_image
    from audit.io.encode import image_grid, png_base64, thumbnail

    count = min(GRID_IMAGES, config.n)
    grids = []
    by_scale: dict[float, list[dict[str, Any]]] = {}
    baseline = [c for c in cells if c["schedule"].get("scale") == 0.0 and c["schedule"]["name"] == "static"]
    for c in cells:
        if "scale" in c["schedule"] and c["schedule"]["scale"] != 0.0:
            by_scale.setdefault(c["schedule"]["scale"], []).append(c)
    for scale, row_cells in sorted(by_scale.items()):
        rows = baseline + row_cells
        images = []
        for c in rows:
            store = CellStore(cells_root, get_schedule(**c["schedule"]))
            for i in range(count):
                images.append(thumbnail(load_image(store.images_dir / store.image_name(i)).image, 64))
        cell_px = 32 if max(im.shape[0] for im in images) <= 32 else 64
        grids.append(
            {
                "scale": scale,
                "rows": [c["label"] for c in rows],
                "png": png_base64(image_grid(images, columns=count, cell=cell_px)),
            }
        )
    return grids
