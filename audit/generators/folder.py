"""``folder:<dir>``: images generated elsewhere, one folder per schedule and scale.

Layout::

    DIR/<schedule>/<scale>/manifest.csv     columns: path, seed, and label or prompt
                                            (optional: negative_prompt, step_weights as a JSON list)

``<schedule>`` is the schedule's name followed by its parameters (``clamp-linear_c=2.0``; see
:func:`cell_folder`), ``<scale>`` the scale as a float (``1.0``, ``7.5``). Images are matched to the
request by (condition, seed) and read through genaudit's loader; manifest paths must stay inside their
folder. A missing or unreadable image is an error naming it: a benchmark must not silently score
fewer images than it asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from audit.errors import InputError
from audit.generators.base import GenerationRequest, ImageBatch
from audit.guidance import GuidanceSchedule
from audit.guidance.schedules import parse_step_weights
from audit.io import load_image, manifest_source


def cell_folder(schedule: GuidanceSchedule) -> Path:
    """``<schedule>/<scale>`` for a schedule: e.g. ``static/1.0``, ``clamp-linear_c=2.0/4.0``."""
    config = schedule.to_config()
    params = "".join(f"_{k}={float(v)}" for k, v in config.items() if k not in ("name", "scale"))
    name = config["name"].replace(":", "_").replace("/", "_")
    return Path(f"{name}{params}") / str(float(config.get("scale", float("nan"))))


class FolderGenerator:
    conditioning = "any"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"generator folder not found: {self.root}")
        self.id = f"folder:{self.root}"

    def generate(self, request: GenerationRequest) -> ImageBatch:
        manifest = self.root / cell_folder(request.schedule) / "manifest.csv"
        if not manifest.is_file():
            raise InputError(f"{self.id}: no images for schedule {request.schedule.to_config()} (expected {manifest})")
        key = "label" if request.labels is not None else "prompt"
        index: dict[tuple[str, int], Any] = {}
        for record in manifest_source(manifest):
            if record.refusal == "manifest_error" or "seed" not in record.extra:
                continue
            cond = record.label if key == "label" else record.caption or record.extra.get("prompt")
            try:
                seed = int(record.extra["seed"])
            except (TypeError, ValueError):
                raise InputError(
                    f"{manifest}: {record.relpath}: seed {record.extra['seed']!r} is not an integer"
                ) from None
            if record.extra.get("step_weights"):  # checked now, not after every image is loaded
                record.extra["step_weights"] = parse_step_weights(
                    record.extra["step_weights"], f"{manifest}: {record.relpath}"
                )
            index[(str(cond), seed)] = record
        images, weights, problems = [], None, []
        for cond, seed in zip(request.conditions(), request.seeds, strict=True):
            record = index.get((str(cond), int(seed)))
            if record is None:
                problems.append(f"{key}={cond!r} seed={seed}: not in the manifest")
                continue
            if record.refusal is not None:
                problems.append(f"{record.relpath}: {record.refusal} ({record.refusal_message})")
                continue
            result = load_image(record.path)
            if not result.ok:
                problems.append(f"{record.relpath}: {result.reason} ({result.message})")
                continue
            images.append(result.image)
            if weights is None and record.extra.get("step_weights"):
                weights = record.extra["step_weights"]
        if problems:
            shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
            raise InputError(f"{self.id}: {len(problems)} of {len(request)} requested images unusable: {shown}")
        sizes = {im.shape for im in images}
        if len(sizes) > 1:
            raise InputError(f"{self.id}: images in {manifest.parent} differ in size: {sorted(sizes)}")
        return ImageBatch(
            images=np.stack(images),
            request=request,
            step_weights=weights if weights is not None else request.schedule.weights(request.steps),
            generator_id=self.id,
            info={
                "step_weights": "from the manifest" if weights is not None else "requested",
                "folder": str(manifest.parent),
            },
        )
