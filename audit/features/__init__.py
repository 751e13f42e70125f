"""Feature extractors: uint8 images (N, H, W, 3) -> named feature arrays, one row per image.

An extractor's ``id`` includes its preprocessing (resize filter, size, scaling), so cached features
are never reused across preprocessing choices.
"""

from audit.features.base import FeatureExtractor, get_extractor

__all__ = ["FeatureExtractor", "get_extractor"]
