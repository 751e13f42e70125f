"""``inception`` / ``inception:<folder>``: clean-fid's Inception-v3 features with its clean resize.

The weights are clean-fid's TorchScript port of the TensorFlow FID Inception (the file
``inception-2015-12-05.pt``), loaded by clean-fid's own ``InceptionV3W`` from ``<folder>`` (default:
clean-fid's download folder, ``/tmp``). When the file is missing it is downloaded only if the user is
online and has not set ``HF_HUB_OFFLINE``/``GENAUDIT_OFFLINE``; otherwise a clear error says where to
put it. Images are resized as clean-fid's ``mode="clean"`` does: PIL bicubic to 299x299 per channel in
float (no uint8 rounding, antialiased), then ``(x - 128) / 128``.

Outputs: ``features`` (2048-d pool features, for FID/KID/precision/recall/Vendi) and ``probs``
(softmax of the 1008-way logits, for the Inception Score).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from audit.errors import WeightsError

WEIGHTS_FILE = "inception-2015-12-05.pt"
DEFAULT_FOLDER = "/tmp"  # clean-fid's own default on Linux and macOS


def _offline() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("HF_HUB_OFFLINE", "GENAUDIT_OFFLINE"))


class InceptionExtractor:
    outputs = ("features", "probs")

    def __init__(self, folder: str | Path | None = None, *, device: str | None = None, batch_size: int = 64) -> None:
        import torch
        from cleanfid.inception_torchscript import InceptionV3W
        from cleanfid.resize import make_resizer

        self.folder = Path(folder or DEFAULT_FOLDER)
        weights = self.folder / WEIGHTS_FILE
        if not weights.is_file() and _offline():
            raise WeightsError(
                f"clean-fid Inception weights not found at {weights} and downloads are off (offline): put "
                f"{WEIGHTS_FILE} there or pass --extractor inception:FOLDER"
            )
        try:
            self.net = InceptionV3W(str(self.folder), download=not weights.is_file())
        except Exception as exc:  # clean-fid raises whatever the download or torch.jit.load raise
            raise WeightsError(f"cannot load clean-fid Inception from {weights}: {exc}") from None
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.net = self.net.to(self.device).eval()
        self.batch_size = batch_size
        self.resize = make_resizer("PIL", False, "bicubic", (299, 299))
        from audit.hashing import sha256_file

        self._sha256 = sha256_file(weights)
        self.id = f"inception:clean-fid-torchscript:sha256:{self._sha256[:16]}@clean-pil-bicubic-299,(x-128)/128"

    def models(self) -> list[dict[str, Any]]:
        return [{"id": "clean-fid:inception-2015-12-05", "sha256": self._sha256}]

    def __call__(self, images: np.ndarray | list[np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        feats, probs = [], []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = np.stack([self.resize(im) for im in images[start : start + self.batch_size]])
                x = torch.from_numpy(batch.transpose(0, 3, 1, 2)).float().to(self.device)
                f = self.net(x)
                feats.append(f.double().cpu().numpy())
                output = getattr(self.net.base, "output", None)
                if output is not None:
                    probs.append(torch.softmax(output(f).double(), dim=1).cpu().numpy())
        out = {"features": np.concatenate(feats)}
        if probs:
            out["probs"] = np.concatenate(probs)
        return out

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        raise WeightsError("the Inception extractor has no text encoder: use clip:ARCH:WEIGHTS for CLIP-score")
