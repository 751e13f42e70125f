"""Honest evaluation of a detector: ranking metrics with bootstrap intervals, and perturbations that
treat both classes alike.

Metrics: AUROC, average precision, and TPR at a fixed FPR of 1% and 5% (the highest TPR among
thresholds whose FPR on the real images is at most the target). Intervals: stratified bootstrap (real
and generated images resampled separately, so every draw keeps the class sizes), 95% percentile
intervals.

Perturbations re-encode BOTH classes identically (JPEG at quality 95, 75, 50; resizing by 0.5x and 2x,
bicubic), because a detector that learned the file format or the size of its training data breaks as
soon as the real and the generated images stop differing in that way (DIRE after re-encoding its fakes
as JPEG q95: accuracy 0.50). :func:`shortcut_warnings` says when the two sets differ in format or size.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

METRICS = ("auroc", "ap", "tpr_at_fpr_1pct", "tpr_at_fpr_5pct")
BOOTSTRAP_DRAWS = 1000


def _curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative false and true positives at each distinct score, highest first (scikit-learn's
    binary classification curve, in plain numpy so thousands of bootstrap draws stay cheap)."""
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(t)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    return fps.astype(np.float64), tps.astype(np.float64)


def tpr_at_fpr(y: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """The highest TPR among thresholds whose false-positive rate on y == 0 is at most ``fpr``."""
    y, scores = np.asarray(y).astype(int), np.asarray(scores, dtype=np.float64)
    fps, tps = _curve(y, scores)
    fprs, tprs = np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]
    return float(tprs[fprs <= fpr + 1e-12].max())


def point_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUROC, average precision and TPR at 1% and 5% FPR; equal to scikit-learn's (tested)."""
    y, scores = np.asarray(y).astype(int), np.asarray(scores, dtype=np.float64)
    fps, tps = _curve(y, scores)
    fprs, tprs = np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]
    precision = tps / (tps + fps)
    recall_steps = np.diff(np.r_[0.0, tps / tps[-1]])
    return {
        "auroc": float(np.sum(np.diff(fprs) * (tprs[1:] + tprs[:-1]) / 2)),
        "ap": float(np.sum(recall_steps * precision)),
        "tpr_at_fpr_1pct": float(tprs[fprs <= 0.01 + 1e-12].max()),
        "tpr_at_fpr_5pct": float(tprs[fprs <= 0.05 + 1e-12].max()),
    }


def evaluate_scores(y: Any, scores: Any, *, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> dict[str, Any]:
    """Every metric with a stratified-bootstrap 95% interval, and the class sizes."""
    from audit.errors import InputError

    y, scores = np.asarray(y).astype(int), np.asarray(scores, dtype=np.float64)
    real, fake = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    if len(real) < 2 or len(fake) < 2:
        raise InputError(f"evaluation needs at least 2 real and 2 generated images, got {len(real)} and {len(fake)}")
    point = point_metrics(y, scores)
    rng = np.random.default_rng(seed)
    samples = {m: np.empty(draws) for m in METRICS}
    for i in range(draws):
        idx = np.concatenate([rng.choice(real, len(real)), rng.choice(fake, len(fake))])
        for m, v in point_metrics(y[idx], scores[idx]).items():
            samples[m][i] = v
    out: dict[str, Any] = {}
    for m in METRICS:
        out[m] = point[m]
        out[f"{m}_ci"] = [float(np.quantile(samples[m], 0.025)), float(np.quantile(samples[m], 0.975))]
    out.update(n_real=len(real), n_fake=len(fake), bootstrap_draws=draws)
    return out


def jpeg(quality: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function that re-encodes a uint8 RGB image as JPEG at ``quality`` and decodes it again."""
    return reencode("JPEG", quality)


def webp(quality: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function that re-encodes a uint8 RGB image as lossy WebP at ``quality`` (libwebp, through Pillow) and
    decodes it again."""
    return reencode("WEBP", quality)


def reencode(fmt: str, quality: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function that saves a uint8 RGB image in Pillow's lossy ``fmt`` (JPEG, WEBP, AVIF) at ``quality`` and
    decodes it again."""

    def apply(image: np.ndarray) -> np.ndarray:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format=fmt, quality=quality)
        buf.seek(0)
        with Image.open(buf) as im:
            return np.asarray(im.convert("RGB"))

    return apply


def resized_side(side: int, factor: float) -> int:
    """A side of ``side`` pixels after :func:`resize` by ``factor``: rounded, at least 1."""
    return max(1, round(side * factor))


def resize(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    """A function that resizes a uint8 RGB image by ``factor`` (bicubic; at least 1 pixel a side)."""

    def apply(image: np.ndarray) -> np.ndarray:
        from PIL import Image

        h, w = image.shape[:2]
        size = (resized_side(w, factor), resized_side(h, factor))
        return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))

    return apply


PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "jpeg q95": jpeg(95),
    "jpeg q75": jpeg(75),
    "jpeg q50": jpeg(50),
    "resize 0.5x": resize(0.5),
    "resize 2x": resize(2.0),
    "webp q75": webp(75),
}
# what the loader would read from the file each one leaves (audit.io.images: the JPEG or WebP quality) and how it
# scales the image, so that the sweep routes it as a scan would (detectors.recompression.recompressed,
# detectors.calibration_sizes.larger)
PERTURBATION_META: dict[str, dict[str, Any]] = {
    "jpeg q95": {"format": "JPEG", "jpeg_quality": 95}, "jpeg q75": {"format": "JPEG", "jpeg_quality": 75},
    "jpeg q50": {"format": "JPEG", "jpeg_quality": 50}, "webp q75": {"format": "WEBP", "webp_quality": 75},
    "resize 0.5x": {"scale": 0.5}, "resize 2x": {"scale": 2.0},  # a size the route may take (calibration_sizes)
}  # fmt: skip


def perturbed(images: np.ndarray | list[np.ndarray], name: str) -> list[np.ndarray]:
    """Every image through perturbation ``name`` (the same for real and generated images)."""
    return [PERTURBATIONS[name](np.asarray(im)) for im in images]


def shortcut_warnings(real: list[dict[str, Any]], fake: list[dict[str, Any]]) -> list[str]:
    """Warnings when the real and generated sets differ in file format or image size (a shortcut a
    detector can learn instead of the generator's traces). Items carry ``format``, ``width``, ``height``."""
    notes = []
    fmt_real, fmt_fake = (
        Counter(r.get("format") or "in memory" for r in real),
        Counter(r.get("format") or "in memory" for r in fake),
    )
    if set(fmt_real) != set(fmt_fake):
        notes.append(
            f"The real and generated images differ in file format (real: {dict(fmt_real)}; generated: "
            f"{dict(fmt_fake)}): a detector can learn the format instead of the generator. Re-encode both "
            "identically, as the robustness sweep does."
        )
    size_real = Counter((r["width"], r["height"]) for r in real)
    size_fake = Counter((r["width"], r["height"]) for r in fake)
    if set(size_real) != set(size_fake):
        top = lambda c: ", ".join(f"{w}x{h}: {n}" for (w, h), n in c.most_common(3))  # noqa: E731
        notes.append(
            f"The real and generated images differ in size (real: {top(size_real)}; generated: {top(size_fake)}): "
            "size is a shortcut; compare at equal sizes."
        )
    return notes
