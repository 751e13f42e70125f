"""Recompressed inputs: JPEGs below quality 90 (and lossy WebPs below quality 80) scored by a detector that met
none in calibration; lossy files of higher quality, and AVIFs, scored by one that met no such file.

The diffusion-loss detector reads traces that one JPEG pass at quality 75 mostly erases: on the embedded
world its AUROC fell from 0.875 to 0.640 at q75 and to 0.582 at q50 when calibrated on images that were
never re-encoded, against 0.745 / 0.700 for a detector calibrated on JPEG copies (``benchmarks/RESULTS.md``,
``size_aware_probe.py``). Images in the wild arrive as JPEGs. So a scan counts its inputs that are JPEGs
below :data:`QUALITY_LIMIT` (the quality estimated from each file's quantisation table,
:func:`audit.io.images.jpeg_quality`), a detector records the share of such images among its calibration
images, and the scan's results warn when it scored any of them with a detector that met none, neither in
its images nor through ``--augment`` (docs/detect.md, "Recompressed inputs"). A detector calibrated with
``--route-jpeg`` (the embedded default is) mends it: such inputs go to its JPEG route (:mod:`detectors.routing`).

Lossy WebP does much the same damage (``benchmarks/lossy_codec_probe.py``: AUROC 0.724 at WebP q75 and 98.3% of
the real digits flagged at the threshold that flags 4.4% of PNGs), and the JPEG route takes it as well as it
takes JPEGs (0.750, 1.0% of real digits flagged) below :data:`WEBP_QUALITY_LIMIT`, the quality read from the
file's VP8 header (:func:`audit.io.webp_quality.webp_quality`); above it the main detector ranks better than
the route but its threshold does not hold. AVIF the route does not mend (0.655 against the main detector's
0.846 at q75): AVIFs and lossy WebPs at or above the limit go to the main detector, and a scan warns when its
detector met no such file (:func:`unseen_lossy_warning`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

QUALITY_LIMIT = 90  # JPEG quality below which an image counts as recompressed (q95 costs 0.015 AUROC, q75 0.235)
WEBP_QUALITY_LIMIT = 80  # lossy WebP quality below which the JPEG route scores it (lossy_codec_probe.py)


def recompressed(meta: dict[str, Any]) -> bool:
    """Whether a loaded image's metadata says it is a JPEG below :data:`QUALITY_LIMIT` or a lossy WebP below
    :data:`WEBP_QUALITY_LIMIT`: the inputs a JPEG route scores."""
    quality, webp = meta.get("jpeg_quality"), meta.get("webp_quality")
    return (quality is not None and quality < QUALITY_LIMIT) or (webp is not None and webp < WEBP_QUALITY_LIMIT)


def recompressed_rows(metas: Iterable[dict[str, Any]]) -> np.ndarray:
    """A boolean mask over loaded images (their metadata): which are :func:`recompressed`, the rows a JPEG route
    takes."""
    return np.array([recompressed(m) for m in metas], dtype=bool)


def lossy_not_jpeg(meta: dict[str, Any]) -> bool:
    """Whether a loaded image is a lossy WebP (of any quality) or an AVIF."""
    return meta.get("webp_quality") is not None or meta.get("format") == "AVIF"


def lossy_not_routed(meta: dict[str, Any]) -> bool:
    """Whether a loaded image is a lossy WebP at :data:`WEBP_QUALITY_LIMIT` or above, or an AVIF: lossy files
    that go to the main detector (routed or not), whose threshold does not hold for them."""
    return lossy_not_jpeg(meta) and not recompressed(meta)


def unseen(share: Any) -> bool:
    """Whether a detector whose calibration had ``share`` of some kind of file (None: it does not record it) may
    have met none: a scan then warns about such inputs, and marks each in ``detections.csv``."""
    return share is None or float(share) <= 0


def met_recompressed(detector_meta: dict[str, Any]) -> bool:
    """Whether a detector met recompressed inputs in calibration (some among its images, JPEG-augmented copies)
    or sends them to its JPEG route: when not, a scan warns about them (:func:`recompression_warning`). A
    detector saved before the share was recorded counts as having met none."""
    met = float(detector_meta.get("recompressed_share") or 0.0) > 0 or bool(detector_meta.get("augment"))
    return met or "jpeg" in (detector_meta.get("routes") or {})  # they went to its JPEG route


def _unseen_clause(count: int, share: Any, never: str) -> str | None:
    """How a scan's warning about ``count`` such images says why: ``never`` when the detector recorded a share of
    them in its calibration that is 0; that it does not say when it recorded none (saved before the share was
    recorded: it may or may not have met them); None when no such image was scored or it met some."""
    if not count or not unseen(share):
        return None
    if share is None:
        return "this detector does not record whether it was calibrated on such files (an older genaudit saved it)"
    return never


def _share(metas: Iterable[dict[str, Any]], which: Callable[[dict[str, Any]], bool]) -> float:
    flags = [which(m) for m in metas]
    return sum(flags) / len(flags) if flags else 0.0


def recompressed_share(metas: Iterable[dict[str, Any]]) -> float:
    """The share of images (their loader metadata) that are recompressed JPEGs; 0 for none at all."""
    return _share(metas, recompressed)


def high_quality_jpeg(meta: dict[str, Any]) -> bool:
    """Whether a loaded image is a JPEG at :data:`QUALITY_LIMIT` or above (no route takes it)."""
    quality = meta.get("jpeg_quality")
    return quality is not None and quality >= QUALITY_LIMIT


def jpeg_share(metas: Iterable[dict[str, Any]]) -> float:
    """The share of images that are JPEGs of any quality; 0 for none at all."""
    return _share(metas, lambda m: m.get("jpeg_quality") is not None)


def lossy_share(metas: Iterable[dict[str, Any]]) -> float:
    """The share of images that are lossy WebPs of any quality or AVIFs; 0 for none at all."""
    return _share(metas, lossy_not_jpeg)


def unseen_jpeg_warning(count: int, scored: int, detector_meta: dict[str, Any]) -> str | None:
    """The scan's warning when ``count`` of ``scored`` images are JPEGs of quality :data:`QUALITY_LIMIT` or
    more (scored by the main detector, routed or not) and the detector was calibrated on no JPEG at all
    (``jpeg_share`` 0) or does not say (saved before the share was recorded)."""
    why = _unseen_clause(count, detector_meta.get("jpeg_share"), "this detector was calibrated on no JPEG")
    if why is None:
        return None
    return (
        f"{count} of {scored} scanned images are JPEGs of quality {QUALITY_LIMIT} or more, and {why}: they go to "
        "its main detector, whose threshold does not hold for them unless it was calibrated on such JPEGs (on the "
        "embedded world, 21.5% of real digits saved at JPEG q95 were flagged at the threshold that flags 4.4% of "
        "clean ones). Their scores rank; do not trust their flags, or calibrate on JPEGs like these."
    )


def unseen_lossy_warning(count: int, scored: int, detector_meta: dict[str, Any]) -> str | None:
    """The scan's warning when ``count`` of ``scored`` images are lossy WebPs at :data:`WEBP_QUALITY_LIMIT` or
    above or AVIFs (scored by the main detector, routed or not) and the detector was calibrated on no lossy
    WebP or AVIF (``lossy_share`` 0) or does not say (saved before the share was recorded)."""
    why = _unseen_clause(count, detector_meta.get("lossy_share"), "this detector was calibrated on neither")
    if why is None:
        return None
    return (
        f"{count} of {scored} scanned images are AVIFs or lossy WebPs of quality {WEBP_QUALITY_LIMIT} or more, and "
        f"{why}: they go to its main detector, whose threshold does not hold for them unless it was calibrated on "
        "such files (on the embedded world, 32.0% of real digits saved as WebP q90 and 19.5% saved as AVIF q75 "
        "were flagged at the threshold that flags 4.4% of PNGs). Their scores rank; do not trust their flags, or "
        "calibrate on files like these."
    )


def recompression_warning(count: int, scored: int, detector_meta: dict[str, Any]) -> str | None:
    """The scan's warning when ``count`` of ``scored`` images are recompressed (JPEGs below
    :data:`QUALITY_LIMIT`, lossy WebPs below :data:`WEBP_QUALITY_LIMIT`) and the detector met no such image in
    calibration (a detector saved before this was recorded counts as having met none); none when it has a
    JPEG route (:mod:`detectors.routing`), which scored them."""
    if not count or met_recompressed(detector_meta):
        return None
    return (
        f"{count} of {scored} scanned images are JPEGs re-encoded below quality {QUALITY_LIMIT} or lossy WebPs below "
        f"quality {WEBP_QUALITY_LIMIT} (estimated from their quantisation tables), and this detector was "
        "calibrated on none: its scores on them are weaker than its calibration says and its flags do not hold "
        "(on the embedded world, JPEG q75 lowered the AUROC from 0.875 to 0.640, and 100% of real digits saved "
        "at JPEG q75 and 98.3% saved as WebP q75 were flagged at the threshold that flags 4.4% of PNGs). "
        "Calibrate with --route-jpeg (a second detector, calibrated on JPEG and enlarged copies, scores such "
        "inputs), on JPEGs "
        "like these, or with --augment before trusting its flags on them."
    )
