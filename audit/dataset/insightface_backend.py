"""``insightface``: InsightFace's SCRFD detector and its gender-age model from a model pack
(``buffalo_l`` by default, or any folder of the pack's ONNX files), loaded by insightface's own
``FaceAnalysis`` so a pack works here exactly as it does for its users.

The wheel ships no models. A pack name is looked up in ``~/.insightface/models/NAME`` (or
``$INSIGHTFACE_HOME/models/NAME``); when it is not there it is downloaded from insightface's GitHub
release (about 280 MB) with one warning saying so, unless downloads are off (``HF_HUB_OFFLINE`` or
``GENAUDIT_OFFLINE``), in which case one error says how to get it. InsightFace's model packs are licensed
for non-commercial research only; the card states this whenever they are used.

The gender-age model returns three numbers: two gender scores (female, male) and age / 100. insightface
itself keeps only their argmax; here the two scores become P(male) (taken as they are when they already
form a distribution, through a softmax otherwise) so abstention works as for the other models.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from audit.dataset.face_model import Box, Detection, PerceivedAttributes, box_in_original, upscaled_for_detection
from audit.errors import WeightsError

log = logging.getLogger(__name__)

DEFAULT_PACK = "buffalo_l"
LICENCE = "InsightFace model packs: non-commercial research use only (the insightface code is MIT)"
RELEASES = "https://github.com/deepinsight/insightface/releases/tag/v0.7"


def _offline() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("HF_HUB_OFFLINE", "GENAUDIT_OFFLINE"))


def _root() -> Path:
    return Path(os.environ.get("INSIGHTFACE_HOME", "~/.insightface")).expanduser()


def _has_models(folder: Path) -> bool:
    return folder.is_dir() and (any(folder.glob("*.onnx")) or any(folder.glob("*manifest*")))


def resolve_pack(pack: str | None) -> Path:
    """The folder of model pack ``pack`` (a folder path, or a pack name under the insightface root),
    downloading a named pack when it is missing and downloads are allowed."""
    pack = pack or DEFAULT_PACK
    given = Path(pack).expanduser()
    if given.is_dir() or os.sep in pack:
        if not _has_models(given):
            raise WeightsError(
                f"insightface model folder {pack} has no .onnx files (expected e.g. det_10g.onnx, genderage.onnx)"
            )
        return given.resolve()
    folder = _root() / "models" / pack
    if _has_models(folder):
        return folder
    how = (
        f"download {pack}.zip from {RELEASES} ({LICENCE}), unzip it and pass --backend insightface:/path/to/{pack}, "
        f"or unzip it into {folder}"
    )
    if _offline():
        raise WeightsError(f"insightface model pack {pack!r} is not in {folder} and downloads are off (offline): {how}")
    log.warning("downloading insightface model pack %r into %s (about 280 MB; %s)", pack, folder, LICENCE)
    try:
        from insightface.utils import ensure_available

        ensure_available("models", pack, root=str(_root()))
    except Exception as exc:  # any network or archive failure: one message that says what to do
        raise WeightsError(f"could not download insightface model pack {pack!r} ({exc}): {how}") from exc
    if not _has_models(folder):
        raise WeightsError(f"insightface model pack {pack!r} downloaded into {folder} holds no models: {how}")
    return folder


@lru_cache(maxsize=4)
def _face_analysis(folder: str, modules: tuple[str, ...]) -> Any:
    """insightface's own loader, on the CPU, with the requested tasks (detection is always loaded)."""
    import onnxruntime
    from insightface.app import FaceAnalysis

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # parallelism comes from worker processes
    app = FaceAnalysis(
        name=folder, allowed_modules=list(modules), providers=["CPUExecutionProvider"], sess_options=options
    )
    app.prepare(ctx_id=-1, det_thresh=0.5, det_size=(640, 640))
    return app


def _pack_describe(folder: Path, model: str) -> dict[str, Any]:
    from audit.hashing import sha256_file
    from audit.provenance import package_versions

    return {
        "model": model,
        "pack": str(folder),
        "version": package_versions(("insightface",)).get("insightface"),
        "licence": LICENCE,
        "sha256": {f"insightface/{f.name}": sha256_file(f) for f in sorted(folder.glob("*.onnx"))},
    }


@dataclass
class InsightFaceDetector:
    """SCRFD from the pack; its score is the detector's face probability (kept at >= det_thresh)."""

    pack: str | None = None
    det_thresh: float = 0.5
    id: str = field(default="insightface", init=False)

    def __post_init__(self) -> None:
        self._folder = resolve_pack(self.pack)
        self._app = _face_analysis(str(self._folder), ("detection",))

    def describe(self) -> dict[str, Any]:
        name = Path(self._app.det_model.model_file).name
        return {
            "id": self.id,
            **_pack_describe(self._folder, f"InsightFace SCRFD ({name})"),
            "det_thresh": self.det_thresh,
        }

    def detect(self, image: np.ndarray) -> list[Detection]:
        detect, scale = upscaled_for_detection(image)
        bgr = np.ascontiguousarray(detect[:, :, ::-1])
        bboxes, _ = self._app.det_model.detect(bgr, max_num=0, det_thresh=self.det_thresh)
        found = []
        for left, top, right, bottom, score in np.asarray(bboxes, float).reshape(-1, 5):
            box = box_in_original(left, top, right, bottom, scale, image.shape)
            if box is not None:
                found.append(Detection(box, float(score), scale))
        return found


def p_male_from_scores(female: float, male: float) -> float:
    """P(male) from the two gender outputs: as they are when they form a distribution, else a softmax."""
    if 0.0 <= female <= 1.0 and 0.0 <= male <= 1.0 and abs(female + male - 1.0) < 1e-3:
        return float(male)
    return float(1.0 / (1.0 + np.exp(female - male)))


@dataclass
class InsightFaceAttributes:
    """The pack's gender-age model on any detector's boxes, with insightface's own crop and normalisation."""

    pack: str | None = None
    id: str = field(default="insightface", init=False)

    def __post_init__(self) -> None:
        self._folder = resolve_pack(self.pack)
        app = _face_analysis(str(self._folder), ("detection", "genderage"))
        if "genderage" not in app.models:
            raise WeightsError(
                f"insightface model folder {self._folder} has no gender-age model (96x96 input, 3 outputs)"
            )
        self._model = app.models["genderage"]

    def describe(self) -> dict[str, Any]:
        name = Path(self._model.model_file).name
        return {"id": self.id, **_pack_describe(self._folder, f"InsightFace gender-age ({name})")}

    def scores(self, bgr: np.ndarray, box: Box) -> np.ndarray:
        """The model's three raw outputs for one box, cropped as ``insightface``'s ``Attribute.get`` does."""
        import cv2
        from insightface.utils import face_align

        model = self._model
        left, top, right, bottom = box
        center = ((left + right) / 2, (top + bottom) / 2)
        scale = model.input_size[0] / (max(right - left, bottom - top) * 1.5)
        crop, _ = face_align.transform(bgr, center, model.input_size[0], scale, 0)
        blob = cv2.dnn.blobFromImage(
            crop, 1.0 / model.input_std, model.input_size, (model.input_mean,) * 3, swapRB=True
        )
        return np.asarray(model.session.run(model.output_names, {model.input_name: blob})[0][0], float)

    def predict(self, image: np.ndarray, boxes: list[Box]) -> list[PerceivedAttributes]:
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        found = []
        for box in boxes:
            female, male, age = self.scores(bgr, box)
            p_male = p_male_from_scores(female, male)
            confidence = max(p_male, 1 - p_male)
            found.append(PerceivedAttributes(age=float(np.round(age * 100)), p_male=p_male, confidence=confidence))
        return found
