"""Schedules against static guidance at the same adherence: interpolation and paired intervals by hand."""

from __future__ import annotations

import numpy as np
import pytest

from audit.bench.matched import both_readings, matched_differences

# static guidance's curve: (scale, CLIP-score, FID); the dip at w = 2 is skipped (not on the rising part)
STATIC = [(0.0, 0.20, 10.0), (1.0, 0.30, 8.0), (2.0, 0.28, 9.5), (4.0, 0.50, 9.0)]
DELTA = np.array([0.0, 0.4, -0.4, 0.2, -0.2, 0.1])  # draw b moves every static FID by DELTA[b]
EPS = np.array([0.3, -0.3, 0.0, 0.6, -0.6, 0.1])  # ... and the linear cell's FID by EPS[b]


def _cell(name: str, scale: float, clip: float, fid: float, fid_shift: np.ndarray) -> dict:
    return {
        "label": f"{name} @ {scale:g}",
        "schedule": {"name": name, "scale": scale},
        "metrics": {
            "fid": {"value": fid},
            "clip_score": {"value": clip},
            "draws": {"fid": list(fid + fid_shift), "clip_score": [clip] * len(fid_shift)},
        },
    }


def cells() -> list[dict]:
    return [_cell("static", w, a, f, DELTA) for w, a, f in STATIC] + [
        _cell("linear", 2.0, 0.40, 6.0, EPS),  # static at CLIP 0.40: halfway from (0.30, 8) to (0.50, 9) = 8.5
        _cell("cosine", 4.0, 0.60, 5.0, EPS),  # beyond static's highest CLIP-score (0.50): not compared
    ]


def test_fid_at_the_same_clip_score_is_interpolated_on_static_curve_with_paired_intervals() -> None:
    found = matched_differences(cells(), "clip_score")
    assert found["range"] == [0.2, 0.5]
    (row,) = found["rows"]
    assert row["label"] == "linear @ 2" and row["static_fid"] == pytest.approx(8.5)
    assert row["diff"] == pytest.approx(-2.5)
    diffs = (6.0 + EPS) - (8.5 + DELTA)  # draw b: the cell's FID minus static's curve, both from draw b
    lo, hi = np.percentile(diffs, [2.5, 97.5]) + (-2.5 - diffs.mean())
    assert row["ci95"] == pytest.approx([lo, hi]) and row["draws_inside"] == 1.0
    assert row["verdict"] == "better"  # the whole interval is below 0
    assert found["outside"] == [{"label": "cosine @ 4", "adherence": 0.6}]


def test_both_readings_name_the_cells_where_they_disagree() -> None:
    found = matched_differences(cells(), "clip_score")
    paired = [{"label": "linear @ 2", "metrics": {"fid": {"verdict": "no difference"}}}]
    readings = both_readings(paired, found, increasing={"linear"})
    assert readings["better"] == ["linear @ 2"] and readings["compared"] == 1
    assert "(increasing schedules: better in 1 of 1)" in readings["sentence"]
    assert readings["disagree"] == [{"label": "linear @ 2", "same_scale": "no difference", "same_adherence": "better"}]
    assert "beat static guidance in 1 of 1 comparisons" in readings["sentence"]
    assert "linear @ 2: no difference at the same scale, better at the same CLIP-score" in readings["sentence"]
    assert "outside static's range of CLIP-score and are not compared: cosine @ 4" in readings["sentence"]


def test_draws_outside_static_range_are_dropped_and_too_many_give_no_interval() -> None:
    near_top = cells()
    linear = near_top[4]
    linear["metrics"]["clip_score"]["value"] = 0.49
    linear["metrics"]["draws"]["clip_score"] = [0.49, 0.55, 0.49, 0.49, 0.49, 0.49]  # one draw beyond 0.50
    found = matched_differences(near_top, "clip_score")
    (row,) = found["rows"]
    assert row["draws_inside"] == pytest.approx(5 / 6)
    assert row["ci95"] is None and row["verdict"] == "no interval"  # 83% inside, under the 90% needed
    readings = both_readings([], found)
    assert readings["no_interval"] == ["linear @ 2"] and readings["compared"] == 0
    assert "1 cell(s) have no interval (more than 10% of their resampling draws" in readings["sentence"]
