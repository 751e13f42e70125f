"""Inputs of a size the detector was not calibrated on: counted in a scan and warned about.

The scorer brings every image to the model's input size, and an image resized before it arrives is not
the image the detector was calibrated on: on the embedded world the main detector's threshold, set at 5%
FPR on clean real digits, flags 100% of the real digits after a 0.5x or a 2x resize (the demo's sweep;
docs/detect.md, "Routing"). So a detector records the range of its calibration images' sides
(:func:`side_range`), a scan counts its inputs with a side outside it, and its results warn with that count
(:func:`size_warning`). A detector saved before the range was recorded gets no warning (nothing to compare).
A detector whose JPEG route models enlarged inputs (:mod:`detectors.routing`) sends inputs larger than the
range to it, where its threshold holds (2.7% of real digits enlarged 1.25-4x flagged), and a scan counts
those as routed, not in the warning; smaller ones it has no route for. Past :data:`ROUTE_MEASURED_FACTOR`
times the largest calibration side (:func:`far_larger`: a natively large photograph, or an upscale no one
measured) the route still scores them, the best the detector has, but they are warned about again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def side_range(metas: Iterable[dict[str, Any]]) -> dict[str, int] | None:
    """The smallest and the largest side among images (their loader metadata: ``width``, ``height``)."""
    sides = [side for m in metas for side in (int(m["width"]), int(m["height"]))]
    return {"min_side": min(sides), "max_side": max(sides)} if sides else None


def outside(width: int, height: int, record: dict[str, int] | None) -> bool:
    """Whether an image of ``width`` x ``height`` has a side outside the recorded range (False: no record)."""
    if not record:
        return False
    return min(width, height) < record["min_side"] or max(width, height) > record["max_side"]


def larger(width: int, height: int, record: dict[str, int] | None) -> bool:
    """Whether an image of ``width`` x ``height`` has a side larger than the recorded range's largest: an input a
    JPEG route that models enlarged images takes (:mod:`detectors.routing`; False: no record)."""
    return bool(record) and max(width, height) > record["max_side"]


ROUTE_MEASURED_FACTOR = 4.0  # the largest enlargement the route's threshold was measured on (docs/detect.md)


def far_larger(width: int, height: int, record: dict[str, int] | None) -> bool:
    """Whether an image of ``width`` x ``height`` has a side more than :data:`ROUTE_MEASURED_FACTOR` times the
    recorded range's largest: past what the route's threshold was measured to hold for (False: no record)."""
    return bool(record) and max(width, height) > ROUTE_MEASURED_FACTOR * record["max_side"]


def larger_rows(metas: Iterable[dict[str, Any]], record: dict[str, int] | None) -> np.ndarray:
    """A boolean mask over loaded images (their metadata: ``width``, ``height``): which are :func:`larger`."""
    return np.array([larger(int(m["width"]), int(m["height"]), record) for m in metas], dtype=bool)


def size_warning(count: int, scored: int, record: dict[str, int] | None) -> str | None:
    """The scan's warning when ``count`` of ``scored`` images have a side outside the calibration range."""
    if not count or not record:
        return None
    low, high = record["min_side"], record["max_side"]
    sides = f"{low} px" if low == high else f"{low} to {high} px"
    return (
        f"{count} of {scored} scanned images have a side outside the calibration images' ({sides}): the detector "
        "never saw images of their size, and its threshold does not hold for them (on the embedded world, "
        "100% of real digits resized 0.5x or 2x were flagged at the threshold that flags 5% of clean ones). "
        "Their scores rank but their flags are not to be trusted; calibrate on images of their size."
    )
