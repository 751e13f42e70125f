"""Face analysis backends by name. Each returns an object with ``id``, ``describe()`` and
``analyze(rgb_uint8) -> list[DetectedFace]``; heavy imports happen only when one is created."""

from __future__ import annotations

from typing import Any

from audit.errors import InputError

BACKENDS = ("dlib-agegender", "opencv-haar")


def get_analyzer(name: str) -> Any:
    if name == "dlib-agegender":
        from audit.dataset.agegender import AgeGenderAnalyzer

        return AgeGenderAnalyzer()
    if name == "opencv-haar":
        from audit.dataset.haar import HaarAgeGenderAnalyzer

        return HaarAgeGenderAnalyzer()
    raise InputError(f"unknown face backend {name!r}; available: {', '.join(BACKENDS)}")
