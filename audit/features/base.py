"""The extractor protocol and the registry of extractor specs."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from audit.errors import InputError


@runtime_checkable
class FeatureExtractor(Protocol):
    """``id`` names model and preprocessing; ``outputs`` lists the arrays ``__call__`` returns:
    ``features`` (for FID, KID, precision/recall, density/coverage, Vendi), optionally ``probs`` (class
    probabilities, for IS and class adherence) and ``clip`` (image embeddings, for CLIP-score)."""

    id: str
    outputs: tuple[str, ...]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


def get_extractor(spec: str) -> FeatureExtractor:
    if spec == "embedded":
        from audit.features.embedded import EmbeddedDigitsExtractor

        return EmbeddedDigitsExtractor()
    raise InputError(f"unknown feature extractor {spec!r}; available: embedded")
