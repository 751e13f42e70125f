"""The benchmark's results document (kind ``guidance-bench``): everything its card shows, with provenance."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from audit.bench import analysis
from audit.bench.config import BenchConfig
from audit.provenance import provenance

METRIC_LABELS = {
    "fid": "FID",
    "fd_clip": "FD (CLIP space)",
    "kid": "KID",
    "clip_score": "CLIP-score",
    "class_adherence": "class adherence",
    "precision": "precision",
    "recall": "recall",
    "density": "density",
    "coverage": "coverage",
    "vendi": "Vendi score",
    "inception_score": "IS",
}


def _models(obj: Any) -> list[dict[str, Any]]:
    return obj.models() if hasattr(obj, "models") else [{"id": obj.id, "sha256": None}]


def _face_models(attributes: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The face detector and attribute model of ``--attributes``, with their file hashes."""
    if not attributes:
        return []
    model = attributes["model"]
    return [{"id": f"faces:{model.get('backend')}", "model": model.get("model"), "sha256": model.get("sha256") or None,
             "licences": model.get("licences")}]  # fmt: skip


def _strip_draws(cell: dict[str, Any]) -> dict[str, Any]:
    metrics = {k: v for k, v in cell["metrics"].items() if k != "draws"}
    return {**{k: v for k, v in cell.items() if k not in ("metrics", "fingerprint")}, "metrics": metrics}


def _matched(cells: list[dict[str, Any]], paired: list[dict[str, Any]], cond: str | None) -> dict[str, Any]:
    """Static guidance against every schedule at the same adherence (audit.bench.matched): on the
    conditioning metric, and on class adherence too where it is not the conditioning metric and varies
    across cells (by more than 0.02)."""
    from audit.bench.matched import both_readings, matched_differences
    from audit.guidance import SHAPES

    increasing = {name for name, spec in SHAPES.items() if spec.increasing}

    axes = [cond] if cond else []
    if cond == "clip_score" and "class_adherence" in cells[0]["metrics"]:
        values = [c["metrics"]["class_adherence"]["value"] for c in cells]
        if max(values) - min(values) > 0.02:
            axes.append("class_adherence")
    out = {}
    for axis in axes:
        found = matched_differences(cells, axis)
        out[axis] = {**found, "readings": both_readings(paired, found, increasing)}
    return out


def build_results(
    config: BenchConfig,
    cells: list[dict[str, Any]],
    *,
    generator: Any,
    extractor: Any,
    reference_info: dict[str, Any],
    cells_root: Path,
    reference_kept: str | None = None,
    memorization: dict[str, Any] | None = None,
    negative_pairs: dict[str, Any] | None = None,
    attributes: dict[str, Any] | None = None,
    tuning: dict[str, Any] | None = None,
) -> dict[str, Any]:
    cond = analysis.conditioning_metric(cells)
    fid = [c["metrics"]["fid"]["value"] for c in cells]
    front = analysis.pareto_front(fid, [c["metrics"][cond]["value"] for c in cells]) if cond else []
    paired = analysis.paired_differences(cells)
    verdict = analysis.increasing_verdict(generator.id, paired, cond)
    matched = _matched(cells, paired, cond)
    for reading in matched.values():  # the same-scale reading first, then each same-adherence one
        verdict["sentence"] += " " + reading["readings"]["sentence"]
    win = analysis.winner(cells, front)
    best = min(cells, key=lambda c: c["metrics"]["fid"]["value"])
    headline: list[dict[str, Any]] = []
    if win:
        headline.append({"label": "winning schedule (Pareto front)", "value": win["schedule"], "format": "text"})
    headline.append(
        {"label": f"lowest FID ({best['label']})", "value": best["metrics"]["fid"]["value"], "format": "float3"}
    )
    headline.append({"label": "increasing schedules beat static?", "value": verdict["answer"], "format": "text"})
    headline.append({"label": "cells x images", "value": f"{len(cells)} x {config.n}", "format": "text"})
    slug = re.sub(r"[^a-z0-9]+", "-", generator.id.lower()).strip("-")[:60]
    return {
        "schema": "genaudit.results/1",
        "kind": "guidance-bench",
        "id": f"guidance-bench-{slug}",
        "title": f"Guidance schedules on {generator.id}",
        "headline": headline,
        "provenance": provenance(
            command=" ".join(["genaudit", *sys.argv[1:]])
            if sys.argv and "genaudit" in sys.argv[0]
            else "audit.bench.run_bench",
            config=config.to_dict(),
            seeds={"first_image_seed": config.seed, "resampling": config.seed},
            models=_models(generator) + _models(extractor) + _face_models(attributes),
            preprocessing={
                "extractor": extractor.id,
                "reference": reference_info,
                "reference_features": reference_kept,
            },
        ),
        "data": {
            "generator": generator.id,
            "extractor": extractor.id,
            "reference": reference_info,
            "n": config.n,
            "steps": config.steps,
            "bootstrap": config.bootstrap,
            "conditioning_metric": cond,
            "metric_labels": METRIC_LABELS,
            "lower_is_better": list(analysis.LOWER_IS_BETTER),
            "higher_is_better": list(analysis.HIGHER_IS_BETTER),
            "cells": [_strip_draws(c) for c in cells],
            "pareto_front": [cells[i]["label"] for i in front],
            "paired_vs_static": paired,
            "matched_vs_static": matched,
            "verdict": verdict,
            "winner": win,
            "disagreements": analysis.disagreements(cells, paired),
            "weight_curves": analysis.weight_curves(config),
            "grids": analysis.sample_grids(config, cells, cells_root),
            "memorization": memorization,
            "negative_pairs": negative_pairs,
            "attributes": attributes,
            "tuning": tuning,
        },
    }
