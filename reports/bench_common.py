"""What the guidance-bench card's sections share: numbers with intervals, and a schedule's curve."""

from __future__ import annotations

from typing import Any

DIFF_METRICS = ("fid", "kid", "clip_score", "class_adherence", "recall", "coverage", "vendi")


def with_ci(m: dict[str, Any] | None) -> str:
    if not m:
        return "n/a"
    value = m.get("value", m.get("diff"))
    text = num(value)
    if m.get("ci95"):
        lo, hi = m["ci95"]
        text += f" [{num(lo)}, {num(hi)}]"
    return text


def num(v: float) -> str:
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def ci(m: dict[str, Any]) -> tuple[float, float] | None:
    return tuple(m["ci95"]) if m.get("ci95") else None  # type: ignore[return-value]


def curves(
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
                None if x_metric == "scale" else ci(c["metrics"][x_metric]),
                ci(c["metrics"][y_metric]),
            )
            for c in run
        ]
        notes[label] = [f"w={c['schedule']['scale']:g}" if "scale" in c["schedule"] else "" for c in run]
    return series, notes
