"""Classifier-free guidance weight schedules w(p).

Conventions (REFERENCE.md section 1):

* ``weight(progress)`` is in the paper convention of Wang et al. (TMLR 2024):
  ``eps = eps_c + w (eps_c - eps_u)``, so w = 0 is plain conditional sampling.
  ``guidance_scale(progress) = 1 + weight(progress)`` is diffusers' convention.
* ``progress`` p runs over [0, 1]: 0 is the first, noisiest sampling step, 1 the last.
* The heuristic shapes are scaled so their mean over p in [0, 1] equals ``scale`` (the static weight
  w0 they replace):

  =============  ==========================  =================
  name           w(p)                        mean over [0, 1]
  =============  ==========================  =================
  static         w0                          w0
  linear         2 w0 p                      w0
  invlinear      2 w0 (1 - p)                w0
  cosine         w0 (1 - cos(pi p))          w0
  sine           w0 (1 + cos(pi p))          w0
  v-shape        2 w0 |1 - 2p|               w0
  lambda-shape   2 w0 (1 - |1 - 2p|)         w0
  clamp-linear   max(c, 2 w0 p)              >= w0
  clamp-cosine   max(c, w0 (1 - cos(pi p)))  >= w0
  pcs            w0 (1 - cos(pi p^a)) / 2    w0 is the PEAK here
  interval       w0 inside the window else 0
  =============  ==========================  =================

  ``interval`` (Kynkaanniemi et al. 2024) applies guidance only inside a progress window
  ``[start, end]`` or, when ``sigma_lo``/``sigma_hi`` are given, only for noise levels in
  ``(sigma_lo, sigma_hi]`` (then the sampler must pass ``sigma``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audit.errors import InputError
from audit.plugins import load_callable

Shape = Callable[[float, float, dict[str, float]], float]


def _static(p: float, w0: float, _: dict[str, float]) -> float:
    return w0


def _linear(p: float, w0: float, _: dict[str, float]) -> float:
    return 2.0 * w0 * p


def _invlinear(p: float, w0: float, _: dict[str, float]) -> float:
    return 2.0 * w0 * (1.0 - p)


def _cosine(p: float, w0: float, _: dict[str, float]) -> float:
    return w0 * (1.0 - math.cos(math.pi * p))


def _sine(p: float, w0: float, _: dict[str, float]) -> float:
    return w0 * (1.0 + math.cos(math.pi * p))


def _v_shape(p: float, w0: float, _: dict[str, float]) -> float:
    return 2.0 * w0 * abs(1.0 - 2.0 * p)


def _lambda_shape(p: float, w0: float, _: dict[str, float]) -> float:
    return 2.0 * w0 * (1.0 - abs(1.0 - 2.0 * p))


def _clamp_linear(p: float, w0: float, params: dict[str, float]) -> float:
    return max(params["c"], _linear(p, w0, params))


def _clamp_cosine(p: float, w0: float, params: dict[str, float]) -> float:
    return max(params["c"], _cosine(p, w0, params))


def _pcs(p: float, w0: float, params: dict[str, float]) -> float:
    return w0 * (1.0 - math.cos(math.pi * p ** params["a"])) / 2.0


@dataclass(frozen=True)
class ShapeSpec:
    fn: Shape
    defaults: dict[str, float] = field(default_factory=dict)
    mean_is_scale: bool = True  # the shape is normalised so its mean over [0, 1] is ``scale``
    increasing: bool | None = None  # monotonic direction, where there is one


SHAPES: dict[str, ShapeSpec] = {
    "static": ShapeSpec(_static),
    "linear": ShapeSpec(_linear, increasing=True),
    "invlinear": ShapeSpec(_invlinear, increasing=False),
    "cosine": ShapeSpec(_cosine, increasing=True),
    "sine": ShapeSpec(_sine, increasing=False),
    "v-shape": ShapeSpec(_v_shape),
    "lambda-shape": ShapeSpec(_lambda_shape),
    # the slides' clamp example is clamp-linear with c = 1; tuned ports report c ~ 2 (SD1.5), 4 (SDXL)
    "clamp-linear": ShapeSpec(_clamp_linear, {"c": 1.0}, mean_is_scale=False, increasing=True),
    "clamp-cosine": ShapeSpec(_clamp_cosine, {"c": 1.0}, mean_is_scale=False, increasing=True),
    # reported tuned exponents: a = 1 (SD1.5), 0.1 (SDXL)
    "pcs": ShapeSpec(_pcs, {"a": 1.0}, mean_is_scale=False, increasing=True),
}
HEURISTICS = ("static", "linear", "invlinear", "cosine", "sine", "v-shape", "lambda-shape")


def _check_progress(progress: float) -> float:
    p = float(progress)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    return p


class GuidanceSchedule:
    """Base: subclasses implement :meth:`weight`; the diffusers scale and config follow from it."""

    name: str = ""
    scale: float = 0.0

    def weight(self, progress: float, sigma: float | None = None) -> float:
        raise NotImplementedError

    def guidance_scale(self, progress: float, sigma: float | None = None) -> float:
        """diffusers' convention: ``1 + weight`` (1 is plain conditional sampling)."""
        return 1.0 + self.weight(progress, sigma)

    def weights(self, steps: int) -> list[float]:
        """The weight at each of ``steps`` sampling steps, at progress ``i / (steps - 1)``."""
        return [self.weight(i / max(1, steps - 1)) for i in range(steps)]

    def to_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_config()})"


class ShapedSchedule(GuidanceSchedule):
    """One of the named shapes of :data:`SHAPES`."""

    def __init__(self, name: str, scale: float, params: dict[str, float]) -> None:
        spec = SHAPES[name]
        unknown = set(params) - set(spec.defaults)
        if unknown:
            raise InputError(f"schedule {name!r} takes no parameter {', '.join(sorted(unknown))}")
        self.name, self.scale = name, float(scale)
        self.params = {**spec.defaults, **{k: float(v) for k, v in params.items()}}
        if name == "pcs" and self.params["a"] <= 0:
            raise InputError("pcs exponent a must be > 0")
        self._fn = spec.fn

    def weight(self, progress: float, sigma: float | None = None) -> float:
        return self._fn(_check_progress(progress), self.scale, self.params)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "scale": self.scale, **self.params}


class IntervalSchedule(GuidanceSchedule):
    """Guidance ``scale`` inside a window, 0 outside: by progress ``[start, end]``, or by noise level
    ``(sigma_lo, sigma_hi]`` when those are given."""

    name = "interval"

    def __init__(
        self,
        scale: float,
        start: float = 0.2,
        end: float = 0.8,
        sigma_lo: float | None = None,
        sigma_hi: float | None = None,
    ) -> None:
        self.scale = float(scale)
        if not 0.0 <= start <= end <= 1.0:
            raise InputError(f"interval needs 0 <= start <= end <= 1, got start={start}, end={end}")
        if (sigma_lo is None) != (sigma_hi is None) or (sigma_lo is not None and not 0 <= sigma_lo < sigma_hi):
            raise InputError("interval by noise level needs both sigma_lo and sigma_hi, with 0 <= sigma_lo < sigma_hi")
        self.start, self.end = float(start), float(end)
        self.sigma_lo = None if sigma_lo is None else float(sigma_lo)
        self.sigma_hi = None if sigma_hi is None else float(sigma_hi)

    def weight(self, progress: float, sigma: float | None = None) -> float:
        p = _check_progress(progress)
        if self.sigma_lo is not None:
            if sigma is None:
                raise ValueError("this interval schedule is defined by noise level: the sampler must pass sigma")
            inside = self.sigma_lo < sigma <= self.sigma_hi
        else:
            inside = self.start <= p <= self.end
        return self.scale if inside else 0.0

    def to_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"name": self.name, "scale": self.scale}
        if self.sigma_lo is not None:
            cfg.update(sigma_lo=self.sigma_lo, sigma_hi=self.sigma_hi)
        else:
            cfg.update(start=self.start, end=self.end)
        return cfg


class CallableSchedule(GuidanceSchedule):
    """A user schedule: ``fn(progress) -> weight`` (paper convention), named for the config by
    ``"python:module:function"`` when it came from there."""

    def __init__(self, fn: Callable[[float], float], ref: str | None = None) -> None:
        self._fn = fn
        self.name = ref or f"python:{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
        self.scale = float("nan")

    def weight(self, progress: float, sigma: float | None = None) -> float:
        value = float(self._fn(_check_progress(progress)))
        if not math.isfinite(value):
            raise ValueError(f"schedule {self.name} returned {value} at progress {progress}")
        return value

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name}


def get_schedule(name: str | Callable[[float], float], scale: float = 1.0, **params: Any) -> GuidanceSchedule:
    """Create a schedule by name (see the module docstring), from ``"python:module:function"``, or from
    a callable ``progress -> weight``. ``get_schedule(**s.to_config())`` recreates ``s``."""
    if callable(name):
        return CallableSchedule(name)
    if not math.isfinite(float(scale)):
        raise InputError(f"guidance scale must be finite, got {scale}")
    if name.startswith("python:"):
        return CallableSchedule(load_callable(name, "schedule"), ref=name)
    if name == "interval":
        return IntervalSchedule(scale, **params)
    if name not in SHAPES:
        known = ", ".join([*SHAPES, "interval", "python:module:function"])
        raise InputError(f"unknown guidance schedule {name!r}; known: {known}")
    return ShapedSchedule(name, scale, params)


def parse_step_weights(text: Any, where: str) -> list[float]:
    """Per-step guidance weights written as a JSON list of finite numbers (a cell or folder manifest's
    ``step_weights``); anything else is one :class:`InputError` naming ``where``."""
    import json

    try:
        values = json.loads(text) if isinstance(text, str) else text
    except (json.JSONDecodeError, RecursionError):
        raise InputError(f"{where}: step_weights must be a JSON list of numbers, got {str(text)[:60]!r}") from None
    if not isinstance(values, list) or not values:
        raise InputError(f"{where}: step_weights must be a non-empty JSON list of numbers, got {str(text)[:60]!r}")
    weights = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"{where}: step_weights must be finite numbers, got {v!r}")
        weights.append(float(v))
    return weights
