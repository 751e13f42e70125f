"""``clip:<arch>:<pretrained tag or weights path>``: open_clip image and text embeddings.

The model is built with ``open_clip.create_model_and_transforms(arch, pretrained=...)``: a tag
(``laion2b_s34b_b79k``, downloaded when online, from the local cache with ``HF_HUB_OFFLINE=1``) or a
local weights file (``.safetensors`` or ``.pt``). Images go through the model's own preprocessing
(PIL resize, centre crop, normalisation), which is written into the extractor id together with the
weights (the tag, or the file's sha256), so cached features never mix models or preprocessing.

Outputs: ``features`` (image embeddings, for FD in CLIP space, KID, precision/recall, Vendi) and
``clip`` (the same embeddings, for CLIP-score against :meth:`encode_texts`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from audit.errors import InputError, WeightsError


def _describe(preprocess: Any) -> str:
    """A compact description of an open_clip (torchvision) transform pipeline."""
    parts = []
    for t in getattr(preprocess, "transforms", [preprocess]):
        name = type(t).__name__
        if name == "Resize":
            parts.append(f"resize{t.size}-{str(t.interpolation).split('.')[-1].lower()}")
        elif name == "CenterCrop":
            parts.append(f"crop{tuple(t.size)}")
        elif name == "Normalize":
            parts.append(f"norm{tuple(round(m, 4) for m in t.mean)}")
        elif name not in ("ToTensor", "function"):
            parts.append(name.lower())
    return ",".join(parts)


class OpenClipExtractor:
    outputs = ("features", "clip")

    def __init__(self, arch: str, pretrained: str, *, device: str | None = None, batch_size: int = 64) -> None:
        import open_clip
        import torch

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = batch_size
        path = Path(pretrained)
        if path.suffix in (".safetensors", ".pt", ".pth", ".bin") and not path.is_file():
            raise WeightsError(f"open_clip weights not found: {path}")
        if arch not in open_clip.list_models():
            raise InputError(f"open_clip has no model {arch!r} (see open_clip.list_models())")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=pretrained, device=self.device
            )
        except (RuntimeError, OSError, ValueError) as exc:
            raise WeightsError(f"cannot load open_clip {arch} weights {pretrained!r}: {exc}") from None
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)
        if path.is_file():
            from audit.hashing import sha256_file

            weights = f"sha256:{sha256_file(path)[:16]}"
            self._sha256 = sha256_file(path)
        else:
            weights, self._sha256 = pretrained, None
        self.arch, self.pretrained = arch, pretrained
        self.id = f"clip:{arch}:{weights}@{_describe(preprocess)}"

    def models(self) -> list[dict[str, Any]]:
        return [{"id": f"open_clip:{self.arch}:{self.pretrained}", "sha256": self._sha256}]

    def __call__(self, images: np.ndarray | list[np.ndarray]) -> dict[str, np.ndarray]:
        import torch
        from PIL import Image

        out = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = torch.stack(
                    [self.preprocess(Image.fromarray(im)) for im in images[start : start + self.batch_size]]
                )
                out.append(self.model.encode_image(batch.to(self.device)).float().cpu().numpy())
        emb = np.concatenate(out).astype(np.float64)
        return {"features": emb, "clip": emb}

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            tokens = self.tokenizer(list(texts)).to(self.device)
            return self.model.encode_text(tokens).float().cpu().numpy().astype(np.float64)
