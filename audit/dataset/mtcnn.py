"""``mtcnn``: the MTCNN cascade (Zhang et al. 2016, P-, R- and O-Net) as packaged by ``facenet-pytorch``,
whose wheel ships the trained weights (2 MB, MIT). A third detector, stronger than HOG on small, tilted
and partly profile faces.

facenet-pytorch 2.6 declares ``torch<2.3`` but runs with current torch, so it cannot be a normal
dependency: install it with ``pip install --no-deps facenet-pytorch==2.6.0``. ``mtcnn:DIR`` loads the
three networks' state dicts (``pnet.pt``, ``rnet.pt``, ``onet.pt``) from DIR instead of the package's.
Detections below ``min_prob`` (default 0.95, the O-Net probability) are dropped: lower ones are mostly
false positives on textures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audit.dataset.face_model import Detection, box_in_original, upscaled_for_detection
from audit.errors import WeightsError

INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0 (it declares torch<2.3 but runs with current torch)"
NETS = ("pnet", "rnet", "onet")


@dataclass
class MtcnnDetector:
    weights: str | None = None  # a folder with pnet.pt, rnet.pt, onet.pt; None: the package's own
    min_prob: float = 0.95
    min_face_size: int = 20
    id: str = field(default="mtcnn", init=False)

    def __post_init__(self) -> None:
        try:
            from facenet_pytorch import MTCNN
        except ImportError as exc:
            raise WeightsError(f"the mtcnn face detector needs facenet-pytorch: {INSTALL_HINT}") from exc
        import torch

        self._mtcnn = MTCNN(keep_all=True, device="cpu", min_face_size=self.min_face_size)
        if self.weights is not None:
            for net in NETS:
                path = Path(self.weights) / f"{net}.pt"
                if not path.is_file():
                    raise WeightsError(f"mtcnn weights folder {self.weights} has no {net}.pt (needs {', '.join(NETS)})")
                getattr(self._mtcnn, net).load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    def weight_files(self) -> list[Path]:
        if self.weights is not None:
            return [Path(self.weights) / f"{net}.pt" for net in NETS]
        import facenet_pytorch

        return [Path(facenet_pytorch.__file__).parent / "data" / f"{net}.pt" for net in NETS]

    def describe(self) -> dict[str, Any]:
        from audit.hashing import sha256_file
        from audit.provenance import package_versions

        return {
            "id": self.id,
            "model": "MTCNN (facenet-pytorch)" + (f" weights from {self.weights}" if self.weights else ""),
            "version": package_versions(("facenet-pytorch",)).get("facenet-pytorch"),
            "licence": "MIT (facenet-pytorch)",
            "sha256": {f"mtcnn/{f.name}": sha256_file(f) for f in self.weight_files()},
            "min_prob": self.min_prob,
            "min_face_size": self.min_face_size,
        }

    def detect(self, image: np.ndarray) -> list[Detection]:
        import torch

        detect, scale = upscaled_for_detection(image)
        with torch.inference_mode():
            boxes, probs = self._mtcnn.detect(detect)
        if boxes is None:
            return []
        found = []
        boxes, probs = np.asarray(boxes.tolist(), float), np.asarray(probs.tolist(), float)  # object arrays
        for (left, top, right, bottom), prob in zip(boxes, probs, strict=True):
            box = box_in_original(left, top, right, bottom, scale, image.shape) if prob >= self.min_prob else None
            if box is not None:
                found.append(Detection(box, float(prob), scale))
        return found
