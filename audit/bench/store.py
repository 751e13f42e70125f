"""One benchmark cell on disk: its images, manifest and metrics, in the ``folder:`` generator's layout.

::

    OUT/cells/<schedule>/<scale>/images/00000.png ...   written one by one as generated (atomic renames)
    OUT/cells/<schedule>/<scale>/manifest.csv           written last: the cell's images are complete
    OUT/cells/<schedule>/<scale>/metrics.json           written after scoring: the cell is finished

So a killed run loses at most the images in flight: ``--resume`` keeps every image already on disk
(each image depends only on its condition and seed), writes the manifest once all are there, and
re-scores only cells without ``metrics.json``. ``OUT/cells`` is itself a valid ``folder:`` generator.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from audit.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from audit.errors import InputError
from audit.generators.folder import cell_folder
from audit.guidance import GuidanceSchedule
from audit.io import load_image


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


class CellStore:
    """Files of one (schedule, scale) cell under ``root``."""

    def __init__(self, root: str | Path, schedule: GuidanceSchedule) -> None:
        self.schedule = schedule
        self.dir = Path(root) / cell_folder(schedule)
        self.images_dir = self.dir / "images"
        self.manifest = self.dir / "manifest.csv"
        self.metrics_path = self.dir / "metrics.json"
        self.weights_path = self.dir / "step-weights.json"  # what a shard's sampler applied (the same for every image)

    @staticmethod
    def image_name(index: int) -> str:
        return f"{index:05d}.png"

    def missing(self, n: int) -> list[int]:
        """Indices of images not yet on disk (a valid PNG counts; a damaged one is regenerated)."""
        return [i for i in range(n) if not self.has_image(i)]

    def has_image(self, index: int) -> bool:
        """Image ``index`` is on disk and whole (a damaged one is regenerated): PIL's ``verify`` checks every
        PNG chunk's CRC and the end marker without decoding the pixels, a quarter of a full load's time, which
        the merge would otherwise pay for every image before reading it again. Our PNGs are written
        atomically, so what it has to catch is a file cut or overwritten after the fact."""
        from PIL import Image

        path = self.images_dir / self.image_name(index)
        if not path.is_file():
            return False
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            return False
        return True

    def write_images(self, indices: list[int], images: np.ndarray) -> None:
        for i, image in zip(indices, images, strict=True):
            write_bytes_atomic(self.images_dir / self.image_name(i), _png_bytes(image), fsync=False)

    def write_manifest(self, conditions: list[Any], seeds: list[int], key: str, extra: dict[str, Any]) -> None:
        """One row per image (path, condition, seed, negative prompt, schedule, step weights; the negative
        weight where the three-branch form was used)."""
        buf = io.StringIO()
        fields = ["path", key, "seed", "negative_prompt", "schedule", "steps", "step_weights"]
        if "negative_weight" in extra:  # the three-branch form's w_neg, applied at every step
            fields.append("negative_weight")
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        schedule = json.dumps(self.schedule.to_config(), sort_keys=True)
        weights = json.dumps(extra["step_weights"])
        for i, (cond, seed) in enumerate(zip(conditions, seeds, strict=True)):
            writer.writerow(
                {
                    "path": f"images/{self.image_name(i)}",
                    key: cond,
                    "seed": seed,
                    "negative_prompt": extra.get("negative_prompt") or "",
                    "schedule": schedule,
                    "steps": extra["steps"],
                    "step_weights": weights,
                    **({"negative_weight": extra["negative_weight"]} if "negative_weight" in extra else {}),
                }
            )
        write_text_atomic(self.manifest, buf.getvalue())

    def step_weights(self) -> list[float]:
        from audit.guidance.schedules import parse_step_weights

        with self.manifest.open(newline="", encoding="utf-8", errors="surrogateescape") as fh:
            row = next(csv.DictReader(fh), None)
        if row is None or "step_weights" not in row:
            raise InputError(f"{self.manifest}: no step_weights row; delete the cell folder to regenerate it")
        return parse_step_weights(row["step_weights"], str(self.manifest))

    def write_step_weights(self, weights: list[float]) -> None:
        """Keep the weights a shard's sampler applied, so the merge need not load the generator to learn
        them (every shard writes the same bytes)."""
        write_json_atomic(self.weights_path, [float(w) for w in weights])

    def stored_step_weights(self) -> list[float] | None:
        """The weights a shard kept, or None (none kept, or a damaged file: the generator is asked)."""
        try:
            weights = json.loads(self.weights_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        ok = isinstance(weights, list) and all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights)
        return [float(w) for w in weights] if ok and weights else None

    def read_images(self, n: int, indices: Any = None) -> np.ndarray:
        """The cell's n images (or those at ``indices``), in index order, through genaudit's loader."""
        images = []
        for i in range(n) if indices is None else indices:
            result = load_image(self.images_dir / self.image_name(i))
            if not result.ok:
                raise InputError(f"{self.images_dir / self.image_name(i)}: {result.reason} ({result.message})")
            images.append(result.image)
        return np.stack(images)

    def image_chunks(self, indices: Any, size: int = 256) -> Iterator[np.ndarray]:
        """The images at ``indices`` (in that order), ``size`` at a time: only one chunk of pixels is held."""
        indices = list(indices)
        for start in range(0, len(indices), size):
            yield self.read_images(len(indices), indices[start : start + size])

    def read_metrics(self) -> dict[str, Any] | None:
        if not self.metrics_path.is_file():
            return None
        try:
            return json.loads(self.metrics_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None  # a damaged file is recomputed, never trusted

    def write_metrics(self, doc: dict[str, Any]) -> None:
        write_json_atomic(self.metrics_path, doc)
