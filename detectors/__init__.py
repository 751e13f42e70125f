"""Synthetic-image detectors (scikit-learn estimator contract). Filled by the deepfake-check work."""
