"""The extractor protocol and the registry of extractor specs."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from audit.errors import InputError


@runtime_checkable
class FeatureExtractor(Protocol):
    """``id`` names model and preprocessing; ``outputs`` lists the arrays ``__call__`` returns:
    ``features`` (for FID, KID, precision/recall, density/coverage, Vendi), optionally ``probs`` (class
    probabilities, for IS and class adherence) and ``clip`` (image embeddings, for CLIP-score).
    ``__call__`` takes uint8 images as one (N, H, W, 3) array or as a list of (H, W, 3) arrays of several
    sizes, and resizes each image from its own size to its input (clean-fid's convention)."""

    id: str
    outputs: tuple[str, ...]

    def __call__(self, images: np.ndarray | list[np.ndarray]) -> dict[str, np.ndarray]: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


def get_extractor(spec: str, **options: object) -> FeatureExtractor:
    """``embedded``, ``inception`` or ``inception:<weights folder>``, ``clip:<arch>:<tag or path>``;
    ``options`` (``device``, ``batch_size``) go to the pretrained extractors."""
    kind, _, rest = spec.partition(":")
    if spec == "embedded":
        from audit.features.embedded import EmbeddedDigitsExtractor

        return EmbeddedDigitsExtractor()
    if kind == "inception":
        from audit.features.inception import InceptionExtractor

        return InceptionExtractor(rest or None, **options)  # type: ignore[arg-type]
    if kind == "clip":
        arch, _, pretrained = rest.partition(":")
        if not arch or not pretrained:
            raise InputError(f"CLIP extractor spec is clip:ARCH:PRETRAINED_TAG_OR_PATH, got {spec!r}")
        from audit.features.open_clip_extractor import OpenClipExtractor

        return OpenClipExtractor(arch, pretrained, **options)  # type: ignore[arg-type]
    raise InputError(
        f"unknown feature extractor {spec!r}; available: embedded, inception[:FOLDER], clip:ARCH:TAG_OR_PATH"
    )
