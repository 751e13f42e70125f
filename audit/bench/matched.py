"""Schedules against static guidance at the same adherence, not only at the same scale.

Guidance scales are not comparable across schedules (a schedule at mean weight 2 need not adhere to the
prompt as static guidance at 2 does), so Wang et al. (TMLR 2024) read their curves at the same
CLIP-score. For each guided cell of a schedule, static guidance's FID at that cell's adherence is
interpolated linearly along static's own curve (its cells ordered by scale, from the unguided cell up to
the scale where its adherence peaks), and the difference is the cell's FID minus that. Its 95% interval
comes from the paired resampling draws: in draw b every cell's FID and adherence are taken from draw b
(all cells were resampled with the same indices), static's curve is interpolated at the cell's draw-b
adherence, and the differences' percentiles are centred on the point estimate. A cell whose adherence lies
outside static's range is reported as such, not extrapolated; draws outside it are dropped and counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audit.metrics.evaluator import centred_interval

MIN_DRAWS_INSIDE = 0.9  # an interval needs at least this share of draws inside static's adherence range


def _static_curve(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Static guidance's cells (the unguided one first) by scale."""
    static = [c for c in cells if c["schedule"]["name"] == "static" and "scale" in c["schedule"]]
    return sorted(static, key=lambda c: c["schedule"]["scale"])


def _interpolate(a: np.ndarray, f: np.ndarray, at: float) -> float | None:
    """FID on the curve (points by scale: adherence ``a``, FID ``f``) at adherence ``at``, along its rising
    part: from the first point, each point that adheres more than every one before it, up to the highest;
    None outside that range (never extrapolated)."""
    keep = [0]
    for i in range(1, len(a)):
        if a[i] > a[keep[-1]]:
            keep.append(i)
    a, f = a[keep], f[keep]
    if at < a[0] or at > a[-1]:
        return None
    return float(np.interp(at, a, f))


def matched_differences(cells: list[dict[str, Any]], adherence: str) -> dict[str, Any]:
    """Every guided non-static cell against static guidance interpolated at the cell's ``adherence``
    (``clip_score`` or ``class_adherence``): FID difference, 95% paired interval, verdict; the static
    range; and the cells outside it."""
    static = _static_curve(cells)
    if len(static) < 2 or any(adherence not in c["metrics"] or "fid" not in c["metrics"] for c in static):
        return {"adherence": adherence, "rows": [], "outside": [], "range": None}
    s_a = np.array([c["metrics"][adherence]["value"] for c in static])
    s_f = np.array([c["metrics"]["fid"]["value"] for c in static])
    s_draws_a = [c["metrics"].get("draws", {}).get(adherence) for c in static]
    s_draws_f = [c["metrics"].get("draws", {}).get("fid") for c in static]
    rows, outside = [], []
    for cell in cells:
        sched = cell["schedule"]
        if sched["name"] == "static" or sched.get("scale", 1.0) == 0.0 or adherence not in cell["metrics"]:
            continue
        at = cell["metrics"][adherence]["value"]
        base = _interpolate(s_a, s_f, at)
        if base is None:
            outside.append({"label": cell["label"], "adherence": at})
            continue
        diff = cell["metrics"]["fid"]["value"] - base
        row = {"label": cell["label"], "schedule": sched, "adherence": at, "static_fid": base, "diff": diff,
               "ci95": None, "draws_inside": None, "verdict": "no interval"}  # fmt: skip
        draws_a = cell["metrics"].get("draws", {}).get(adherence)
        draws_f = cell["metrics"].get("draws", {}).get("fid")
        if draws_a and draws_f and all(d is not None and len(d) == len(draws_a) for d in s_draws_a + s_draws_f):
            diffs = []
            for b in range(len(draws_a)):
                curve_a = np.array([d[b] for d in s_draws_a])
                curve_f = np.array([d[b] for d in s_draws_f])
                interpolated = _interpolate(curve_a, curve_f, draws_a[b])
                if interpolated is not None:
                    diffs.append(draws_f[b] - interpolated)
            row["draws_inside"] = len(diffs) / len(draws_a)
            if len(diffs) >= MIN_DRAWS_INSIDE * len(draws_a) and len(diffs) >= 2:
                lo, hi = centred_interval(np.asarray(diffs), diff)
                row["ci95"] = [lo, hi]
                row["verdict"] = ("better" if diff < 0 else "worse") if (lo > 0 or hi < 0) else "no difference"
        rows.append(row)
    return {"adherence": adherence, "rows": rows, "outside": outside, "range": [float(s_a.min()), float(s_a.max())]}


def both_readings(
    paired: list[dict[str, Any]], matched: dict[str, Any], increasing: set[str] | None = None
) -> dict[str, Any]:
    """The same-scale and the same-adherence verdicts on FID side by side, the cells where they disagree, and
    a sentence saying both (with the ``increasing`` schedules' count, the same-scale verdict's subject)."""
    names = {"clip_score": "CLIP-score", "class_adherence": "class adherence"}
    what = names.get(matched["adherence"], matched["adherence"])
    same_scale = {r["label"]: r["metrics"]["fid"]["verdict"] for r in paired if "fid" in r["metrics"]}
    rows = [r for r in matched["rows"] if r["verdict"] != "no interval"]
    disagree = [
        {"label": r["label"], "same_scale": same_scale[r["label"]], "same_adherence": r["verdict"]}
        for r in rows
        if r["label"] in same_scale and same_scale[r["label"]] != r["verdict"]
    ]
    better = [r["label"] for r in rows if r["verdict"] == "better"]
    worse = [r["label"] for r in rows if r["verdict"] == "worse"]
    if not rows:
        sentence = (f"At the same {what}, no schedule could be compared with static guidance (no cell within static's "
                    f"range of {what} with enough resampling draws inside it).")  # fmt: skip
    else:
        sentence = (f"At the same {what} (static's FID interpolated along its curve), schedules beat static guidance "
                    f"in {len(better)} of {len(rows)} comparisons and were worse in {len(worse)}")  # fmt: skip
        rising = [r for r in rows if r["schedule"]["name"] in (increasing or set())]
        if rising:
            wins = sum(r["verdict"] == "better" for r in rising)
            sentence += f" (increasing schedules: better in {wins} of {len(rising)})"
        sentence += "."
        if disagree:
            listed = "; ".join(f"{d['label']}: {d['same_scale']} at the same scale, {d['same_adherence']} at the "
                               f"same {what}" for d in disagree)  # fmt: skip
            sentence += f" The two readings disagree for {len(disagree)}: {listed}."
        else:
            sentence += " The two readings agree on every cell compared both ways."
    unsure = [r["label"] for r in matched["rows"] if r["verdict"] == "no interval" and r["draws_inside"] is not None]
    if unsure:
        sentence += (f" {len(unsure)} cell(s) have no interval (more than {1 - MIN_DRAWS_INSIDE:.0%} of their "
                     f"resampling draws fall beyond static's range of {what}): " + ", ".join(unsure) + ".")  # fmt: skip
    if matched["outside"]:
        sentence += (f" {len(matched['outside'])} cell(s) lie outside static's range of {what} and are not compared: "
                     + ", ".join(o["label"] for o in matched["outside"]) + ".")  # fmt: skip
    return {"adherence": matched["adherence"], "better": better, "worse": worse, "disagree": disagree,
            "compared": len(rows), "no_interval": unsure, "sentence": sentence}  # fmt: skip
