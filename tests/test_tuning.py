"""``bench --tune``: grids of parametrized schedules chosen on one split and reported on another."""

from __future__ import annotations

import json

import pytest

from audit.bench import BenchConfig, run_bench
from audit.bench.config import parse_schedules
from audit.bench.tuning import SEED_OFFSET, report, splits
from audit.errors import InputError


def test_a_grid_is_every_combination_of_its_values() -> None:
    assert parse_schedules("clamp-linear:c=0.5|1|2") == [
        {"name": "clamp-linear", "c": 0.5}, {"name": "clamp-linear", "c": 1.0}, {"name": "clamp-linear", "c": 2.0},
    ]  # fmt: skip
    assert len(parse_schedules("interval:start=0.1|0.2,end=0.8|0.9")) == 4
    assert parse_schedules("linear") == [{"name": "linear"}]
    with pytest.raises(InputError, match="must be a number"):
        parse_schedules("clamp-linear:c=1|x")


def test_splits_are_disjoint_in_seeds_and_prompts() -> None:
    config = BenchConfig(prompts=("a", "b", "c", "d", "e"), labels=None, tune=True)
    tune, held = splits(config)
    assert tune.prompts == ("a", "c", "e") and held.prompts == ("b", "d")
    assert set(tune.seeds()).isdisjoint(held.seeds()) and tune.seed == SEED_OFFSET
    with pytest.raises(InputError, match="at least two prompts"):
        splits(BenchConfig(prompts=("a",), labels=None, tune=True))


def _cell(label: str, name: str, scale: float, fid: float, draws: list[float]) -> dict:
    return {"label": label, "schedule": {"name": name, "scale": scale, "c": 0},
            "metrics": {"fid": {"value": fid}, "draws": {"fid": draws}}}  # fmt: skip


def test_the_choice_holds_when_not_significantly_worse_than_the_heldout_best() -> None:
    tune = [_cell("c=1", "clamp-linear", 2.0, 5.0, [5.0] * 4), _cell("c=2", "clamp-linear", 2.0, 6.0, [6.0] * 4)]
    close = [_cell("c=1", "clamp-linear", 2.0, 5.2, [5.0, 5.4, 5.1, 5.3]),
             _cell("c=2", "clamp-linear", 2.0, 5.1, [5.3, 5.0, 5.2, 5.0])]  # fmt: skip
    found = report(tune, close)
    (row,) = found["rows"]
    assert row["chosen"] == "c=1" and row["heldout_best"] == "c=2"
    assert row["chosen_minus_best"]["diff"] == pytest.approx(0.1)
    assert row["chosen_minus_best"]["verdict"] == "no difference"
    assert row["held"] and found["held"] == 1 and "Tuning held in 1 of 1" in found["sentence"]
    far = [_cell("c=1", "clamp-linear", 2.0, 7.0, [7.0, 7.1, 6.9, 7.0]),
           _cell("c=2", "clamp-linear", 2.0, 5.0, [5.0, 5.1, 4.9, 5.0])]  # fmt: skip
    missed = report(tune, far)
    assert not missed["rows"][0]["held"] and "did not hold for c=1 (held-out best c=2)" in missed["sentence"]
    assert "need not transfer" in missed["sentence"]


def test_bench_tune_runs_both_splits_and_reports_every_candidate(tmp_path) -> None:
    config = BenchConfig(
        schedules=tuple(parse_schedules("clamp-linear:c=0.5|3")), scales=(2.0,), n=130, steps=3, bootstrap=10,
        baseline=False, tune=True,
    )  # fmt: skip
    path = run_bench(config, tmp_path / "run", progress=False)
    data = json.loads(path.read_text())["data"]
    tuned = json.loads((tmp_path / "run" / "tune" / "bench-results.json").read_text())["data"]
    (row,) = data["tuning"]["rows"]
    tune_fid = {c["label"]: c["metrics"]["fid"]["value"] for c in tuned["cells"]}
    held_fid = {c["label"]: c["metrics"]["fid"]["value"] for c in data["cells"]}
    assert row["chosen"] == min(tune_fid, key=tune_fid.get) and row["heldout_best"] == min(held_fid, key=held_fid.get)
    assert {c["label"]: (c["tune_fid"], c["heldout_fid"]) for c in row["candidates"]} == {
        label: (tune_fid[label], held_fid[label]) for label in held_fid
    }
    manifest = (tmp_path / "run" / "tune" / "cells" / "clamp-linear_c=0.5" / "2.0" / "manifest.csv").read_text()
    assert manifest.splitlines()[1].split(",")[2] == str(SEED_OFFSET)  # the tuning split's first seed
