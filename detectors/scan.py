"""``genaudit detect`` over any number of images in one streamed pass: memory does not grow with them.

The inputs are listed lazily (:func:`detectors.job.iter_inputs`), checked through genaudit's loader and
gathered one scoring block at a time (:data:`detectors.image_files.CHUNK_IMAGES` listed files, the
batches every other detect path makes, so the features are the ones a shard computes: docs/scale-out.md).
Each block is scored (or looked up among the shards' features), and its rows go straight into the
temporary ``detections.csv`` that is renamed into place at the end; unreadable files wait in a temporary
file and follow the scored rows, as before. What stays in memory is one block's listing and pixels, the
counts, and the few highest- and lowest-scoring images the card shows (:class:`Extremes`).
"""

from __future__ import annotations

import csv
import heapq
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audit.errors import InputError
from detectors import image_files
from detectors.image_files import ImageFile, LazyImages

# route: which detector scored the image ("main", or "jpeg" for a recompressed JPEG a routed detector sent to
# its JPEG route: detectors.routing); empty for an unreadable file. caveat: the scan's warnings (CAVEATS) whose
# count includes the image, ";"-joined: its flag is not to be trusted (empty: none, and on paths that do not warn)
DETECTION_COLUMNS = ["path", "score", "p_synthetic", "flagged", "reason", "route", "caveat"]
# each names a warning of the scan's results and the images it counts (Scan's fields of the same names), in the
# order the warnings are given: recompressed inputs a detector met none of, JPEGs of quality 90 or more and other
# lossy files its main detector met none of, sides outside its calibration images' (detectors/recompression.py,
# detectors/calibration_sizes.py)
CAVEATS = ("recompressed", "unseen_jpeg", "unseen_lossy", "off_size")


class Extremes:
    """The ``half`` highest- and ``half`` lowest-scoring items of a stream, in bounded heaps.

    :meth:`picks` gives what sorting every item by descending score (ties in arrival order) and taking the
    first ``half`` and then the last ``half`` not already taken would give, without keeping the rest."""

    def __init__(self, half: int) -> None:
        self.half = half
        self._top: list[tuple[float, int, Any]] = []  # (score, -position): the smallest popped first
        self._bottom: list[tuple[float, int, Any]] = []  # (-score, position): the same

    def add(self, score: float, position: int, item: Any) -> None:
        for heap, key in ((self._top, (score, -position, item)), (self._bottom, (-score, position, item))):
            if len(heap) < self.half:
                heapq.heappush(heap, key)
            elif key[:2] > heap[0][:2]:
                heapq.heapreplace(heap, key)

    def picks(self) -> list[Any]:
        """The highest first (ties by position), then the lowest not among them, in the same order."""
        top = sorted(self._top, key=lambda k: (-k[0], -k[1]))
        taken = {-k[1] for k in top}
        bottom = sorted(self._bottom, key=lambda k: (k[0], k[1]))
        return [k[2] for k in top] + [k[2] for k in bottom if k[1] not in taken]


@dataclass
class Scan:
    """What one streamed pass found: counts, the scoring seconds, and the images the card shows."""

    scored: int = 0
    flagged: int = 0
    recompressed: int = 0  # scored images that are JPEGs below recompression.QUALITY_LIMIT (or low-quality WebPs)
    routed: int = 0  # scored by the detector's JPEG route (every recompressed one when it has one, larger ones too)
    routed_larger: int = 0  # of them, not recompressed but larger than the calibration images (calibration_sizes)
    unseen_jpeg: int = 0  # scored by the main detector and JPEGs at QUALITY_LIMIT or above (recompression.py)
    unseen_lossy: int = 0  # scored by it and AVIFs or lossy WebPs at WEBP_QUALITY_LIMIT or above (same)
    off_size: int = 0  # scored images with a side outside the detector's calibration range, not routed for it
    # (or larger than calibration_sizes.far_larger allows the route)
    sides: dict[str, int] | None = None  # that range, from the detector's meta (None: not recorded)
    warned: frozenset[str] = frozenset()  # the CAVEATS whose warning this detector's results give when counted
    unreadable: int = 0
    seconds: float = 0.0
    extremes: Extremes = field(default_factory=lambda: Extremes(12))


def scan(
    inputs: list[str], csv_path: Path, *, detector: Any, model: Any, scorer: Any,
    cache: dict[str, np.ndarray] | None = None, journal: Any = None, image_column: str = "image",
    progress: bool = True, meta: dict[str, Any] | None = None,
) -> Scan:  # fmt: skip
    """Score every image of ``inputs`` with ``detector`` and write ``csv_path`` (atomically, at the end),
    one block at a time. ``cache``: features the shards (or a killed run) already computed, by sha256 (not
    scored again). ``journal``: where each block's new features are kept as they are scored
    (:class:`detectors.feature_shards.FeatureJournal`), so that a killed scan resumes. A
    :class:`detectors.routing.Routed` detector scores each recompressed JPEG (and, when its route takes them,
    each image larger than its calibration images) by its JPEG route. No image at
    all (readable or not) is an :class:`InputError`, and no CSV is written. ``meta``: the detector's saved
    metadata, whose calibration range of image sides (:mod:`detectors.calibration_sizes`) and shares of lossy
    files decide which inputs are counted for a warning; each such row names its warnings in ``caveat``."""
    from audit.atomic import write_atomic

    found = Scan(sides=(meta or {}).get("calibration_sides"), warned=warned_caveats(meta or {}))

    def write(fh: Any) -> None:
        import io

        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        try:
            _write_rows(csv.writer(text), inputs, found, detector, model, scorer, cache, journal, image_column,
                        progress)  # fmt: skip
            text.flush()
        finally:
            text.detach()

    try:
        write_atomic(csv_path, write)
    finally:  # also after an error: the blocks scored so far are not scored again
        if journal is not None:
            journal.flush()
    return found


def _write_rows(
    out: Any, inputs: list[str], found: Scan, detector: Any, model: Any, scorer: Any,
    cache: dict[str, np.ndarray] | None, journal: Any, image_column: str, progress: bool,
) -> None:  # fmt: skip
    from tqdm.auto import tqdm

    from audit.io.names import spreadsheet_text
    from detectors.routing import JPEG_ROUTE, MAIN_ROUTE, Routed

    routed = detector if isinstance(detector, Routed) else Routed(detector)
    out.writerow(DETECTION_COLUMNS)
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as unreadable:
        refused = csv.writer(unreadable)
        bar = tqdm(desc="detect", unit="image", disable=not progress)
        for names, files, kinds in _blocks(inputs, image_column, refused, found):
            from detectors.job import features

            feats, seconds = features(model, scorer, LazyImages(files), cache, journal)
            found.seconds += seconds
            jpegs, larger = kinds["recompressed"], kinds["larger"]
            decisions, probs, flags = routed.decide(feats, jpegs, larger)
            taken = routed.route_of(jpegs, larger) == JPEG_ROUTE
            found.routed += int(np.sum(taken))
            found.routed_larger += int(np.sum(taken & ~jpegs))
            # what the route took is not warned about: its threshold holds for those (docs/detect.md, "Routing"),
            # for sizes up to the largest enlargement it was measured on (calibration_sizes.far_larger)
            counted = {"recompressed": jpegs, "unseen_jpeg": kinds["high_quality_jpeg"] & ~taken,
                       "unseen_lossy": kinds["lossy_not_routed"] & ~taken,
                       "off_size": kinds["outside"] & ~(taken & larger & ~kinds["far_larger"])}  # fmt: skip
            for caveat in CAVEATS:
                setattr(found, caveat, getattr(found, caveat) + int(np.sum(counted[caveat])))
            caveats = [";".join(c for c in CAVEATS if c in found.warned and counted[c][i]) for i in range(len(files))]
            for name, file, d, p, f, r, c in zip(
                names, files, decisions, probs, flags, np.where(taken, JPEG_ROUTE, MAIN_ROUTE), caveats, strict=True
            ):
                row = [name, round(float(d), 6), round(float(p), 6), bool(f), "", str(r), c]
                out.writerow([spreadsheet_text(name), *row[1:]])  # the card shows the name as it is
                found.extremes.add(row[1], found.scored, (row, file))  # the rounded score, as the CSV says
                found.scored += 1
                found.flagged += int(f)
            bar.update(len(files))
        bar.close()
        if not found.scored and not found.unreadable:
            raise InputError(f"no images found in {', '.join(inputs)}")
        unreadable.seek(0)
        for name, reason in csv.reader(unreadable):
            out.writerow([spreadsheet_text(name), "", "", "", reason, "", ""])


def _blocks(
    inputs: list[str], image_column: str, refused: Any, found: Scan
) -> Iterator[tuple[list[str], list[ImageFile], dict[str, np.ndarray]]]:
    """Each scoring block's readable images (names, files, and masks over them by what routing and the warnings
    ask: recompressed, larger than the calibration images, with a side outside their range, a JPEG of quality 90
    or more, another lossy file no route takes for its codec), in listing order; every file refused while
    listing or unreadable goes to ``refused`` (name, reason) and is counted in ``found``."""
    from audit.io.archives import load_at
    from detectors.calibration_sizes import far_larger, larger, outside
    from detectors.job import iter_inputs
    from detectors.recompression import high_quality_jpeg, lossy_not_routed, recompressed

    names: list[str] = []
    files: list[ImageFile] = []
    conditions: list[dict[str, bool]] = []

    def masks() -> dict[str, np.ndarray]:  # of a non-empty block
        return {key: np.array([c[key] for c in conditions], dtype=bool) for key in conditions[0]}

    block = None
    position = -1  # among the listed files, unreadable ones included: the blocks every detect path makes
    per_block = image_files.CHUNK_IMAGES  # read at call time, as chunks() and the shards read it
    for file, name, span, refusal in iter_inputs(inputs, image_column):
        if refusal is not None:
            refused.writerow([name, refusal])
            found.unreadable += 1
            continue
        position += 1
        if block is not None and position // per_block != block[1] and files:
            yield names, files, masks()
            names, files, conditions = [], [], []
        block = (0, position // per_block)
        result = load_at(file, span)
        if not result.ok:
            refused.writerow([name, result.reason or "unreadable"])
            found.unreadable += 1
            continue
        names.append(name)
        files.append(ImageFile(file, result.sha256 or "", "", block, span))
        height, width = result.image.shape[:2]
        conditions.append({"recompressed": recompressed(result.meta), "larger": larger(width, height, found.sides),
                           "outside": outside(width, height, found.sides),
                           "far_larger": far_larger(width, height, found.sides),
                           "high_quality_jpeg": high_quality_jpeg(result.meta),
                           "lossy_not_routed": lossy_not_routed(result.meta)})  # fmt: skip
    if files:
        yield names, files, masks()


def warned_caveats(detector_meta: dict[str, Any]) -> frozenset[str]:
    """The :data:`CAVEATS` a scan with this detector warns about when it scores such inputs: recompressed ones
    when it met none (and has no JPEG route), high-quality JPEGs and other lossy files when its calibration had
    none (or does not say), sides outside a calibration range it records."""
    from detectors.recompression import met_recompressed, unseen

    return frozenset(
        name
        for name, warns in (
            ("recompressed", not met_recompressed(detector_meta)),
            ("unseen_jpeg", unseen(detector_meta.get("jpeg_share"))),
            ("unseen_lossy", unseen(detector_meta.get("lossy_share"))),
            ("off_size", bool(detector_meta.get("calibration_sides"))),
        )
        if warns
    )


def thumbnails(picks: list[tuple[list[Any], ImageFile]]) -> list[dict[str, Any]]:
    """The card's per-image table rows for :meth:`Extremes.picks`: each row with its thumbnail."""
    from detectors.image_files import decode_checked
    from detectors.job import thumbnail_row

    return [thumbnail_row(dict(zip(DETECTION_COLUMNS, row, strict=True)), decode_checked(file)) for row, file in picks]
