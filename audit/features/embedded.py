"""``embedded``: the zoo's digits-classifier (128-d features, class probabilities) and digits-clip
(64-d image and text embeddings), on images preprocessed to grey 8x8 in [0, 1] (channel mean, PIL box
resize when not 8x8)."""

from __future__ import annotations

import numpy as np

from audit.zoo import digits


class EmbeddedDigitsExtractor:
    id = "embedded:digits-classifier+digits-clip@grey-mean,box-8x8,div255"
    outputs = ("features", "probs", "clip")
    scores_labels = True  # ``probs`` are over the digits 0..9: class adherence is defined

    def models(self) -> list[dict]:
        from audit.zoo import registry

        return [registry.model_ref("digits-classifier"), registry.model_ref("digits-clip")]

    def __call__(self, images: np.ndarray | list[np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs for an (N, H, W, 3) array or a list of images of several sizes (each box-resized from
        its own size)."""
        from audit.zoo import classifier, clip, registry

        images = images if isinstance(images, list) else np.asarray(images)
        clf = registry.load("digits-classifier")
        logits = classifier.predict_logits(clf, images)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        return {
            "features": classifier.extract_features(clf, images),
            "probs": probs,
            "clip": clip.encode_images(registry.load("digits-clip"), images),
        }

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        from audit.zoo import clip, registry

        return clip.encode_texts(registry.load("digits-clip"), texts)

    @staticmethod
    def label_caption(label: int) -> str:
        """The caption the embedded CLIP-score uses for a class label."""
        from audit.zoo import clip

        return clip.caption(int(label))

    @property
    def image_size(self) -> int:
        return digits.IMAGE_SIZE
