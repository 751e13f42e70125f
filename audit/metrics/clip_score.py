"""CLIP-score (Hessel et al. 2021): 100 * max(cos(image, text), 0), averaged over image-text pairs.

The value depends on the CLIP model (torchmetrics defaults to ViT-L/14, many papers use ViT-B/32):
a report must name the model and the scale.
"""

from __future__ import annotations

import numpy as np

from audit.errors import InputError
from audit.metrics import checks


def clip_score(image_emb: np.ndarray, text_emb: np.ndarray) -> float:
    """Mean of ``100 * max(cos(image_emb[i], text_emb[i]), 0)`` over pairs i (embeddings need not be
    normalised)."""
    img = checks.features("image", image_emb, min_rows=1, metric="CLIP-score")
    txt = checks.features("text", text_emb, min_rows=1, metric="CLIP-score")
    checks.same_dims("CLIP-score", img, txt)
    if len(img) != len(txt):
        raise InputError(f"CLIP-score pairs images with texts: got {len(img)} images and {len(txt)} texts")
    norms = np.linalg.norm(img, axis=1) * np.linalg.norm(txt, axis=1)
    cos = (img * txt).sum(axis=1) / np.maximum(norms, 1e-12)
    return float(np.mean(100.0 * np.maximum(cos, 0.0)))
