"""The JPEG route: recompressed and enlarged inputs scored by a detector calibrated on copies that are so
(docs/detect.md, "Routing").

One JPEG pass at quality 75 erases much of what the diffusion-loss detector reads, and one pooled detector
cannot be good on clean and re-encoded images at once: on the embedded world a detector calibrated on clean
images gets AUROC 0.875 clean and 0.640 / 0.582 at JPEG q75 / q50, one calibrated on clean images plus a mixed
chain of perturbed copies (``--augment``) 0.836 and 0.659 / 0.604, and one calibrated on JPEG copies alone
0.745 / 0.700 on those JPEGs but 0.709 on q95 ones (``benchmarks/size_aware_probe.py``, RESULTS.md). Whether
an input is such a JPEG is observable before it is scored: its file's quantisation table gives its quality
(:func:`audit.io.images.jpeg_quality`). So is whether it is larger than every calibration image (an upscaled
file, which the scorer brings back down to the model's size: the main detector's threshold flags all real
digits enlarged 2x). So a detector calibrated with ``--route-jpeg`` carries a second one, calibrated on one
copy of every calibration image (:class:`RouteCopies`: half JPEG-compressed, half enlarged), and every input
that is a JPEG below :data:`detectors.recompression.QUALITY_LIMIT`, or has a side larger than the calibration
images' largest, is scored, thresholded and given its ``p_synthetic`` by that one; every other input by the
main detector, as before. Lossy WebPs below :data:`detectors.recompression.WEBP_QUALITY_LIMIT` take the same
route (WebP q75: 0.728 against the main detector's 0.724, and 0.3% of real digits flagged against 98.3%;
``benchmarks/lossy_codec_probe.py``). Measured on the embedded world, all images out of fold
(``benchmarks/size_aware_probe.py``; in brackets the main detector): JPEG q75 / q50 0.736 / 0.684 (0.640 /
0.582), enlarged 2x 0.756 (0.720), 1.5x 0.727 (0.685), 1.25x 0.685 (0.689), 4x 0.755 (0.711), with 0-6% of
the real digits flagged at the route's threshold where the main detector flags 97-100%. Over three draws of
copies each, the enlarged half costs the JPEG rows about 0.013 against JPEG copies alone
(``benchmarks/route_copies_draws.py``).

Saved: the route is a detector of its own (``NAME.jpeg.json`` and ``NAME.jpeg.safetensors`` beside the main
``NAME.json``), and the main detector's meta names it with its document sha256 under ``routes``, so a
route file swapped or edited after saving is refused, not used. A route saved before its copies had enlarged
ones takes recompressed inputs only (its entry has no ``takes``).
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
# the route's copies' generator seed: 1 made JPEG copies only (before enlarged copies); --augment's copies use 0
COPY_SEED = 2
ENLARGE_P = 0.5  # the share of the route's copies that are enlarged instead of JPEG-compressed
ENLARGE_FACTOR = (1.1, 2.0)  # an enlarged copy's factor, log-uniform; bicubic, as the sweep's resize
ENLARGED = "enlarged"  # what a route entry's ``takes`` names for inputs larger than the calibration images
TAKES = ("recompressed", ENLARGED)  # what a route saved by this version takes (its entry's and copies' ``takes``)


def copy_enlarges(index: int) -> bool:
    """Whether the route's copy of image ``index`` is an enlarged one (else a JPEG one): the first draw of the
    copy's own generator, so it is known without making the copy."""
    return bool(np.random.default_rng([COPY_SEED, index]).random() < ENLARGE_P)


def route_copy(image: np.ndarray, index: int) -> np.ndarray:
    """The route's copy of uint8 RGB ``image``, image ``index`` of its set: a mild blur with
    :mod:`detectors.augment`'s probability and strength, then, as :func:`copy_enlarges` draws, either an
    enlargement by a factor log-uniform in :data:`ENLARGE_FACTOR` (an upscaled file; the scorer brings it back
    to the model's size) or JPEG at a quality uniform in the augmentation's range (30..95): the two things
    the route's inputs have had done to them (docs/detect.md, "Routing")."""
    from PIL import Image, ImageFilter

    from detectors import augment
    from detectors.evaluation import jpeg, resize

    rng = np.random.default_rng([COPY_SEED, index])
    enlarge = rng.random() < ENLARGE_P  # copy_enlarges's draw
    out = np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB"))
    if rng.random() < augment.BLUR_P:
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(float(rng.uniform(*augment.BLUR_SIGMA)))))
    if enlarge:
        return resize(float(np.exp(rng.uniform(*np.log(ENLARGE_FACTOR)))))(out)
    return jpeg(int(rng.integers(augment.JPEG_QUALITY[0], augment.JPEG_QUALITY[1] + 1)))(out)


class RouteCopies(Sequence[np.ndarray]):
    """The route's copy (:func:`route_copy`) of every image of ``images`` (or of the images at ``rows`` only,
    in that order), made on access: the copy of image ``i`` depends on the image and ``i`` alone, so it is the
    same whatever order, chunk or subset it is scored in."""

    def __init__(self, images: Sequence[np.ndarray], rows: Sequence[int] | None = None) -> None:
        self.images = images
        self.rows = list(range(len(images))) if rows is None else [int(r) for r in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(len(self)))]
        i = self.rows[int(index)]
        return route_copy(np.asarray(self.images[i]), i)


def taken_rows(recompressed: np.ndarray, larger: np.ndarray | None, takes_enlarged: bool) -> np.ndarray:
    """Which inputs a route takes: the ``recompressed`` ones (:func:`detectors.recompression.recompressed`) and,
    when ``takes_enlarged`` (its copies model them), those ``larger`` than its calibration images
    (:func:`detectors.calibration_sizes.larger`)."""
    take = np.asarray(recompressed, dtype=bool).copy()
    if takes_enlarged and larger is not None:
        take |= np.asarray(larger, dtype=bool)
    return take


def copies_record() -> dict[str, Any]:
    """How the route's copies were made and which inputs it takes, for provenance."""
    from detectors import augment
    from detectors.recompression import QUALITY_LIMIT, WEBP_QUALITY_LIMIT

    return {"copies_per_image": 1, "seed": COPY_SEED,
            "recompressed_images": "calibrate the route as they are, without a copy (a JPEG of a JPEG is not an "
                                   "input)",
            "blur": {"p": augment.BLUR_P, "sigma": list(augment.BLUR_SIGMA)},
            "jpeg": {"p": 1.0 - ENLARGE_P, "quality": list(augment.JPEG_QUALITY)},
            "enlarged": {"p": ENLARGE_P, "factor": list(ENLARGE_FACTOR), "resample": "bicubic"},
            "routes": f"JPEGs below quality {QUALITY_LIMIT} (from their quantisation tables), lossy WebPs below "
                      f"quality {WEBP_QUALITY_LIMIT} (from their VP8 headers), and images with a side larger than "
                      "the calibration images' largest",
            "below_quality": QUALITY_LIMIT, "webp_below_quality": WEBP_QUALITY_LIMIT,
            "takes": list(TAKES)}  # fmt: skip


def takes_enlarged(meta: dict[str, Any]) -> bool:
    """Whether the JPEG route a saved detector's ``meta`` names takes enlarged inputs (routes saved before its
    copies had enlarged ones take recompressed inputs only)."""
    entry = (meta.get("routes") or {}).get(JPEG_ROUTE)
    return isinstance(entry, dict) and ENLARGED in (entry.get("takes") or [])


def route_path(main: Path) -> Path:
    """Where the JPEG route of the detector saved at ``main`` (a ``.json`` path) is saved."""
    return main.with_name(f"{main.stem}.{JPEG_ROUTE}.json")


@dataclass
class Routed:
    """A detector and its routes: ``main`` scores every input no route takes; ``routes[JPEG_ROUTE]`` (when
    present) the recompressed inputs (:func:`detectors.recompression.recompressed`: JPEGs below quality 90,
    lossy WebPs below 80) and, when ``takes_enlarged``, the inputs larger than the calibration images."""

    main: Any
    routes: dict[str, Any] = field(default_factory=dict)
    takes_enlarged: bool = False  # the route takes inputs larger than the calibration images too
    copies: dict[str, Any] | None = None  # how a saved route's copies were made (its meta), None: not saved

    def __getattr__(self, name: str) -> Any:
        """Everything else (threshold, mode, direction, parameters) is the main detector's."""
        if name in ("main", "routes", "takes_enlarged", "copies"):  # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.main, name)

    def route_of(self, recompressed: np.ndarray, larger: np.ndarray | None = None) -> np.ndarray:
        """Each input's route name: :data:`JPEG_ROUTE` for an input the route takes (:func:`taken_rows`: a
        recompressed one, or one ``larger`` than the calibration images when it takes those) when that route
        exists, else :data:`MAIN_ROUTE`."""
        names = np.full(len(recompressed), MAIN_ROUTE, dtype=object)
        if JPEG_ROUTE in self.routes:
            names[taken_rows(recompressed, larger, self.takes_enlarged)] = JPEG_ROUTE
        return names

    def decide(
        self, feats: np.ndarray, recompressed: np.ndarray, larger: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(decisions, p_synthetic, flags) for ``feats``, each row by its route's detector and threshold."""
        names = self.route_of(recompressed, larger)
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

    return {
        JPEG_ROUTE: {
            "file": path.name,
            "sha256": sha,
            "below_quality": QUALITY_LIMIT,
            "takes": list(TAKES),
        }
    }


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


def saved_copies(main_path: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """How the copies of the JPEG route that the detector at ``main_path`` names were made (the route's own meta,
    :func:`copies_record` as it was at saving), for results that describe that route and not this version's
    recipe; None without a route. Read after :func:`load_routes` checked the route file."""
    import json

    entry = (meta.get("routes") or {}).get(JPEG_ROUTE)
    if not isinstance(entry, dict):
        return None
    doc = json.loads(main_path.with_name(entry["file"]).read_text(encoding="utf-8"))
    copies = (doc.get("meta") or {}).get("copies")
    return copies if isinstance(copies, dict) else None
