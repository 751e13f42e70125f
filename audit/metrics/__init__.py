"""Functional metrics on features (2-D numpy arrays, one row per image)."""

from audit.metrics.frechet import fid, frechet_distance, gaussian_stats

__all__ = ["fid", "frechet_distance", "gaussian_stats"]
