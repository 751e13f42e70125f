"""A generator from another family: a per-class Gaussian mixture on the training digits' pixels.

The deepfake check must be tried on generators it was not calibrated on, including ones that are not
diffusion models. This is the "simple statistical" family: for each digit class, a Gaussian mixture
(:data:`COMPONENTS` full-covariance components, scikit-learn's EM with k-means initialisation and a fixed
``random_state``) fitted to the 64 pixel levels of that class's training digits (the zoo's 1,500 training
images; the held-out 297 are never seen), sampled with a seed, clipped to 0..16 and rounded to the 17
levels, then stored as the zoo's uint8 grey values: exactly the real digits' format, so no detector can
tell them apart by grey levels. It is fitted on the fly (about a second), so it ships no weights; the
recipe is this module.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

COMPONENTS = 4
FIT_SEED = 0
REG_COVAR = 1e-2  # levels are integers 0..16; a small ridge keeps constant border pixels' covariance valid


@functools.lru_cache(maxsize=1)
def _mixtures() -> tuple[Any, ...]:
    from sklearn.mixture import GaussianMixture

    from audit.zoo import digits

    images, labels = digits.load_split("train")
    levels = digits.uint8_to_levels(images).reshape(len(images), -1).astype(np.float64)
    return tuple(
        GaussianMixture(COMPONENTS, covariance_type="full", reg_covar=REG_COVAR, random_state=FIT_SEED).fit(
            levels[labels == c]
        )
        for c in range(digits.NUM_CLASSES)
    )


def sample_mixture(labels: Sequence[int], seed: int) -> np.ndarray:
    """uint8 grey digits (N, 8, 8), image ``i`` of class ``labels[i]``; the same labels and seed give the
    same images. Each class's images are drawn together from that class's mixture, in order."""
    from audit.zoo import digits

    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= digits.NUM_CLASSES):
        raise ValueError(f"labels must be 0..{digits.NUM_CLASSES - 1}")
    out = np.empty((len(labels), digits.IMAGE_SIZE, digits.IMAGE_SIZE), dtype=np.uint8)
    mixtures = _mixtures()
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        rng = np.random.default_rng([seed, int(c)])
        x = _draw(mixtures[int(c)], len(where), rng)
        levels = np.clip(np.rint(x), 0, digits.N_LEVELS - 1)
        out[where] = digits.levels_to_uint8(levels).reshape(-1, digits.IMAGE_SIZE, digits.IMAGE_SIZE)
    return out


def _draw(mixture: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws from a fitted full-covariance mixture with our own generator (scikit-learn's ``sample``
    takes only the estimator's own ``random_state``)."""
    component = rng.choice(len(mixture.weights_), size=n, p=mixture.weights_)
    z = rng.standard_normal((n, mixture.means_.shape[1]))
    chol = np.linalg.cholesky(mixture.covariances_)  # (K, d, d)
    return mixture.means_[component] + np.einsum("nij,nj->ni", chol[component], z)
