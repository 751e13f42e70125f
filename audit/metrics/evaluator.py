"""One evaluator: extract each image's features once per extractor, feed every metric from them.

Features are cached by (extractor id, which includes preprocessing; sha256 of the image's pixels and
shape), in memory and optionally in one ``.npz`` file, so re-scoring a cell or scoring the same
reference set for every cell of a sweep never runs the network twice.

95% intervals come from a percentile bootstrap over the GENERATED images (the reference set is fixed),
for the metrics where resampling with replacement is sound: FID, CLIP-score, class adherence, precision
and density. The others are biased by duplicated draws and get no interval: recall (a duplicate is its
own nearest neighbour), coverage (fewer distinct samples cover less), the Vendi score (duplicates look
like less diversity) and IS (duplicates skew each split's marginal; it keeps its std over splits). KID
reports its std over subsets. Measured on the embedded digits: the bootstrap put coverage's and IS's
point estimates outside their own intervals, which is how this was found.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audit.atomic import write_bytes_atomic
from audit.errors import InputError
from audit.metrics import checks
from audit.metrics.clip_score import clip_score
from audit.metrics.frechet import check_fid_inputs, frechet_distance, gaussian_stats
from audit.metrics.inception_score import inception_score
from audit.metrics.kid import kid
from audit.metrics.manifold import (
    density_coverage,
    density_given_radii,
    knn_radii,
    precision_given_radii,
    precision_recall,
)
from audit.metrics.vendi import vendi_score

PRECISION_K = 3  # Kynkaanniemi et al. 2019
DENSITY_K = 5  # Naeem et al. 2020


class FeatureCache:
    """Extractor outputs per image, keyed by extractor id and pixel content."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._rows: dict[str, dict[str, np.ndarray]] = {}
        self.extracted = 0  # images actually sent through an extractor (for tests and progress)
        if self.path and self.path.is_file():
            with np.load(self.path, allow_pickle=False) as data:
                keys = data["keys"]
                outputs = [name for name in data.files if name != "keys"]
                for i, key in enumerate(keys):
                    self._rows[str(key)] = {name: data[name][i] for name in outputs}

    @staticmethod
    def key(extractor_id: str, image: np.ndarray) -> str:
        h = hashlib.sha256(extractor_id.encode())
        h.update(str(image.shape).encode())
        h.update(np.ascontiguousarray(image).tobytes())
        return h.hexdigest()

    def extract(self, extractor: Any, images: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs for every image, running the extractor only on images not seen before."""
        if len(images) == 0:
            raise InputError(f"no images to extract features from (extractor {extractor.id})")
        keys = [self.key(extractor.id, im) for im in images]
        unique: dict[str, int] = {}  # first index of each image not yet cached
        for i, k in enumerate(keys):
            if k not in self._rows:
                unique.setdefault(k, i)
        if unique:
            idx = list(unique.values())
            out = extractor(np.asarray(images)[idx])
            self.extracted += len(idx)
            for j, key in enumerate(unique):
                self._rows[key] = {name: arr[j] for name, arr in out.items()}
        return {name: np.stack([self._rows[k][name] for k in keys]) for name in self._rows[keys[0]]}

    def save(self) -> None:
        """Write the cache atomically to its path (one ``.npz``: keys plus one array per output)."""
        if self.path is None or not self._rows:
            return
        keys = list(self._rows)
        outputs = {name: np.stack([self._rows[k][name] for k in keys]) for name in self._rows[keys[0]]}
        buf = io.BytesIO()
        np.savez(buf, keys=np.array(keys), **outputs)
        write_bytes_atomic(self.path, buf.getvalue())


@dataclass(frozen=True)
class _Reference:
    """What the bootstrapped metrics need of the fixed reference set, computed once per evaluation."""

    features: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    radii_precision: np.ndarray  # k = 3 (precision)
    radii_density: np.ndarray  # k = 5 (density)

    @classmethod
    def of(cls, features: np.ndarray) -> _Reference:
        mu, sigma = gaussian_stats(features)
        return cls(features, mu, sigma, knn_radii(features, PRECISION_K), knn_radii(features, DENSITY_K))


def _point_metrics(
    ref: _Reference, fake: dict[str, np.ndarray], text_emb: np.ndarray | None, labels: np.ndarray | None
) -> dict[str, float]:
    """Metrics that are bootstrapped (see the module docstring); only the generated side is computed."""
    out = {
        "fid": frechet_distance(ref.mu, ref.sigma, *gaussian_stats(fake["features"])),
        "precision": precision_given_radii(ref.features, ref.radii_precision, fake["features"]),
        "density": density_given_radii(ref.features, ref.radii_density, fake["features"], DENSITY_K),
    }
    if "probs" in fake and labels is not None:
        out["class_adherence"] = float((fake["probs"].argmax(axis=1) == labels).mean())
    if text_emb is not None and "clip" in fake:
        out["clip_score"] = clip_score(fake["clip"], text_emb)
    return out


def evaluate(
    real_images: np.ndarray,
    fake_images: np.ndarray,
    extractor: Any,
    *,
    labels: np.ndarray | None = None,
    captions: list[str] | None = None,
    cache: FeatureCache | None = None,
    bootstrap: int = 100,
    seed: int = 0,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Every metric of ``fake_images`` against ``real_images`` with one feature pass per image.

    ``labels`` (requested classes) add class adherence; ``captions`` (one per generated image) add
    CLIP-score. Returns ``{metric: {"value", "ci95" (or None)}, ..., "n_real", "n_fake", "extractor"}``.
    """
    cache = cache or FeatureCache()
    real = cache.extract(extractor, real_images)
    fake = cache.extract(extractor, fake_images)
    n = len(fake_images)
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != n:
            raise InputError(f"one label per generated image: {len(labels)} labels for {n} images")
    text_emb = None
    if captions is not None:
        if len(captions) != n:
            raise InputError(f"one caption per generated image: {len(captions)} captions for {n} images")
        text_emb = extractor.encode_texts(list(captions))
    # validation as in the standalone metrics, then the reference side once for every resample
    real_f, _ = check_fid_inputs(real["features"], fake["features"])
    checks.features("real", real_f, min_rows=DENSITY_K + 1, metric="precision/density")
    ref = _Reference.of(real_f)
    point = _point_metrics(ref, fake, text_emb, labels)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in point}
    for b in range(bootstrap):
        idx = rng.integers(0, n, size=n)
        sample = {name: arr[idx] for name, arr in fake.items()}
        values = _point_metrics(
            ref, sample, None if text_emb is None else text_emb[idx], None if labels is None else labels[idx]
        )
        for name, value in values.items():
            draws[name].append(value)
        if progress:
            progress(b + 1)
    result: dict[str, Any] = {
        name: {
            "value": value,
            "ci95": [float(np.percentile(draws[name], 2.5)), float(np.percentile(draws[name], 97.5))]
            if bootstrap
            else None,
        }
        for name, value in point.items()
    }
    _, recall = precision_recall(real["features"], fake["features"], k=PRECISION_K)
    _, coverage = density_coverage(real["features"], fake["features"], k=DENSITY_K)
    result["recall"] = {"value": recall, "ci95": None}
    result["coverage"] = {"value": coverage, "ci95": None}
    if "probs" in fake:
        is_mean, is_std = inception_score(fake["probs"], splits=min(10, n), seed=seed)
        result["inception_score"] = {"value": is_mean, "std": is_std, "ci95": None}
    kid_size = min(kid_subset_size, len(real["features"]), n)
    kid_mean, kid_std = kid(real["features"], fake["features"], subsets=kid_subsets, subset_size=kid_size, seed=seed)
    result["vendi"] = {"value": vendi_score(fake["features"]), "ci95": None}
    result["kid"] = {"value": kid_mean, "std": kid_std, "ci95": None, "subsets": kid_subsets, "subset_size": kid_size}
    result.update(n_real=len(real_images), n_fake=n, extractor=extractor.id, bootstrap=bootstrap, seed=seed)
    return result
