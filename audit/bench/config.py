"""What a guidance benchmark runs: generator, schedules x scales, conditions, seeds, reference, extractor.

A config is plain data (JSON round trip), and its fingerprint decides whether a folder's finished cells
belong to it: ``--resume`` refuses a folder made with a different config rather than mixing runs.
Every cell uses the SAME conditions and seeds (image i: condition ``i mod len(conditions)``, seed
``seed + i``), so any two cells are a paired comparison.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from audit.errors import InputError
from audit.guidance import HEURISTICS, GuidanceSchedule, get_schedule

DEFAULT_SCALES = (0.5, 1.0, 2.0, 4.0)
BASELINE = {"name": "static", "scale": 0.0}
CELL_LIST_FIELDS = ("schedules", "scales", "baseline")  # w = 0: plain conditional sampling, shared by every schedule
# analyses of the cells' images that change no image and no metric: a finished run can gain them on --resume
ANALYSIS_FIELDS = ("training", "memorization", "pair_negative", "attributes", "tune")
# fields added after runs existed: left out of the fingerprint while unset, so those runs' cells stay valid
LATER_FIELDS = ("negative_weight",)


def parse_schedule(text: str) -> dict[str, Any]:
    """``"name"`` or ``"name:key=value,key=value"`` (``"clamp-linear:c=2"``); ``python:mod:fn`` as is."""
    if text.startswith("python:"):
        return {"name": text}
    name, _, rest = text.partition(":")
    params: dict[str, Any] = {"name": name}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"schedule {text!r}: parameters are key=value, got {item!r}")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            raise InputError(f"schedule {text!r}: {key} must be a number, got {value!r}") from None
    get_schedule(name, scale=1.0, **{k: v for k, v in params.items() if k != "name"})  # validates now
    return params


def parse_schedules(text: str) -> list[dict[str, Any]]:
    """:func:`parse_schedule`, with a grid: ``"clamp-linear:c=0.5|1|2"`` is three schedules (every
    combination when several parameters have several values), the candidates ``--tune`` chooses from."""
    if text.startswith("python:") or "|" not in text:
        return [parse_schedule(text)]
    name, _, rest = text.partition(":")
    items = [item.partition("=") for item in filter(None, rest.split(","))]
    grids = [[f"{key}={value}" for value in values.split("|")] for key, _, values in items]
    return [parse_schedule(f"{name}:{','.join(combo)}") for combo in itertools.product(*grids)]


@dataclass(frozen=True)
class BenchConfig:
    generator: str = "embedded:digits-ddpm"
    schedules: tuple[dict[str, Any], ...] = tuple({"name": n} for n in HEURISTICS)
    scales: tuple[float, ...] = DEFAULT_SCALES
    n: int = 500
    steps: int = 25
    seed: int = 0
    reference: str = "embedded:digits-heldout"
    extractor: str = "embedded"
    labels: tuple[int, ...] | None = tuple(range(10))
    prompts: tuple[str, ...] | None = None
    negative_prompt: str | None = None
    negative_weight: float | None = None  # None: diffusers' form; a number: the three-branch form's w_neg
    bootstrap: int = 100
    baseline: bool = True  # add the unguided cell (w = 0), the common origin of every curve
    options: dict[str, Any] = field(default_factory=dict)  # adapter options (device, dtype, batch size)
    training: str | None = None  # training images to look for near-copies of (audit.bench.memorization)
    memorization: dict[str, Any] = field(default_factory=dict)  # criterion and thresholds (Criteria's fields)
    pair_negative: bool = False  # every cell again without the negative prompt, same seeds, paired differences
    attributes: str | None = None  # faces[:BACKEND]: perceived gender and age of every generated image
    tune: bool = False  # choose parametrized schedules' parameters on other seeds (and prompts), report here

    def __post_init__(self) -> None:
        if (self.labels is None) == (self.prompts is None):
            raise InputError("a benchmark needs exactly one of labels (class-conditional) or prompts (text)")
        if self.negative_prompt is not None and self.prompts is None:
            raise InputError("a negative prompt needs text prompts")
        if (self.negative_weight is not None or self.pair_negative) and self.negative_prompt is None:
            raise InputError("a negative weight or --pair-negative needs a negative prompt")
        if self.negative_weight is not None and not math.isfinite(self.negative_weight):
            raise InputError(f"the negative weight must be finite, got {self.negative_weight}")
        if not self.schedules:
            raise InputError("a benchmark needs at least one schedule")
        if not self.scales or any(not math.isfinite(s) or s < 0 for s in self.scales):
            raise InputError(f"scales must be finite and >= 0, got {list(self.scales)}")
        if self.n < 20:
            raise InputError(f"n must be at least 20 images per cell for the metrics, got {self.n}")
        if self.steps < 1 or self.bootstrap < 0:
            raise InputError("steps must be >= 1 and bootstrap >= 0")
        if self.attributes is not None:
            from audit.bench.attributes import backend_of

            backend_of(self.attributes)  # an unknown backend is refused before any sampling
        if self.memorization:
            from audit.bench.memorization import Criteria

            Criteria.from_options(self.memorization)  # unknown keys or thresholds out of range: refused now

    def conditions(self) -> list[Any]:
        """Condition of every image: labels or prompts cycled to ``n``."""
        pool = list(self.labels if self.labels is not None else self.prompts)  # type: ignore[arg-type]
        return [pool[i % len(pool)] for i in range(self.n)]

    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.n)]

    def cells(self) -> list[GuidanceSchedule]:
        """Every (schedule, scale) cell, the baseline first; a user schedule is one cell (no scale)."""
        cells: list[GuidanceSchedule] = [get_schedule(**BASELINE)] if self.baseline else []
        for spec in self.schedules:
            params = {k: v for k, v in spec.items() if k != "name"}
            if spec["name"].startswith("python:"):
                cells.append(get_schedule(spec["name"]))
                continue
            cells.extend(get_schedule(spec["name"], scale=s, **params) for s in self.scales)
        seen: dict[str, GuidanceSchedule] = {}
        for cell in cells:  # e.g. an explicit static at 0.0 is the baseline
            seen.setdefault(json.dumps(cell.to_config(), sort_keys=True), cell)
        return list(seen.values())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("schedules", "scales", "labels", "prompts"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchConfig:
        d = dict(d)
        d["schedules"] = tuple(dict(s) for s in d["schedules"])
        d["scales"] = tuple(float(s) for s in d["scales"])
        for key in ("labels", "prompts"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def shared(self) -> dict[str, Any]:
        """Everything that changes a cell's images or metrics: the config less its list of cells and the
        analyses that read the images without changing them (:data:`ANALYSIS_FIELDS`)."""
        return {
            k: v
            for k, v in self.to_dict().items()
            if k not in CELL_LIST_FIELDS + ANALYSIS_FIELDS and not (k in LATER_FIELDS and v is None)
        }

    def fingerprint(self) -> str:
        """sha256 of :meth:`shared`: a folder's finished cells are reused only under the same one, and a
        run may add schedules or scales to a folder without redoing what is there."""
        return hashlib.sha256(json.dumps(self.shared(), sort_keys=True).encode()).hexdigest()

    def differences(self, other: dict[str, Any]) -> list[str]:
        """Readable ``field: stored -> now`` lines for the shared fields that differ from ``other``."""
        mine = self.shared()
        return [f"{k}: {other.get(k)!r} -> {mine[k]!r}" for k in mine if other.get(k) != mine[k]]


def cell_label(schedule_config: dict[str, Any]) -> str:
    """``linear @ 2``, ``clamp-linear(c=2) @ 4``; a schedule spec without a scale gives its name alone."""
    name = schedule_config["name"]
    params = {k: v for k, v in schedule_config.items() if k not in ("name", "scale")}
    if params:
        name += "(" + ", ".join(f"{k}={v:g}" for k, v in params.items()) + ")"
    return f"{name} @ {schedule_config['scale']:g}" if "scale" in schedule_config else name
