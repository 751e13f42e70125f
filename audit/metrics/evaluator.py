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

Above the dense limit (about 4,000 x 4,000 images) FID, FD in CLIP space, Vendi and KID are resampled
by blocks of generated images instead (``block-bootstrap``, ``block-half-sample``: 32 to 256 blocks of
a seeded random partition, see :mod:`audit.metrics.blocks`), so a draw at 50,000 images costs a d x d
eigenproblem instead of an O(N d^2) pass.

In every scheme the interval is the draws' 2.5-97.5 percentile range shifted so that the draws' mean
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
import logging
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from audit.atomic import write_bytes_atomic
from audit.errors import InputError
from audit.metrics import checks
from audit.metrics.frechet import check_fid_inputs, frechet_distance, gaussian_stats
from audit.metrics.kid import kid
from audit.metrics.manifold import DENSITY_K, PRECISION_K
from audit.metrics.resampling import Resampler

log = logging.getLogger(__name__)


class FeatureCache:
    """Extractor outputs per image, keyed by extractor id and pixel content. A cache file that cannot be
    read (damaged after it was written: writes are atomic) is ignored with a warning, never fatal: what it
    held is computed again and the next :meth:`save` replaces it."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._rows: dict[str, dict[str, np.ndarray]] = {}
        self.extracted = 0  # images actually sent through an extractor (for tests and progress)
        if self.path and self.path.is_file():
            try:
                self._rows = self._read(self.path)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                why = type(exc).__name__
                log.warning(
                    "feature cache %s is unreadable (%s): ignored, its features are computed again", self.path, why
                )

    @staticmethod
    def _read(path: Path) -> dict[str, dict[str, np.ndarray]]:
        rows: dict[str, dict[str, np.ndarray]] = {}
        with np.load(path, allow_pickle=False) as data:
            keys = data["keys"]
            # each data[name] reads and inflates the whole array: once per output, never once per row
            arrays = {name: data[name] for name in data.files if name != "keys"}
            if any(len(array) != len(keys) for array in arrays.values()):
                raise ValueError("outputs and keys differ in length")
            for i, key in enumerate(keys):
                rows[str(key)] = {name: array[i] for name, array in arrays.items()}
        return rows

    @staticmethod
    def key(extractor_id: str, image: np.ndarray) -> str:
        h = hashlib.sha256(extractor_id.encode())
        h.update(str(image.shape).encode())
        h.update(np.ascontiguousarray(image).tobytes())
        return h.hexdigest()

    def extract(self, extractor: Any, images: np.ndarray | list[np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs for every image, running the extractor only on images not seen before. ``images``: one
        (N, H, W, 3) array, or a list of images of several sizes (:func:`audit.io.images.image_batch`)."""
        if len(images) == 0:
            raise InputError(f"no images to extract features from (extractor {extractor.id})")
        keys = [self.key(extractor.id, im) for im in images]
        unique: dict[str, int] = {}  # first index of each image not yet cached
        for i, k in enumerate(keys):
            if k not in self._rows:
                unique.setdefault(k, i)
        if unique:
            idx = list(unique.values())
            out = extractor(images[idx] if isinstance(images, np.ndarray) else [images[i] for i in idx])
            self.extracted += len(idx)
            for j, key in enumerate(unique):
                self._rows[key] = {name: arr[j] for name, arr in out.items()}
            if len(idx) == len(keys):  # every image new and distinct: the rows are ``out`` itself, no copy
                return out
        return {name: np.stack([self._rows[k][name] for k in keys]) for name in self._rows[keys[0]]}

    def take(self, other: FeatureCache) -> None:
        """Add ``other``'s rows (features a shard extracted) to this cache."""
        for key, row in other._rows.items():
            self._rows.setdefault(key, row)

    def save(self) -> None:
        """Write the cache atomically to its path (one ``.npz``: keys plus one array per output)."""
        if self.path is None or not self._rows:
            return
        keys = list(self._rows)
        outputs = {name: np.stack([self._rows[k][name] for k in keys]) for name in self._rows[keys[0]]}
        buf = io.BytesIO()
        np.savez(buf, keys=np.array(keys), **outputs)
        write_bytes_atomic(self.path, buf.getvalue())


def centred_interval(draws: Any, point: float) -> list[float]:
    """The draws' 2.5 and 97.5 percentiles, shifted so the draws' mean sits on the point estimate."""
    lo, hi = np.percentile(draws, [2.5, 97.5])
    shift = point - float(np.mean(draws))
    return [float(lo + shift), float(hi + shift)]


STREAM_CHUNK = 256  # images decoded and extracted at a time when streaming (a multiple of extractors' batch 64)


def extract_all(cache: FeatureCache, extractor: Any, chunks: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of ``extractor`` for a stream of image chunks, concatenated: only one chunk of pixels is
    held at a time, the features of all of them (50,000 Inception features: 400 MB; the images at 512 px
    would be 39 GB). Chunks of :data:`STREAM_CHUNK` batch images as one call over all of them would."""
    parts = [cache.extract(extractor, chunk) for chunk in chunks]
    if not parts:
        raise InputError(f"no images to extract features from (extractor {extractor.id})")
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def evaluate(
    real_images: np.ndarray,
    fake_images: np.ndarray,
    extractor: Any,
    *,
    cache: FeatureCache | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Every metric of ``fake_images`` against ``real_images`` with one feature pass per image (the
    ``options`` of :func:`evaluate_features`)."""
    cache = cache or FeatureCache()
    real = cache.extract(extractor, real_images)
    fake = cache.extract(extractor, fake_images)
    return evaluate_features(real, fake, extractor, **options)


def evaluate_features(
    real: dict[str, np.ndarray],
    fake: dict[str, np.ndarray],
    extractor: Any,
    *,
    labels: np.ndarray | None = None,
    captions: list[str] | None = None,
    text_emb: np.ndarray | None = None,
    bootstrap: int = 100,
    seed: int = 0,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    keep_draws: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Every metric of the generated images' extractor outputs ``fake`` against the reference's ``real``
    (from :meth:`FeatureCache.extract` or :func:`extract_all`; ``extractor`` names them and encodes
    captions).

    ``labels`` (requested classes) add class adherence; ``captions`` (one per generated image) add
    CLIP-score, or ``text_emb``, the captions already encoded by ``extractor.encode_texts`` (a caller
    scoring many cells encodes them once; then ``extractor`` needs only its ``id``). Returns
    ``{metric: {"value", "ci95", "ci_method"}, ..., "n_real", "n_fake",
    "extractor"}``; IS and KID also carry their std over splits/subsets. ``bootstrap`` is the number of
    resampling draws for each scheme (0: no intervals); ``keep_draws`` adds ``"draws"`` (per metric, the
    value at every draw, for paired differences between evaluations with the same seed and n).
    """
    n = len(fake["features"])
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != n:
            raise InputError(f"one label per generated image: {len(labels)} labels for {n} images")
    if captions is not None:
        if len(captions) != n:
            raise InputError(f"one caption per generated image: {len(captions)} captions for {n} images")
        text_emb = extractor.encode_texts(list(captions))
    elif text_emb is not None and len(text_emb) != n:
        raise InputError(f"one caption per generated image: {len(text_emb)} caption embeddings for {n} images")
    # validation as in the standalone metrics, then the reference side once for every resample
    check_fid_inputs(real["features"], fake["features"])
    checks.features("real", real["features"], min_rows=DENSITY_K + 1, metric="precision/density", as_float64=False)
    checks.features("fake", fake["features"], min_rows=PRECISION_K + 1, metric="precision/recall", as_float64=False)
    if bootstrap and n < 2 * (DENSITY_K + 2):
        raise InputError(f"intervals need at least {2 * (DENSITY_K + 2)} generated images (half-samples), got {n}")
    resampler = Resampler(real, fake, text_emb, labels, seed=seed)
    point = resampler.bootstrap(np.arange(n))
    # the point Frechet distances by clean-fid's route (sqrtm), for parity; every draw is centred on them
    point["fid"] = frechet_distance(*resampler.real_stats, *gaussian_stats(fake["features"]))
    if "fd_clip" in point:
        point["fd_clip"] = frechet_distance(
            *resampler.clip_stats, *gaussian_stats(np.asarray(fake["clip"], np.float64))
        )
    recall, coverage = resampler.recall_coverage()
    kid_size = min(kid_subset_size, len(real["features"]), n)
    kid_mean, kid_std = kid(real["features"], fake["features"], subsets=kid_subsets, subset_size=kid_size, seed=seed)
    half_point = {"recall": recall, "coverage": coverage, "vendi": resampler.vendi_value(), "kid": kid_mean}
    is_mean = is_std = None
    if "probs" in fake:
        is_mean, is_std = resampler.inception(np.arange(n), splits=min(10, n), seed=seed)
        half_point["inception_score"] = is_mean

    rng = np.random.default_rng(seed)
    block_rng = np.random.default_rng([seed, 1])  # block draws (above the dense limit) apart from image draws
    draws: dict[str, list[float]] = {name: [] for name in [*point, *half_point]}
    for b in range(bootstrap):
        values = resampler.bootstrap(rng.integers(0, n, size=n), block_rng)
        values.update(resampler.half(rng.permutation(n)[: n // 2], seed + b, block_rng))
        for name, value in values.items():
            draws[name].append(value)
        if progress:
            progress(b + 1)
    result: dict[str, Any] = {}
    for name, value in [*point.items(), *half_point.items()]:
        method = "half-sample" if name in half_point else "bootstrap"
        result[name] = {
            "value": value,
            "ci95": centred_interval(draws[name], value) if bootstrap else None,
            "ci_method": (f"block-{method}" if name in resampler.blocked else method) if bootstrap else None,
        }
    if is_mean is not None:
        result["inception_score"]["std"] = is_std
    result["kid"].update(std=kid_std, subsets=kid_subsets, subset_size=kid_size)
    result.update(n_real=len(real["features"]), n_fake=n, extractor=extractor.id, bootstrap=bootstrap, seed=seed)
    if keep_draws:
        result["draws"] = draws
    return result
