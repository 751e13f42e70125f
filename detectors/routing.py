"""The JPEG route: recompressed inputs scored by a detector calibrated on JPEG copies (docs/detect.md, "Routing").

One JPEG pass at quality 75 erases much of what the diffusion-loss detector reads, and one pooled detector
cannot be good on clean and re-encoded images at once: on the embedded world a detector calibrated on clean
images gets AUROC 0.875 clean and 0.640 / 0.582 at JPEG q75 / q50, one calibrated on clean images plus a mixed
chain of perturbed copies (``--augment``) 0.836 and 0.659 / 0.604, and one calibrated on JPEG copies alone
0.745 / 0.700 on those JPEGs but 0.709 on q95 ones (``benchmarks/size_aware_probe.py``, RESULTS.md). Whether
an input is such a JPEG is observable before it is scored: its file's quantisation table gives its quality
(:func:`audit.io.images.jpeg_quality`). So a detector calibrated with ``--route-jpeg`` carries a second one,
calibrated on one JPEG copy of every calibration image (:class:`JpegCopies`), and every input that is a JPEG
below :data:`detectors.recompression.QUALITY_LIMIT` is scored, thresholded and given its ``p_synthetic`` by
that one; every other input by the main detector, as before (on the embedded world, all images out of
fold: q75 0.739, q50 0.694, clean and q95 the plain detector's 0.875 and 0.860). Lossy WebPs below
:data:`detectors.recompression.WEBP_QUALITY_LIMIT` take the same route (WebP q75: 0.750 against 0.724, and
1.0% of real digits flagged against 98.3%; ``benchmarks/lossy_codec_probe.py``).

Saved: the route is a detector of its own (``NAME.jpeg.json`` and ``NAME.jpeg.safetensors`` beside the main
``NAME.json``), and the main detector's meta names it with its document sha256 under ``routes``, so a
route file swapped or edited after saving is refused, not used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audit.errors import WeightsError

JPEG_ROUTE = "jpeg"
MAIN_ROUTE = "main"
COPY_SEED = 1  # the JPEG copies' generator seed; --augment's copies use 0, so the two sets differ


def jpeg_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One JPEG copy of uint8 RGB ``image``: a mild blur with :mod:`detectors.augment`'s probability and
    strength, then JPEG at a quality uniform in its range (30..95): what a re-upload does, without the resize
    (a resized JPEG is still routed here; the copies do not model it: docs/detect.md, "Routing")."""
    from PIL import Image, ImageFilter

    from detectors import augment
    from detectors.evaluation import jpeg

    out = np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB"))
    if rng.random() < augment.BLUR_P:
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(float(rng.uniform(*augment.BLUR_SIGMA)))))
    return jpeg(int(rng.integers(augment.JPEG_QUALITY[0], augment.JPEG_QUALITY[1] + 1)))(out)


class JpegCopies(Sequence[np.ndarray]):
    """One JPEG copy of every image of ``images`` (or of the images at ``rows`` only, in that order), made on
    access: the copy of image ``i`` from a generator seeded by (:data:`COPY_SEED`, ``i``), so a copy is the same
    whatever order, chunk or subset it is scored in."""

    def __init__(self, images: Sequence[np.ndarray], rows: Sequence[int] | None = None) -> None:
        self.images = images
        self.rows = list(range(len(images))) if rows is None else [int(r) for r in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(len(self)))]
        i = self.rows[int(index)]
        return jpeg_copy(np.asarray(self.images[i]), np.random.default_rng([COPY_SEED, i]))


def copies_record() -> dict[str, Any]:
    """How the route's copies were made, for provenance."""
    from detectors import augment
    from detectors.recompression import QUALITY_LIMIT, WEBP_QUALITY_LIMIT

    return {"copies_per_image": 1, "seed": COPY_SEED,
            "recompressed_images": "calibrate the route as they are, without a copy (a JPEG of a JPEG is not an "
                                   "input)",
            "blur": {"p": augment.BLUR_P, "sigma": list(augment.BLUR_SIGMA)},
            "jpeg": {"p": 1.0, "quality": list(augment.JPEG_QUALITY)},
            "routes": f"JPEGs below quality {QUALITY_LIMIT} (from their quantisation tables), lossy WebPs below "
                      f"quality {WEBP_QUALITY_LIMIT} (from their VP8 headers)",
            "below_quality": QUALITY_LIMIT, "webp_below_quality": WEBP_QUALITY_LIMIT}  # fmt: skip


def route_path(main: Path) -> Path:
    """Where the JPEG route of the detector saved at ``main`` (a ``.json`` path) is saved."""
    return main.with_name(f"{main.stem}.{JPEG_ROUTE}.json")


@dataclass
class Routed:
    """A detector and its routes: ``main`` scores every input no route takes; ``routes[JPEG_ROUTE]`` (when
    present) the recompressed inputs (:func:`detectors.recompression.recompressed`: JPEGs below quality 90,
    lossy WebPs below 80)."""

    main: Any
    routes: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        """Everything else (threshold, mode, direction, parameters) is the main detector's."""
        if name in ("main", "routes"):  # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.main, name)

    def route_of(self, recompressed: np.ndarray) -> np.ndarray:
        """Each input's route name: :data:`JPEG_ROUTE` for a recompressed input when that route exists."""
        names = np.full(len(recompressed), MAIN_ROUTE, dtype=object)
        if JPEG_ROUTE in self.routes:
            names[np.asarray(recompressed, dtype=bool)] = JPEG_ROUTE
        return names

    def decide(self, feats: np.ndarray, recompressed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(decisions, p_synthetic, flags) for ``feats``, each row by its route's detector and threshold."""
        names = self.route_of(recompressed)
        decisions, probs = np.empty(len(feats)), np.empty(len(feats))
        flags = np.zeros(len(feats), dtype=bool)
        for name in dict.fromkeys(names):
            rows = names == name
            det = self.main if name == MAIN_ROUTE else self.routes[name]
            decisions[rows] = det.decision_function(feats[rows])
            probs[rows] = det.probability(decisions[rows])
            flags[rows] = decisions[rows] >= det.threshold_
        return decisions, probs, flags


def save_route(main_path: Path, route: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """Save the JPEG route beside the main detector at ``main_path``; returns the entry the main detector's
    meta keeps under ``routes`` (its file and document sha256)."""
    import json

    path = route.save(route_path(main_path), {**meta, "route": JPEG_ROUTE, "copies": copies_record()})
    sha = json.loads(path.read_text(encoding="utf-8"))["sha256"]
    from detectors.recompression import QUALITY_LIMIT

    return {JPEG_ROUTE: {"file": path.name, "sha256": sha, "below_quality": QUALITY_LIMIT}}


def load_routes(main_path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The routes the detector at ``main_path`` names in its ``meta``, each loaded through the same checks
    as any saved detector and refused when its document sha256 is not the one recorded at saving."""
    import json

    from detectors.detector import ReconstructionDetector

    entries = meta.get("routes") or {}
    out = {}
    for name, entry in entries.items():
        if name != JPEG_ROUTE:
            raise WeightsError(f"{main_path}: unknown route {name!r} (this genaudit knows {JPEG_ROUTE!r})")
        file = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(file, str) or Path(file).name != file or not file.endswith(".json"):  # a name, beside it
            raise WeightsError(f"corrupt detector: {main_path}: its JPEG route entry is unusable ({entry!r:.200})")
        path = main_path.with_name(file)
        det, _ = ReconstructionDetector.load(path)
        try:
            sha = json.loads(path.read_text(encoding="utf-8"))["sha256"]
        except (OSError, ValueError, KeyError) as exc:
            raise WeightsError(f"cannot read the JPEG route {path}: {exc}") from None
        if sha != entry.get("sha256"):
            raise WeightsError(
                f"{path} is not the JPEG route {main_path.name} was saved with (its sha256 differs): recalibrate"
            )
        out[name] = det
    return out
