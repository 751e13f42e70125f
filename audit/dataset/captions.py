"""Image-caption coherence: the CLIP-score of every captioned image in an audit (docs/captions.md).

``caption_score`` = 100 * max(cos(image embedding, caption embedding), 0), the CLIP-score of Hessel et
al. 2021 for one pair (:func:`audit.metrics.clip_score`). The model is ``embedded`` (the zoo's digits
CLIP, the default: it knows "a handwritten digit N" and nothing else) or ``clip:ARCH:PRETRAINED_OR_PATH``
(open_clip). A caption is scored as the user wrote it, truncated to :data:`MAX_CAPTION_CHARS` characters
in the record (the model's tokenizer truncates further: 77 tokens for CLIP).

The threshold below which a caption counts as incoherent depends on the model: :func:`default_threshold`
gives the documented defaults (docs/captions.md says how each was chosen), ``--caption-threshold``
overrides it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from audit.errors import InputError

DEFAULT_MODEL = "embedded"
MAX_CAPTION_CHARS = 2_000
# embedded: 0.46% of held-out digits' own captions score below 25, and 95% of another digit's captions
# do (benchmarks/caption_threshold.py; docs/captions.md)
EMBEDDED_THRESHOLD = 25.0
# clip:*: LAION-5B kept pairs with ViT-B/32 cosine >= 0.28 (Schuhmann et al. 2022), i.e. CLIP-score 28
CLIP_THRESHOLD = 28.0
_TEXT_CACHE = 4_096  # caption embeddings kept (datasets repeat captions: templates, class names)


def check_model(spec: str) -> str:
    """``spec`` if it names a caption model this audit can load, else one clear error."""
    if spec == "embedded" or (spec.startswith("clip:") and len(spec.split(":", 2)) == 3 and all(spec.split(":", 2))):
        return spec
    raise InputError(f"unknown caption model {spec!r}; use embedded or clip:ARCH:PRETRAINED_OR_PATH")


def default_threshold(spec: str) -> float:
    """The incoherence threshold documented for ``spec`` (docs/captions.md)."""
    return EMBEDDED_THRESHOLD if check_model(spec) == "embedded" else CLIP_THRESHOLD


class CaptionScorer:
    """Scores (image, caption) pairs one at a time; the model is loaded on the first caption, so an
    audit of a dataset without captions never loads it."""

    def __init__(self, spec: str = DEFAULT_MODEL) -> None:
        self.spec = check_model(spec)
        self._extractor: Any = None
        self._texts: OrderedDict[str, np.ndarray] = OrderedDict()

    def _model(self) -> Any:
        if self._extractor is None:
            from audit.features.base import get_extractor

            self._extractor = get_extractor(self.spec, device="cpu", batch_size=1) if self.spec != "embedded" else \
                get_extractor(self.spec)  # fmt: skip
        return self._extractor

    def _text(self, caption: str) -> np.ndarray:
        emb = self._texts.get(caption)
        if emb is None:
            emb = self._model().encode_texts([caption])[0]
            self._texts[caption] = emb
            if len(self._texts) > _TEXT_CACHE:
                self._texts.popitem(last=False)
        else:
            self._texts.move_to_end(caption)
        return emb

    def score(self, image: np.ndarray, caption: str) -> float:
        """CLIP-score of one RGB uint8 image and its caption, rounded to 4 decimals for the record."""
        from audit.metrics.clip_score import clip_score

        image_emb = self._model()(np.asarray(image)[None])["clip"]
        return round(clip_score(image_emb, self._text(caption)[None]), 4)

    def describe(self) -> dict[str, Any]:
        """The model's id and weights (hashes) for the results' provenance."""
        model = self._model()
        return {"caption_model": self.spec, "id": getattr(model, "id", self.spec), "models": model.models()}
