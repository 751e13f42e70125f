"""Guidance schedules: every shape against its formula worked by hand, means, conventions, configs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from audit.errors import InputError
from audit.guidance import HEURISTICS, SHAPES, get_schedule

W0 = 3.0

# (name, params, {progress: expected weight}) worked by hand from REFERENCE.md's table with w0 = 3
HAND = [
    ("static", {}, {0.0: 3.0, 0.5: 3.0, 1.0: 3.0}),
    ("linear", {}, {0.0: 0.0, 0.25: 1.5, 0.5: 3.0, 1.0: 6.0}),
    ("invlinear", {}, {0.0: 6.0, 0.25: 4.5, 1.0: 0.0}),
    ("cosine", {}, {0.0: 0.0, 0.5: 3.0, 1.0: 6.0, 1 / 3: 1.5}),  # cos(pi/3) = 1/2
    ("sine", {}, {0.0: 6.0, 0.5: 3.0, 1.0: 0.0, 1 / 3: 4.5}),
    ("v-shape", {}, {0.0: 6.0, 0.25: 3.0, 0.5: 0.0, 0.75: 3.0, 1.0: 6.0}),
    ("lambda-shape", {}, {0.0: 0.0, 0.25: 3.0, 0.5: 6.0, 0.75: 3.0, 1.0: 0.0}),
    ("clamp-linear", {"c": 2.0}, {0.0: 2.0, 0.25: 2.0, 0.5: 3.0, 1.0: 6.0}),
    ("clamp-cosine", {"c": 1.5}, {0.0: 1.5, 1 / 3: 1.5, 0.5: 3.0, 1.0: 6.0}),
    ("pcs", {"a": 1.0}, {0.0: 0.0, 0.5: 1.5, 1.0: 3.0}),
    ("pcs", {"a": 0.5}, {0.25: 1.5, 1.0: 3.0}),  # 0.25 ** 0.5 = 0.5 -> (1 - cos(pi / 2)) / 2 * 3
    ("interval", {"start": 0.25, "end": 0.5}, {0.0: 0.0, 0.25: 3.0, 0.4: 3.0, 0.5: 3.0, 0.51: 0.0, 1.0: 0.0}),
]


@pytest.mark.parametrize(("name", "params", "points"), HAND, ids=[f"{n}-{p}" for n, p, _ in HAND])
def test_shapes_match_the_formulas_by_hand(name: str, params: dict, points: dict) -> None:
    s = get_schedule(name, scale=W0, **params)
    for p, expected in points.items():
        assert s.weight(p) == pytest.approx(expected, abs=1e-12), (name, p)
        assert s.guidance_scale(p) == pytest.approx(1.0 + expected, abs=1e-12)


@pytest.mark.parametrize("name", HEURISTICS)
def test_heuristic_means_equal_the_scale(name: str) -> None:
    s = get_schedule(name, scale=W0)
    grid = (np.arange(200_000) + 0.5) / 200_000  # midpoint rule over [0, 1]
    assert np.mean([s.weight(p) for p in grid]) == pytest.approx(W0, rel=1e-6)


def test_parametrized_means() -> None:
    grid = (np.arange(100_000) + 0.5) / 100_000
    # clamp raises the mean above w0: with c = 2 and w0 = 3, linear is below 2 for p < 1/3,
    # so mean = 2 * (1/3) + integral_{1/3}^{1} 6p dp = 2/3 + 3 (1 - 1/9) = 3.3333...
    clamp = get_schedule("clamp-linear", scale=3.0, c=2.0)
    assert np.mean([clamp.weight(p) for p in grid]) == pytest.approx(2 / 3 + 3 * (1 - 1 / 9), rel=1e-6)
    # pcs with a = 1 is half the cosine schedule: mean w0 / 2
    pcs = get_schedule("pcs", scale=3.0, a=1.0)
    assert np.mean([pcs.weight(p) for p in grid]) == pytest.approx(1.5, rel=1e-6)


def test_declared_directions_hold() -> None:
    grid = np.linspace(0, 1, 101)
    directions = {name: spec.increasing for name, spec in SHAPES.items() if spec.increasing is not None}
    assert directions == {
        "linear": True, "invlinear": False, "cosine": True, "sine": False,
        "clamp-linear": True, "clamp-cosine": True, "pcs": True,
    }  # fmt: skip
    for name, increasing in directions.items():
        w = [get_schedule(name, scale=2.0).weight(p) for p in grid]
        pairs = list(itertools.pairwise(w))
        assert all((b >= a) if increasing else (b <= a) for a, b in pairs), name
        assert w[-1] != w[0], name


def test_weights_below_one_in_diffusers_convention_are_kept() -> None:
    s = get_schedule("linear", scale=0.5)
    assert s.guidance_scale(0.0) == 1.0 and s.guidance_scale(0.25) == 1.25
    neg = get_schedule("static", scale=-0.5)  # diffusers scale 0.5: between unconditional and conditional
    assert neg.guidance_scale(0.3) == 0.5


def test_per_step_weights() -> None:
    assert get_schedule("linear", scale=1.0).weights(5) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert get_schedule("static", scale=2.0).weights(1) == [2.0]


@pytest.mark.parametrize(
    "config",
    [
        {"name": "cosine", "scale": 2.0},
        {"name": "clamp-cosine", "scale": 4.0, "c": 2.0},
        {"name": "pcs", "scale": 7.5, "a": 0.1},
        {"name": "interval", "scale": 2.0, "start": 0.1, "end": 0.6},
        {"name": "interval", "scale": 2.0, "sigma_lo": 0.28, "sigma_hi": 5.42},
    ],
)
def test_config_round_trips(config: dict) -> None:
    s = get_schedule(**config)
    assert s.to_config() == config
    again = get_schedule(**s.to_config())
    for p in np.linspace(0, 1, 11):
        sigma = 10 * (1 - p) + 0.01
        assert again.weight(p, sigma) == s.weight(p, sigma)


def test_interval_by_noise_level() -> None:
    s = get_schedule("interval", scale=2.0, sigma_lo=0.28, sigma_hi=5.42)
    assert s.weight(0.0, sigma=80.0) == 0.0  # too noisy
    assert s.weight(0.5, sigma=5.42) == 2.0  # upper bound included
    assert s.weight(0.9, sigma=0.28) == 0.0  # lower bound excluded
    with pytest.raises(ValueError, match="must pass sigma"):
        s.weight(0.5)


def test_user_schedules() -> None:
    s = get_schedule(lambda p: 4.0 * p * p)
    assert s.weight(0.5) == 1.0 and s.guidance_scale(1.0) == 5.0
    by_ref = get_schedule("python:math:sqrt")
    assert by_ref.weight(0.25) == 0.5 and by_ref.to_config() == {"name": "python:math:sqrt"}
    assert get_schedule(**by_ref.to_config()).weight(0.64) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="returned nan"):
        get_schedule(lambda p: math.nan).weight(0.5)


def test_bad_requests_are_clear_errors() -> None:
    with pytest.raises(InputError, match="unknown guidance schedule 'cosin'"):
        get_schedule("cosin")
    with pytest.raises(InputError, match="takes no parameter c"):
        get_schedule("linear", c=1.0)
    with pytest.raises(InputError, match="cannot load schedule"):
        get_schedule("python:no_such_module_xyz:f")
    with pytest.raises(InputError, match="start <= end"):
        get_schedule("interval", start=0.8, end=0.2)
    with pytest.raises(InputError, match="both sigma_lo and sigma_hi"):
        get_schedule("interval", sigma_lo=0.3)
    with pytest.raises(InputError, match="finite"):
        get_schedule("static", scale=math.inf)
    with pytest.raises(ValueError, match=r"progress must be in \[0, 1\]"):
        get_schedule("linear").weight(1.5)
