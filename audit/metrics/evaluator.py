"""One evaluator: extract each image's features once per extractor, feed every metric from them.

Features are cached by (extractor id, which includes preprocessing; sha256 of the image's pixels and
shape), in memory and optionally in one ``.npz`` file, so re-scoring a cell or scoring the same
reference set for every cell of a sweep never runs the network twice.

Every figure gets a 95% interval over the GENERATED images (the reference set is fixed), by one of
two resampling schemes, named in each figure's ``ci_method``:

* ``bootstrap`` (percentile bootstrap, draws with replacement) for the statistics that are averages
  over generated images or their moments, where duplicated draws are harmless: FID, FD in CLIP space,
  CLIP-score, class adherence, precision and density.
* ``half-sample`` for the statistics that duplicates bias: recall (a duplicate is its own nearest
  neighbour), coverage (fewer distinct samples cover less), the Vendi score (duplicates look like less
  diversity), IS (duplicates skew each split's marginal) and KID. Each draw takes a random half
  WITHOUT replacement; for a mean, the spread of half-sample means equals the sampling spread of the
  full-sample mean (variance sigma^2/m (1 - m/n) = sigma^2/n at m = n/2), and the draws are centred on
  their own mean. It measures sampling variability at this n, not the estimator's small-sample bias
  (recall and coverage grow with n).

In both schemes the interval is the draws' 2.5-97.5 percentile range shifted so that the draws' mean
sits on the full-sample figure: resampling biases Frechet distances upwards (duplicates shrink the
effective sample; measured: FD in CLIP space fell below its own uncorrected bootstrap interval), and
the shift removes that offset while keeping the spread. For averages the shift is ~0.

Measured on the embedded digits before this scheme: a with-replacement bootstrap put coverage's and
IS's point estimates outside their own intervals. With a fixed ``seed`` and the same n, every cell of a
sweep draws the same indices, so the per-draw values (``keep_draws``) pair across cells for paired
differences.
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
    """What the resampled metrics need of the fixed reference set, computed once per evaluation."""

    features: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    radii_precision: np.ndarray  # k = 3 (precision)
    radii_density: np.ndarray  # k = 5 (density, coverage)
    clip_stats: tuple[np.ndarray, np.ndarray] | None  # mean and covariance of CLIP image embeddings

    @classmethod
    def of(cls, real: dict[str, np.ndarray], fake: dict[str, np.ndarray]) -> _Reference:
        features = real["features"]
        mu, sigma = gaussian_stats(features)
        clip_stats = None
        if "clip" in real and "clip" in fake and len(real["clip"]) > real["clip"].shape[1]:
            clip_stats = gaussian_stats(np.asarray(real["clip"], dtype=np.float64))
        return cls(features, mu, sigma, knn_radii(features, PRECISION_K), knn_radii(features, DENSITY_K), clip_stats)


def _bootstrap_metrics(
    ref: _Reference, fake: dict[str, np.ndarray], text_emb: np.ndarray | None, labels: np.ndarray | None
) -> dict[str, float]:
    """Metrics that resample with replacement (see the module docstring); only the generated side."""
    out = {
        "fid": frechet_distance(ref.mu, ref.sigma, *gaussian_stats(fake["features"])),
        "precision": precision_given_radii(ref.features, ref.radii_precision, fake["features"]),
        "density": density_given_radii(ref.features, ref.radii_density, fake["features"], DENSITY_K),
    }
    if ref.clip_stats is not None and len(fake["clip"]) > fake["clip"].shape[1]:
        out["fd_clip"] = frechet_distance(*ref.clip_stats, *gaussian_stats(np.asarray(fake["clip"], np.float64)))
    if "probs" in fake and labels is not None:
        out["class_adherence"] = float((fake["probs"].argmax(axis=1) == labels).mean())
    if text_emb is not None and "clip" in fake:
        out["clip_score"] = clip_score(fake["clip"], text_emb)
    return out


class _KidKernels:
    """Cubic-kernel sums for unbiased MMD^2 of the whole reference set against any subset of the
    generated set, from kernel matrices computed once (used for KID's half-sample draws)."""

    MAX_FAKE = 4096  # n x n float64 kernel: 128 MiB at this size

    def __init__(self, real: np.ndarray, fake: np.ndarray) -> None:
        d = real.shape[1]
        k_rr = (real @ real.T / d + 1.0) ** 3
        self.n_real = len(real)
        self.within_real = (k_rr.sum() - np.trace(k_rr)) / (self.n_real * (self.n_real - 1))
        self.k_ff = (fake @ fake.T / d + 1.0) ** 3
        self.cross = ((real @ fake.T / d + 1.0) ** 3).sum(axis=0)  # per generated image

    def mmd2(self, idx: np.ndarray) -> float:
        m = len(idx)
        k = self.k_ff[np.ix_(idx, idx)]
        within_fake = (k.sum() - np.trace(k)) / (m * (m - 1))
        return float(self.within_real + within_fake - 2.0 * self.cross[idx].sum() / (self.n_real * m))


def _half_sample_metrics(
    real: dict[str, np.ndarray],
    fake: dict[str, np.ndarray],
    idx: np.ndarray,
    kernels: _KidKernels | None,
    kid_subset_size: int,
    seed: int,
) -> dict[str, float]:
    """Metrics that duplicates would bias, on one half of the generated set drawn without replacement."""
    feats = fake["features"][idx]
    _, recall = precision_recall(real["features"], feats, k=PRECISION_K)
    _, coverage = density_coverage(real["features"], feats, k=DENSITY_K)
    out = {"recall": recall, "coverage": coverage, "vendi": vendi_score(feats)}
    if "probs" in fake:
        out["inception_score"] = inception_score(fake["probs"][idx], splits=min(10, len(idx)), seed=seed)[0]
    if kernels is not None:
        out["kid"] = kernels.mmd2(idx)
    else:
        size = min(kid_subset_size, len(real["features"]), len(idx))
        out["kid"] = kid(real["features"], feats, subsets=10, subset_size=size, seed=seed)[0]
    return out


def _interval(draws: list[float], point: float) -> list[float]:
    """The draws' 2.5 and 97.5 percentiles, shifted so the draws' mean sits on the point estimate."""
    lo, hi = np.percentile(draws, [2.5, 97.5])
    shift = point - float(np.mean(draws))
    return [float(lo + shift), float(hi + shift)]


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
    keep_draws: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Every metric of ``fake_images`` against ``real_images`` with one feature pass per image.

    ``labels`` (requested classes) add class adherence; ``captions`` (one per generated image) add
    CLIP-score. Returns ``{metric: {"value", "ci95", "ci_method"}, ..., "n_real", "n_fake",
    "extractor"}``; IS and KID also carry their std over splits/subsets. ``bootstrap`` is the number of
    resampling draws for each scheme (0: no intervals); ``keep_draws`` adds ``"draws"`` (per metric, the
    value at every draw, for paired differences between evaluations with the same seed and n).
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
    if bootstrap and n < 2 * (DENSITY_K + 2):
        raise InputError(f"intervals need at least {2 * (DENSITY_K + 2)} generated images (half-samples), got {n}")
    ref = _Reference.of(real, fake)
    point = _bootstrap_metrics(ref, fake, text_emb, labels)
    _, recall = precision_recall(real["features"], fake["features"], k=PRECISION_K)
    _, coverage = density_coverage(real["features"], fake["features"], k=DENSITY_K)
    kid_size = min(kid_subset_size, len(real["features"]), n)
    kid_mean, kid_std = kid(real["features"], fake["features"], subsets=kid_subsets, subset_size=kid_size, seed=seed)
    half_point = {"recall": recall, "coverage": coverage, "vendi": vendi_score(fake["features"]), "kid": kid_mean}
    is_mean = is_std = None
    if "probs" in fake:
        is_mean, is_std = inception_score(fake["probs"], splits=min(10, n), seed=seed)
        half_point["inception_score"] = is_mean

    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in [*point, *half_point]}
    kernels = _KidKernels(real["features"], fake["features"]) if bootstrap and n <= _KidKernels.MAX_FAKE else None
    for b in range(bootstrap):
        idx = rng.integers(0, n, size=n)
        sample = {name: arr[idx] for name, arr in fake.items()}
        values = _bootstrap_metrics(
            ref, sample, None if text_emb is None else text_emb[idx], None if labels is None else labels[idx]
        )
        half = rng.permutation(n)[: n // 2]
        values.update(_half_sample_metrics(real, fake, half, kernels, kid_subset_size, seed + b))
        for name, value in values.items():
            draws[name].append(value)
        if progress:
            progress(b + 1)
    result: dict[str, Any] = {}
    for name, value in [*point.items(), *half_point.items()]:
        half_sampled = name in half_point
        result[name] = {
            "value": value,
            "ci95": _interval(draws[name], value) if bootstrap else None,
            "ci_method": ("half-sample" if half_sampled else "bootstrap") if bootstrap else None,
        }
    if is_mean is not None:
        result["inception_score"]["std"] = is_std
    result["kid"].update(std=kid_std, subsets=kid_subsets, subset_size=kid_size)
    result.update(n_real=len(real_images), n_fake=n, extractor=extractor.id, bootstrap=bootstrap, seed=seed)
    if keep_draws:
        result["draws"] = draws
    return result
