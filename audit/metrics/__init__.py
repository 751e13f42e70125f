"""Functional metrics on features (2-D numpy arrays, one row per image).

Too few samples, NaN or mismatched dimensions raise :class:`audit.errors.InputError` with the metric's
name and need, never return NaN or an imaginary number.
"""

from audit.metrics.clip_score import clip_score
from audit.metrics.frechet import fid, frechet_distance, gaussian_stats
from audit.metrics.inception_score import inception_score
from audit.metrics.kid import kid
from audit.metrics.manifold import density_coverage, precision_recall
from audit.metrics.vendi import vendi_score

__all__ = [
    "clip_score",
    "density_coverage",
    "fid",
    "frechet_distance",
    "gaussian_stats",
    "inception_score",
    "kid",
    "precision_recall",
    "vendi_score",
]
