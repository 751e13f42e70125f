"""``genaudit detect``: score images, calibrate a detector, evaluate it honestly.

Three jobs, each writing a results JSON (kind ``deepfake-detection``) that the card renders:

- :func:`run_default`: the embedded default on ``builtin:digits-mixed``, evaluated like :func:`evaluate`:
  cross-fitted over :data:`FOLDS` folds stratified by source (every image scored by a detector calibrated
  without it, all images evaluated, per schedule too), beside the DIRE-style inversion baseline scored the
  same way, with the robustness sweep; the detector it saves for :func:`detect` is calibrated on all of it.
- :func:`calibrate`: real and generated folders in, a saved detector (JSON + safetensors) out.
- :func:`evaluate`: real and generated folders in; with a saved detector its scores, otherwise
  cross-fitted scores (every image scored by a detector calibrated without it); metrics with bootstrap
  intervals, the perturbation sweep, the format/size warnings and, given face records, the FPR on real
  images by perceived gender and age band.
- :func:`detect`: images in, ``detections.csv`` (path, score, p_synthetic, flagged, reason) out.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audit.atomic import output_folder
from audit.errors import InputError
from audit.out_lock import holding, holds_out
from detectors.detector import DETECTOR_FILE, ReconstructionDetector, is_detector_document
from detectors.evaluation import PERTURBATION_META, PERTURBATIONS, evaluate_scores, perturbed, shortcut_warnings
from detectors.image_files import ImageFile, LazyImages, MappedImages, chunks
from detectors.overlap import refuse_across_groups, refuse_shared
from detectors.routing import COPY_SEED, JPEG_ROUTE, MAIN_ROUTE

log = logging.getLogger(__name__)

DEFAULT_MODEL = "embedded:digits-ddpm"
# "classes": "auto" adds the class evidence (see DiffusionLossScorer) when the model is conditioned on at most
# AUTO_CLASSES classes: its cost grows with the classes (a 1000-class DiT would need 1000 forwards per timestep)
AUTO_CLASSES = 32
# 2 noise sets of K = 16 without the class evidence: 32 network evaluations per image, under the DIRE-style
# baseline's 40, and the best of the AUROC-NFE curve at that cost (benchmarks/nfe_curve.py, RESULTS.md).
# 4 sets with the class evidence (288 NFEs on the embedded model) gain 0.05 on the seen DDPM and nothing on
# generators left out of calibration: pass --noise-sets 4 --classes auto for them.
DEFAULT_SCORER = {"name": "diffusion-loss", "k": 16, "noise_sets": 2, "classes": False}
BASELINE_SCORER = {"name": "inversion", "steps": 20}
# the feature journal of the JPEG route's copies (feature_journal); named by the copies' seed, which changes
# with their recipe, so a journal kept from another recipe is never read back
JPEG_COPIES_PASS = f"route copies seed {COPY_SEED}"
DETECTIONS_FILE = "detections.csv"
EVALUATION_FILE = "evaluation.json"
RESULTS_FILE = "detect-results.json"
FOLDS = 5  # cross-fitting folds of the evaluations (run_default, evaluate without --detector)


@dataclass
class Loaded:
    """Readable images (decoded when used, :class:`LazyImages`) with their names and file facts, and the
    unreadable ones with reasons."""

    images: LazyImages
    names: list[str]
    meta: list[dict[str, Any]]
    unreadable: list[tuple[str, str]]
    listed: int = 0  # files listed (readable or not), not counting entries refused while listing


def list_inputs(
    specs: list[str], image_column: str = "image"
) -> tuple[list[tuple[str, str, Any]], list[tuple[str, str]]]:
    """Every input image as (path, shown name, where or None), in order, and the entries refused while
    listing with their reasons: :func:`iter_inputs` gathered into two lists."""
    files: list[tuple[str, str, Any]] = []
    refused: list[tuple[str, str]] = []
    for file, name, span, refusal in iter_inputs(specs, image_column):
        if refusal is None:
            files.append((file, name, span))
        else:
            refused.append((name, refusal))
    return files, refused


def iter_inputs(specs: list[str], image_column: str = "image") -> Iterator[tuple[str, str, Any, str | None]]:
    """Every input image as (path, shown name, where or None, None), in order, lazily, and every entry
    refused while listing as (path, name, None, reason) where it comes; nothing is decoded (a shard lists
    everything and decodes only its range). Uncompressed webdataset tar shards are read by their members'
    byte spans, Parquet tables by row (``image_column``; :func:`audit.io.archives.load_at` reads either
    back). A spec that names nothing is refused before anything is yielded for it."""
    from audit.io import open_source
    from audit.io.archives import Columns, is_parquet, is_webdataset, parquet_listing
    from audit.io.names import escape_name
    from audit.io.sources import MANIFEST_SUFFIXES

    for spec in specs:  # every spec checked before anything is listed: no error after an hour of scoring
        if is_webdataset(spec) and not is_parquet(spec) and not spec.lower().endswith(".tar"):
            raise InputError(
                f"{escape_name(spec)}: detect reads image files, folders, manifests, uncompressed .tar shards and "
                "Parquet (images are re-read by offset or row when scored), not compressed tars: decompress first"
            )
        if not is_parquet(spec) and not is_webdataset(spec) and not os.path.lexists(spec):
            raise InputError(f"no such file or folder: {escape_name(spec)}")
    for spec in specs:
        path = Path(spec)
        if is_parquet(spec):
            for r in parquet_listing(spec, Columns(image=image_column)):
                yield str(r.path), r.relpath, r.span, r.refusal or None
        elif is_webdataset(spec):
            for r in open_source(spec):
                yield str(r.path), r.relpath, r.span, r.refusal or None
        elif not path.is_dir() and path.suffix.lower() not in MANIFEST_SUFFIXES:
            yield str(path), escape_name(spec), None, None  # any other path is a file: the loader says why not
        else:
            prefix = escape_name(str(path))
            for r in open_source(spec):
                name = r.relpath if prefix == "." else f"{prefix}/{r.relpath}"
                yield str(r.path), name, None, r.refusal or None


def refuse_repeated_inputs(specs: list[str], flag: str) -> None:
    """Refuse inputs that name one file or folder twice (``DIR`` and ``DIR/``, a link to it) or a folder and
    something inside it: their images would count twice in every figure. Checked on the paths, before any
    image is read; images repeated inside one input (a copy, a link beside its target) are the data's own
    and are kept, as real datasets keep their duplicates."""
    from audit.io.names import escape_name
    from audit.io.sources import resolves_inside

    resolved = [(spec, Path(os.path.realpath(spec))) for spec in specs if os.path.lexists(spec)]
    for i, (spec, path) in enumerate(resolved):
        for other, other_path in resolved[i + 1 :]:
            if path == other_path:
                how = "the same file or folder twice"
            elif resolves_inside(path, other_path) or resolves_inside(other_path, path):
                how = "a folder and something inside it"
            else:
                continue
            raise InputError(
                f"{flag}: {how} ({escape_name(spec)} and {escape_name(other)}); give each file or folder once"
            )


def load_images(specs: list[str], *, group: int = 0, offset: int = 0, image_column: str = "image") -> Loaded:
    """Images from files, folders or manifests, through genaudit's one loader (bad files get a reason).
    Each file is decoded once here to check it; its pixels are not kept (see :mod:`detectors.image_files`).
    ``group`` and ``offset`` (where these inputs start in the job's listing) set each image's scoring block."""
    from audit.io.archives import load_at
    from detectors.image_files import CHUNK_IMAGES
    from detectors.overlap import pixel_key

    files, refused = list_inputs(specs, image_column)
    out = Loaded(LazyImages(), [], [], list(refused), listed=len(files))
    for position, (file, name, span) in enumerate(files, start=offset):
        result = load_at(file, span)
        if not result.ok:
            out.unreadable.append((name, result.reason or "unreadable"))
            continue
        block = (group, position // CHUNK_IMAGES)
        out.images.files.append(ImageFile(file, result.sha256 or "", pixel_key(result.image), block, span))
        out.names.append(name)
        h, w = result.image.shape[:2]
        out.meta.append({"format": result.meta.get("format"), "width": w, "height": h,
                         "jpeg_quality": result.meta.get("jpeg_quality"),
                         "webp_quality": result.meta.get("webp_quality")})  # fmt: skip
    return out


def build_scorer(config: dict[str, Any], model: Any = None) -> Any:
    """The scorer ``config`` names; ``classes: "auto"`` becomes True when ``model`` is conditioned on 2 to
    :data:`AUTO_CLASSES` classes."""
    from detectors.scorers import get_scorer

    params = {k: v for k, v in config.items() if k != "name"}
    if params.get("classes") == "auto":
        params["classes"] = 2 <= int(getattr(model, "num_classes", 0) or 0) <= AUTO_CLASSES
    return get_scorer(config["name"], **params)


def new_detector(scorer: Any, **params: Any) -> ReconstructionDetector:
    """An unfitted detector for ``scorer``'s features: one block per noise set, the real reference on each
    block's null-class columns where the scorer has class evidence beside them."""
    columns = scorer.reference_columns() if hasattr(scorer, "reference_columns") else None
    return ReconstructionDetector(blocks=int(getattr(scorer, "noise_sets", 1)), reference_columns=columns, **params)


@dataclass
class CrossFitted:
    """Every image's decision, calibrated probability and flag, each from a detector that was calibrated
    without that image (or from one saved detector for all), and those detectors with the images each
    scored, so that perturbed or further images can be scored by the same ones."""

    decisions: np.ndarray
    probs: np.ndarray
    flags: np.ndarray
    fold_models: list[tuple[np.ndarray, ReconstructionDetector]]

    def score(self, feats: np.ndarray, images: np.ndarray | None = None) -> np.ndarray:
        """Decisions for new features of the fitted images (e.g. after a perturbation), row ``r`` for image
        ``images[r]`` (default: all of them, in order), each by the detector that scored that image."""
        images = np.arange(len(feats)) if images is None else np.asarray(images)
        if len(images) != len(feats):
            raise ValueError(f"{len(feats)} feature rows for {len(images)} images")
        out = np.full(len(feats), np.nan)
        for idx, fold in self.fold_models:
            rows = np.isin(images, idx)
            if rows.any():
                out[rows] = fold.decision_function(feats[rows])
        return out

    def decide(self, feats: np.ndarray, images: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`score`'s decisions and each row's flag at the threshold of the detector that scored it."""
        decisions = self.score(feats, images)
        images = np.arange(len(feats)) if images is None else np.asarray(images)
        flags = np.zeros(len(feats), dtype=bool)
        for idx, fold in self.fold_models:
            rows = np.isin(images, idx)
            flags[rows] = decisions[rows] >= fold.threshold_
        return decisions, flags

    def rescored(self, feats: np.ndarray, rows: np.ndarray) -> CrossFitted:
        """A copy in which each of ``rows`` (a mask over the fitted images) is decided again, on its row of
        ``feats``, by the detector that scored it (decision, probability and flag)."""
        decisions, probs, flags = self.decisions.copy(), self.probs.copy(), self.flags.copy()
        rows = np.asarray(rows, dtype=bool)
        for idx, fold in self.fold_models:
            mine = np.asarray(idx)[rows[idx]]
            if len(mine):
                decisions[mine] = fold.decision_function(feats[mine])
                probs[mine] = fold.probability(decisions[mine])
                flags[mine] = decisions[mine] >= fold.threshold_
        return CrossFitted(decisions, probs, flags, self.fold_models)

    def share_out(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decisions and flags for images none of the detectors saw (e.g. the generator's training images):
        dealt out in turn among the detectors, each flagged at its own detector's threshold."""
        scores, flags = np.empty(len(feats)), np.empty(len(feats), dtype=bool)
        for j, (_, fold) in enumerate(self.fold_models):
            idx = np.arange(j, len(feats), len(self.fold_models))
            scores[idx] = fold.decision_function(feats[idx])
            flags[idx] = scores[idx] >= fold.threshold_
        return scores, flags


@dataclass
class Copies:
    """Perturbed copies of some images (:mod:`detectors.augment`): their features and, for each, the row of
    its original among the images they were made from."""

    feats: np.ndarray
    parents: np.ndarray

    @classmethod
    def none(cls, width: int) -> Copies:
        """No copies (calibration on the originals alone)."""
        return cls(np.zeros((0, width)), np.zeros(0, dtype=int))

    def of(self, rows: np.ndarray) -> Copies:
        """The copies of ``rows`` (indices or a mask of the originals), their parents renumbered as positions
        in ``rows``."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows)
        position = np.full(int(max(rows.max(initial=-1), self.parents.max(initial=-1))) + 1, -1)
        position[rows] = np.arange(len(rows))
        mine = np.isin(self.parents, rows)
        return Copies(self.feats[mine], position[self.parents[mine]])

    def joined(
        self, feats: np.ndarray, y: np.ndarray, groups: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The originals with these copies after them: features, labels, groups and parents, the arguments
        of :meth:`ReconstructionDetector.fit` in order."""
        parents = np.r_[np.arange(len(y)), self.parents]
        return np.vstack([feats, self.feats]), y[parents], np.asarray(groups)[parents], parents


def augmented_features(model: Any, scorer: Any, images: Sequence[np.ndarray], copies: int) -> Copies | None:
    """The features of ``copies`` perturbed copies of every image (:mod:`detectors.augment`), made and scored
    a chunk at a time; None for no copies."""
    if copies < 1:
        return None
    from detectors.augment import AugmentedImages

    view = AugmentedImages(images, copies)
    # chunks of up to 512 copies (still at most CHUNK_PIXELS pixels): resized copies come in many sizes, and
    # each size is one batch per chunk; never sharded, so no shard has to reproduce these batches
    parts = [_features_by_size(model, scorer, chunk) for chunk in chunks(view, max_images=512)]
    return Copies(np.concatenate(parts), view.parents)


def _augment_record(copies: int) -> dict[str, Any] | None:
    """How calibration was augmented, for provenance (None: it was not)."""
    if copies < 1:
        return None
    from detectors import augment

    return {"copies_per_image": copies, "seed": 0, "blur": {"p": augment.BLUR_P, "sigma": augment.BLUR_SIGMA},
            "resize": {"p": augment.RESIZE_P, "factor": augment.RESIZE_FACTOR},
            "jpeg": {"p": augment.JPEG_P, "quality": augment.JPEG_QUALITY}}  # fmt: skip


def cross_fit(
    scorer: Any, feats: np.ndarray, y: np.ndarray, *, target_fpr: float, folds: int = FOLDS,
    strata: list[str] | np.ndarray | None = None, seed: int = 0, copies: Copies | None = None,
    siblings: np.ndarray | None = None, **params: Any,
) -> CrossFitted:  # fmt: skip
    """Out-of-fold decisions, probabilities and flags over ``folds`` stratified folds (by ``strata``, e.g. the
    source of every image, else by the label), each fold's detector made by :func:`new_detector` (with
    ``params``, e.g. ``reference="off"``) and given the strata as its images' sources. ``copies``: perturbed
    copies of the images, each calibrating with its original (augmented calibration); only the originals
    are scored. ``siblings``: images that share a number (made from one seed) share a fold."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    groups = np.asarray(y if strata is None else strata)
    k = min(folds, int(np.unique(groups, return_counts=True)[1].min()), int(np.bincount(y).min()))
    decisions, probs, flags = np.empty(len(y)), np.empty(len(y)), np.empty(len(y), dtype=int)
    copies = copies or Copies.none(feats.shape[1])
    fold_models = []
    if siblings is None:
        splits = StratifiedKFold(k, shuffle=True, random_state=seed).split(feats, groups)
    else:
        splits = StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(feats, groups, np.asarray(siblings))
    for train, test in splits:
        fold = new_detector(scorer, target_fpr=target_fpr, **params)
        fold.fit(*copies.of(train).joined(feats[train], y[train], groups[train]))
        decisions[test] = fold.decision_function(feats[test])
        probs[test] = fold.probability(decisions[test])
        flags[test] = (decisions[test] >= fold.threshold_).astype(int)
        fold_models.append((test, fold))
    return CrossFitted(decisions, probs, flags, fold_models)


def scored_by(det: Any, feats: np.ndarray, recompressed: np.ndarray | None = None) -> CrossFitted:
    """One saved detector's decisions, probabilities and flags, in :class:`CrossFitted`'s shape; a
    :class:`detectors.routing.Routed` one scores the ``recompressed`` rows by its JPEG route. Its
    :meth:`CrossFitted.score` (perturbed features) is the main detector's alone."""
    from detectors.routing import Routed

    routed = det if isinstance(det, Routed) else Routed(det)
    flagged = np.zeros(len(feats), dtype=bool) if recompressed is None else np.asarray(recompressed, dtype=bool)
    decisions, probs, flags = routed.decide(feats, flagged)
    return CrossFitted(decisions, probs, flags.astype(int), [(np.arange(len(feats)), routed.main)])


def routed_cross_fit(
    main: CrossFitted, jpeg: CrossFitted | None, recompressed: np.ndarray, feats: np.ndarray
) -> CrossFitted:
    """The cross-fitted main detector with its ``recompressed`` rows decided by the cross-fitted JPEG route
    (None: no route), as a routed detector scores them: by the route's fold detector that left the image out,
    on the image's own features ``feats`` (the route's own cross-fitted decisions are those of what it was
    calibrated on, JPEG copies, not of the inputs). Both must come from the same folds."""
    if jpeg is None or not np.any(recompressed):
        return main
    check_same_folds(main, jpeg)
    take = np.asarray(recompressed, dtype=bool)
    by_route = jpeg.rescored(feats, take)
    return CrossFitted(np.where(take, by_route.decisions, main.decisions), np.where(take, by_route.probs, main.probs),
                       np.where(take, by_route.flags, main.flags), main.fold_models)  # fmt: skip


def check_same_folds(main: CrossFitted, route: CrossFitted) -> None:
    """Refuse a route cross-fitted on other folds than the main detector: an image would be scored by a route
    fold detector calibrated on its copy."""
    if [list(t) for t, _ in main.fold_models] != [list(t) for t, _ in route.fold_models]:
        raise AssertionError("the JPEG route was cross-fitted on other folds than the main detector")


def route_features(
    model: Any, scorer: Any, images: Sequence[np.ndarray], feats: np.ndarray, recompressed: np.ndarray,
    journal: Any = None,
) -> np.ndarray:  # fmt: skip
    """What the JPEG route calibrates on, a row per image: an image that is itself a file the route takes
    (``recompressed``: a JPEG below :data:`detectors.recompression.QUALITY_LIMIT`, a lossy WebP below its
    limit) as it is, by its own features ``feats``; every other image by the features of the route's copy of it
    (:func:`copy_features`: a JPEG copy or an enlarged one; only those copies are made). A JPEG of a JPEG would
    model a second compression the inputs did not have, and an enlarged copy of half of them costs what they
    teach the route: where the calibration images are such files already, the route learns from them as they
    are (docs/detect.md, "Routing")."""
    take = np.asarray(recompressed, dtype=bool)
    out = np.array(feats, dtype=np.float64, copy=True)
    copied = np.flatnonzero(~take)
    if len(copied):
        out[copied] = copy_features(model, scorer, images, journal, rows=copied)
    return out


def copy_features(
    model: Any, scorer: Any, images: Sequence[np.ndarray], journal: Any = None, rows: np.ndarray | None = None
) -> np.ndarray:
    """The features of the JPEG route's copy of every image (of the images at ``rows`` only, in that order)
    (:class:`detectors.routing.RouteCopies`), made and scored a chunk at a time (the route's calibration).
    ``journal``: images kept as files keep each chunk's rows there (keyed by the original's sha256 and
    position: copy i depends on both), and a run after a kill scores only the chunks it had not kept, in the
    same chunks, so its numbers are an uninterrupted run's."""
    import hashlib

    from detectors.routing import RouteCopies

    view = RouteCopies(images, rows)
    files = _files_of(images) if journal is not None else None
    keys = [hashlib.sha256(f"{files[i].sha256}:{i}".encode()).hexdigest() for i in view.rows] if files else []
    known = journal.rows() if files is not None else {}
    parts, start = [], 0
    for chunk in chunks(view, max_images=512):
        mine = keys[start : start + len(chunk)]
        start += len(chunk)
        if mine and all(k in known for k in mine):
            parts.append(np.stack([known[k] for k in mine]))
            continue
        parts.append(_features_by_size(model, scorer, chunk))
        if mine:
            journal.keep(mine, parts[-1])
    if files is not None:
        journal.flush()
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def features(
    model: Any,
    scorer: Any,
    images: Sequence[np.ndarray] | np.ndarray,
    cache: dict[str, np.ndarray] | None = None,
    journal: Any = None,
) -> tuple[np.ndarray, float]:
    """The scorer's features for images of any sizes (grouped by size), and the seconds it took. Images
    kept as files (:class:`LazyImages`, :class:`MappedImages`) are decoded and scored a chunk at a time
    (:func:`detectors.image_files.chunks`), so memory holds one chunk of pixels whatever their number;
    an array or a list is already in memory and is scored as it is. ``cache`` (sha256 -> features, from
    :meth:`detectors.feature_shards.FeatureJournal.rows`: the shards' rows and a killed run's): files found
    there are not scored again. ``journal`` (:class:`detectors.feature_shards.FeatureJournal`): every chunk
    scored is kept there as it is done (the caller flushes it at the end), and its rows are the cache when
    ``cache`` is None, so a killed run scores only what it had not kept; the chunks are those of an
    uninterrupted run, so are the numbers."""
    start = time.perf_counter()
    files = _files_of(images)
    if files is not None and (cache or journal is not None):
        known = cache if cache is not None else journal.rows()
        todo = [i for i, f in enumerate(files) if f.sha256 not in known]
        rows: dict[int, np.ndarray] = {}
        position = 0
        for chunk in chunks(_subset(images, files, todo)) if todo else ():
            fresh = _features_by_size(model, scorer, chunk)
            done = todo[position : position + len(chunk)]
            position += len(chunk)
            if journal is not None:
                journal.keep([files[i].sha256 for i in done], fresh)
            rows.update(zip(done, fresh, strict=True))
        if not files:
            return np.zeros((0, 0)), time.perf_counter() - start
        stacked = np.stack([rows[i] if i in rows else known[f.sha256] for i, f in enumerate(files)])
        return stacked, time.perf_counter() - start
    if isinstance(images, np.ndarray):
        return scorer.features(model, images), time.perf_counter() - start
    if isinstance(images, list):
        out = _features_by_size(model, scorer, images) if images else np.zeros((0, 0))
        return out, time.perf_counter() - start
    parts = [_features_by_size(model, scorer, chunk) for chunk in chunks(images)]
    return (np.concatenate(parts) if parts else np.zeros((0, 0))), time.perf_counter() - start


def kept_features(model: Any, scorer: Any, images: Sequence[np.ndarray], journal: Any) -> tuple[np.ndarray, float]:
    """The features of one whole pass and its seconds (:func:`features`), kept in ``journal`` as it goes and
    flushed at its end (no journal: scored as they are)."""
    out = features(model, scorer, images, journal=journal)
    if journal is not None:
        journal.flush()
    return out


def _files_of(images: Any) -> list[ImageFile] | None:
    """The files behind images kept as files (also through a perturbation), else None."""
    if isinstance(images, LazyImages):
        return images.files
    if isinstance(images, MappedImages) and isinstance(images.images, LazyImages):
        return images.images.files
    return None


def _subset(images: Any, files: list[ImageFile], rows: list[int]) -> LazyImages | MappedImages:
    """Images ``rows`` of images kept as ``files``, through the same perturbation if any."""
    chosen = LazyImages([files[i] for i in rows])
    return MappedImages(chosen, images.fn) if isinstance(images, MappedImages) else chosen


def _features_by_size(model: Any, scorer: Any, images: list[np.ndarray]) -> np.ndarray:
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(im.shape, []).append(i)
    rows: dict[int, np.ndarray] = {}
    for idx in groups.values():
        rows.update(zip(idx, scorer.features(model, np.stack([images[i] for i in idx])), strict=True))
    return np.stack([rows[i] for i in range(len(images))])


def _cost(scorer: Any, model: Any, n: int, seconds: float) -> dict[str, Any]:
    return {
        "scorer": scorer.name,
        "config": scorer.config(),
        "nfe_per_image": scorer.nfe_per_image(model),
        "images": n,
        "seconds": round(seconds, 3),
        "images_per_second": round(n / seconds, 2) if seconds > 0 else None,
    }


def _curves(y: np.ndarray, scores: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """ROC points, score histograms by class and a reliability table (10 equal-width bins of p)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int))
    bins = np.linspace(0, 1, 11)
    which = np.clip(np.digitize(probs, bins) - 1, 0, 9)
    reliability = [
        {"bin": [float(bins[b]), float(bins[b + 1])], "n": int((which == b).sum()),
         "mean_p": float(probs[which == b].mean()), "fraction_generated": float(y[which == b].mean())}
        for b in range(10) if (which == b).any()
    ]  # fmt: skip
    return {
        "roc": {"fpr": fpr[keep].round(5).tolist(), "tpr": tpr[keep].round(5).tolist()},
        "scores_real": scores[y == 0].round(5).tolist(),
        "scores_generated": scores[y == 1].round(5).tolist(),
        "reliability": reliability,
    }


def _per_source(sources: list[str], y: np.ndarray, scores: np.ndarray, real: str, draws: int) -> list[dict[str, Any]]:
    """The metrics of each generated source (e.g. a guidance schedule) against all the real images."""
    is_real = np.array([s == real for s in sources])
    out = []
    for tag in dict.fromkeys(s for s in sources if s != real):
        mask = is_real | np.array([s == tag for s in sources])
        out.append({"source": tag, **evaluate_scores(y[mask], scores[mask], draws=draws)})
    return out


def _perturbation_sweep(
    model: Any, scorer: Any, images: list[np.ndarray] | np.ndarray, y: np.ndarray, score_fn: Any, draws: int,
    progress: bool = True, compare_fn: Any = None, out: Path | None = None, jpeg_fn: Any = None,
    taken_by: Any = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The metrics after re-encoding every image (both classes) the same way; with ``compare_fn`` (a second
    detector's, e.g. calibrated with or without augmentation) also its metrics on the same features, under
    ``compare``; with ``jpeg_fn`` (the JPEG route's decisions) the metrics as a routed detector scores the
    images, under ``routed``: each perturbed image by the route where ``taken_by(name)`` (a mask over the images,
    :func:`sweep_taken`; given with ``jpeg_fn``) says the route takes it, else by the main detector. Each
    function gives decisions, or (decisions, flags at the detectors' own thresholds): then the shares of
    real and generated images flagged are reported too, the false-positive
    rate a user would meet (the AUROC and the TPR at 5% FPR are threshold-free). ``out``: images kept as
    files keep each perturbation's features in a journal there, so a killed run does not score them again."""
    from tqdm.auto import tqdm

    from detectors.feature_shards import feature_journal

    rows = []
    for name in tqdm(PERTURBATIONS, desc="robustness sweep", unit="perturbation", disable=not progress):
        if isinstance(images, (np.ndarray, list)):
            feats, _ = features(model, scorer, perturbed(images, name))
        else:  # files: re-encoded as each chunk is scored, never all at once
            journal = feature_journal(out, model, scorer, name) if out is not None else None
            feats, _ = kept_features(model, scorer, MappedImages(images, PERTURBATIONS[name]), journal)
        main = score_fn(feats)
        rows.append({"perturbation": name, **_swept_metrics(y, main, draws)})
        if compare_fn is not None:
            rows[-1]["compare"] = _swept_metrics(y, compare_fn(feats), draws)
        if jpeg_fn is not None:
            take = taken_by(name)
            metrics = _swept_metrics(y, _where(take, jpeg_fn(feats), main), draws) if take.any() else _main_metrics(
                rows[-1])  # fmt: skip
            rows[-1]["routed"] = {"route": JPEG_ROUTE if take.any() else MAIN_ROUTE, "routed_images": int(take.sum()),
                                  **metrics}  # fmt: skip
    return rows


def _where(take: np.ndarray, routed: Any, main: Any) -> Any:
    """Decisions (or (decisions, flags)) of the route where ``take``, else of the main detector."""
    if isinstance(routed, tuple):
        return tuple(np.where(take, r, m) for r, m in zip(routed, main, strict=True))
    return np.where(take, routed, main)


def _swept_metrics(y: np.ndarray, result: Any, draws: int) -> dict[str, Any]:
    """The metrics of decisions, or of (decisions, flags), with the shares flagged of each class."""
    decisions, flags = result if isinstance(result, tuple) else (result, None)
    return {**evaluate_scores(y, decisions, draws=draws), **({} if flags is None else flag_shares(y, flags))}


def flag_shares(y: np.ndarray, flags: np.ndarray) -> dict[str, float]:
    """The shares of real and of generated images flagged at the detector's threshold."""
    flags, y = np.asarray(flags, dtype=bool), np.asarray(y)
    return {"flagged_real": float(flags[y == 0].mean()), "flagged_generated": float(flags[y == 1].mean())}


def _main_metrics(row: dict[str, Any]) -> dict[str, Any]:
    """A sweep row's own metrics, without what was added beside them."""
    return {k: v for k, v in row.items() if k not in ("perturbation", "compare", "routed")}


def routed_perturbation(name: str, takes_enlarged: bool = True) -> bool:
    """Whether the sweep's perturbation ``name`` leaves a file a routed detector sends to its JPEG route from an
    image of the calibration images' largest size: a JPEG below quality 90, a lossy WebP below 80, or (when the
    route ``takes_enlarged``) an enlargement (:func:`sweep_taken` for one such image)."""
    return bool(sweep_taken(name, np.array([1]), {"min_side": 1, "max_side": 1}, takes_enlarged)[0])


def sweep_taken(name: str, max_sides: np.ndarray, record: dict[str, int] | None, takes_enlarged: bool) -> np.ndarray:
    """Per swept image (``max_sides``: each one's larger side), whether a routed detector sends its copy under
    perturbation ``name`` to the JPEG route, as a scan would: every one where the perturbation leaves a
    recompressed file; where it resizes, those whose resized larger side exceeds the calibration images'
    largest (``record``, :func:`detectors.calibration_sizes.side_range`) when the route ``takes_enlarged``."""
    from detectors.calibration_sizes import larger
    from detectors.evaluation import resized_side
    from detectors.recompression import recompressed

    meta = PERTURBATION_META.get(name, {})
    sides = np.asarray(max_sides)
    if recompressed(meta):
        return np.ones(len(sides), dtype=bool)
    scale = float(meta.get("scale", 1.0))
    if not takes_enlarged or not record or scale == 1.0:
        return np.zeros(len(sides), dtype=bool)
    resized = [resized_side(int(side), scale) for side in sides]  # the larger side stays the larger one
    return np.array([larger(side, side, record) for side in resized], dtype=bool)


def _detections_rows(
    names: list[str],
    scores: np.ndarray,
    probs: np.ndarray,
    flags: np.ndarray,
    unreadable: list[tuple[str, str]],
    routes: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """``detections.csv``'s rows: every scored image (``routes``: the detector that scored each, default
    the main one), then every unreadable file with its reason. No caveat: only a scan warns about single inputs
    (:mod:`detectors.scan`)."""
    routes = np.full(len(names), MAIN_ROUTE, dtype=object) if routes is None else routes
    rows = [
        {"path": n, "score": round(float(s), 6), "p_synthetic": round(float(p), 6), "flagged": bool(f), "reason": "",
         "route": str(r), "caveat": ""}
        for n, s, p, f, r in zip(names, scores, probs, flags, routes, strict=True)
    ]  # fmt: skip
    empty = {"score": "", "p_synthetic": "", "flagged": "", "route": "", "caveat": ""}
    rows += [{"path": n, **empty, "reason": r} for n, r in unreadable]
    return rows


def write_detections(path: Path, rows: list[dict[str, Any]]) -> Path:
    """``detections.csv``: one row per image; a file name a spreadsheet would run as a formula gets a quote."""
    from audit.atomic import write_csv_atomic
    from detectors.scan import DETECTION_COLUMNS

    return write_csv_atomic(path, DETECTION_COLUMNS, rows, text_columns=("path",))


def _thumbs(images: Sequence[np.ndarray], rows: list[dict[str, Any]], limit: int = 24) -> list[dict[str, Any]]:
    """The highest- and lowest-scoring images with thumbnails for the card's per-image table."""
    from detectors.scan import Extremes

    extremes = Extremes(limit // 2)
    for i, row in enumerate(rows):
        if row["reason"] == "":
            extremes.add(row["score"], i, i)
    return [thumbnail_row(rows[i], np.asarray(images[i])) for i in extremes.picks()]


def thumbnail_row(row: dict[str, Any], image: np.ndarray) -> dict[str, Any]:
    """``row`` with the image's 64-px PNG thumbnail (tiny images, e.g. 8x8 digits, enlarged pixel by pixel)."""
    from audit.io.encode import png_base64, thumbnail

    if max(image.shape[:2]) < 48:
        rep = int(np.ceil(48 / max(image.shape[:2])))
        image = image.repeat(rep, 0).repeat(rep, 1)
    return {**row, "png": png_base64(thumbnail(image, 64))}


@holds_out
def run_default(out: str | Path, *, k: int = DEFAULT_SCORER["k"], noise_sets: int = DEFAULT_SCORER["noise_sets"],
                target_fpr: float = 0.05, draws: int = 1000, folds: int = FOLDS,
                per_schedule: int | None = None, progress: bool = True, bench: Path | None = None) -> Path:  # fmt: skip
    """The embedded default on ``builtin:digits-mixed``: cross-fitted evaluation of the diffusion-loss
    detector and the inversion baseline, and a detector calibrated on all the images, saved for
    :func:`detect`.

    Cross-fitting rather than one calibration half and one evaluation half: every image is scored by a
    detector that never saw it, as with a split, but each detector is fitted on 4/5 of the images instead of
    half and every image is evaluated, so the figure depends less on which images fell where (the split's
    AUROC moved by 0.02 between splits, benchmarks/RESULTS.md) and describes a detector closer to the one
    saved. It is also what ``genaudit detect evaluate`` does on a user's folders. ``bench``: a benchmark
    folder of the embedded DDPM whose cells hold the same samples (the demo's): they are read, not generated
    again (:func:`detectors.builtin.digits_mixed`)."""
    from detectors.builtin import (
        PER_SCHEDULE,
        REAL,
        SCHEDULES,
        TRAINING_SAMPLE,
        TRAINING_SEED,
        digits_mixed,
        quarter_of_every_source,
        training_digits,
    )
    from detectors.membership import membership_check
    from detectors.noise_model import load_noise_model

    out = Path(out)
    output_folder(out)
    log.info("builtin:digits-mixed: the embedded model's samples (%s)",
             f"from the benchmark's cells in {bench} where they match" if bench else "generated")  # fmt: skip
    data = digits_mixed(per_schedule or PER_SCHEDULE, bench)
    model = load_noise_model(DEFAULT_MODEL)
    main_cfg = {**DEFAULT_SCORER, "k": k, "noise_sets": noise_sets}
    results: dict[str, Any] = {}
    costs = []
    fitted: dict[str, tuple[Any, np.ndarray, CrossFitted]] = {}  # role -> scorer, features, cross-fitted
    from tqdm.auto import tqdm

    # the robustness sweep's images: a seeded quarter of every source (336 of 1,347), re-encoded 6 times; the
    # inversion baseline (40 sequential network evaluations an image) is scored on them too, which keeps
    # the demo within its time (its AUROC on all 1,347: benchmarks/nfe_curve.py)
    swept = quarter_of_every_source(data)
    roles = (("main", main_cfg, data), ("baseline", BASELINE_SCORER, data.subset(swept)))
    for role, cfg, part in tqdm(roles, desc="scorers", unit="scorer", disable=not progress):
        scorer = build_scorer(cfg, model)
        feats, seconds = features(model, scorer, part.images)
        costs.append(_cost(scorer, model, len(part.images), seconds))
        crossed = cross_fit(scorer, feats, part.y, target_fpr=target_fpr, folds=folds, strata=part.source,
                            siblings=part.siblings)  # fmt: skip
        fitted[role] = (scorer, feats, crossed)
        results[role] = {
            "scorer": scorer.config(),
            "metrics": evaluate_scores(part.y, crossed.decisions, draws=draws),
            "per_source": _per_source(part.source, part.y, crossed.decisions, REAL, draws),
        }
    autoencoder_note = (
        f"{DEFAULT_MODEL} works in pixel space: it has no autoencoder, so the autoencoder scorer does not apply"
    )
    scorer, feats, crossed = fitted["main"]
    main = new_detector(scorer, target_fpr=target_fpr).fit(feats, data.y, data.source)  # the one detect uses
    scores, probs, flags = crossed.decisions, crossed.probs, crossed.flags
    rows = _detections_rows(data.names, scores, probs, flags, [])
    for row, truth, tag in zip(rows, data.y, data.source, strict=True):
        row["truth"] = "generated" if truth else "real"
        row["source"] = tag
    # the JPEG route beside it: one copy of every image (JPEG or enlarged), the route's fold detectors calibrated
    # on the copies alone in the main detector's folds (same images, strata, siblings and seed)
    log.info("scoring the JPEG route's copies (a JPEG or an enlarged copy of each image)")
    route_feats = copy_features(model, scorer, data.images)
    jpeg_crossed = cross_fit(scorer, route_feats, data.y, target_fpr=target_fpr, folds=folds, strata=data.source,
                             siblings=data.siblings)  # fmt: skip
    check_same_folds(crossed, jpeg_crossed)
    route = new_detector(scorer, target_fpr=target_fpr).fit(route_feats, data.y, data.source)
    # each swept image scored by the fold detectors (main and JPEG route) that did not see it or a copy of it
    from detectors.calibration_sizes import side_range

    sides = side_range({"width": im.shape[1], "height": im.shape[0]} for im in data.images)
    swept_sides = np.array([max(im.shape[:2]) for im in data.images[swept]])
    sweep = _perturbation_sweep(
        model, scorer, data.images[swept], data.y[swept], lambda f: crossed.decide(f, swept), draws, progress,
        jpeg_fn=lambda f: jpeg_crossed.decide(f, swept),
        taken_by=lambda name: sweep_taken(name, swept_sides, sides, takes_enlarged=True),
    )  # fmt: skip
    from detectors.generators import held_out_generators

    two_class = cross_fit(scorer, feats, data.y, target_fpr=target_fpr, folds=folds, strata=data.source,
                          reference="off", siblings=data.siblings)  # fmt: skip
    held_out = held_out_generators(scorer, feats, data.y, data.family, target_fpr=target_fpr, folds=folds,
                                   draws=draws, seen=crossed.decisions, seen_two_class=two_class.decisions,
                                   siblings=data.siblings)  # fmt: skip
    log.info("scoring %d of the embedded model's training digits (the membership check)", TRAINING_SAMPLE)
    train_feats, _ = features(model, scorer, training_digits())
    train_scores, train_flags = crossed.share_out(train_feats)
    is_real = data.y == 0
    membership = membership_check(train_scores, train_flags, scores[is_real], flags[is_real], draws=draws)
    protocol = (
        f"cross-fitted: {folds} folds stratified by source (the real digits, each schedule, the GAN, the "
        "mixture), the DDPM's image i under every schedule (one seed, near copies) in one fold, each image "
        "scored and flagged by a detector calibrated without it, one logistic model per source; the detector "
        "saved for genaudit detect is calibrated on all of them. The robustness sweep re-encodes a seeded "
        f"quarter of every source ({len(swept)} images), each scored by its own fold's detector and, where the "
        "perturbation leaves a JPEG below quality 90, a lossy WebP below 80 or an image larger than the digits, by "
        "its fold's JPEG route (calibrated on one JPEG or enlarged copy of every image of the other folds). Each "
        "generator family (the DDPM's schedules together, the GAN, the Gaussian mixture) is also left out of "
        "calibration in turn"
    )
    meta = {"model": DEFAULT_MODEL, "scorer": scorer.config(), "feature_names": scorer.feature_names(model),
            "calibrated_on": f"builtin:digits-mixed (all {len(data.y)} images)",
            "recompressed_share": 0.0, "jpeg_share": 0.0, "lossy_share": 0.0,  # in-memory digits, never encoded
            "calibration_sides": sides}  # fmt: skip
    from detectors.routing import copies_record, save_route

    meta["routes"] = save_route(out / DETECTOR_FILE, route, meta)
    main.save(out / DETECTOR_FILE, meta)
    write_detections(out / DETECTIONS_FILE, rows)  # the CSV's columns only: truth and source are the card's
    evaluation = {
        **results["main"]["metrics"],
        **flag_shares(data.y, flags),
        "protocol": protocol,
        "perturbations": sweep,
        "per_source": results["main"]["per_source"],
        "held_out_generators": held_out,
        "two_class": evaluate_scores(data.y, two_class.decisions, draws=draws),
        "jpeg_route": {"copies": copies_record(), "cross_fitted_on_copies": evaluate_scores(
            data.y, jpeg_crossed.decisions, draws=draws)},
        "reference_weight": float(main.combination_[4]),
        "baseline": {"scorer": BASELINE_SCORER, "images": "the robustness sweep's quarter of every source",
                     **results["baseline"]["metrics"]},
        "membership": {"training_images": f"{TRAINING_SAMPLE} of the embedded model's 1,500 training digits, "
                                          "dealt out among the fold detectors, none of which saw them",
                       "real_images": f"held-out real digits (all {int(is_real.sum())}, each flagged by its "
                                      "fold's detector)",
                       **membership},
    }  # fmt: skip
    from audit.atomic import write_json_atomic

    write_json_atomic(out / EVALUATION_FILE, evaluation)
    from audit.results import write_results
    from detectors.results import build_results
    from detectors.routing import Routed

    doc = build_results(
        title="Deepfake check: builtin:digits-mixed",
        dataset="builtin:digits-mixed",
        model=model,
        detector=Routed(main, {JPEG_ROUTE: route}, takes_enlarged=True),
        meta=meta,
        evaluation=evaluation,
        curves=_curves(data.y, scores, probs),
        costs=costs,
        detections=_thumbs(data.images, rows),
        n_flagged=int(flags.sum()),
        n_scored=len(rows),
        warnings=[],
        notes=[protocol, autoencoder_note],
        fairness=None,
        config={"k": k, "noise_sets": noise_sets, "target_fpr": target_fpr, "folds": folds, "fold_seed": 0,
                "fold_groups": "the DDPM's image i under every schedule (seed i) in one fold",
                "two_class_models": "one logistic model per source, the largest standardised decision",
                "per_schedule": per_schedule or PER_SCHEDULE, "schedules": [f"{n} w={w:g}" for n, w in SCHEDULES],
                "ddpm_samples": "seeds 0..n-1, labels i mod 10, 25 steps" + (
                    f"; read from the benchmark cells under {bench} where they match" if bench else ""),
                "other_generators": _other_generators_provenance(),
                "bootstrap_draws": draws,
                "membership_sample": {"split": "train", "n": TRAINING_SAMPLE, "seed": TRAINING_SEED}},
    )  # fmt: skip
    return write_results(out / RESULTS_FILE, doc)


def _other_generators_provenance() -> dict[str, Any]:
    """What made builtin:digits-mixed's GAN and mixture images: the GAN's weights hash, the mixture's recipe."""
    from audit.zoo import mixture, registry
    from detectors.builtin import OTHER_FAMILIES, OTHER_SEED

    return {
        "gan": {"family": OTHER_FAMILIES["gan"], "seed": OTHER_SEED, **registry.model_ref("digits-gan")},
        "mixture": {"family": OTHER_FAMILIES["mixture"], "seed": OTHER_SEED + 1, "recipe": "audit.zoo.mixture",
                    "components": mixture.COMPONENTS, "fit_seed": mixture.FIT_SEED, "reg_covar": mixture.REG_COVAR},
    }  # fmt: skip


def _at_least_two(loaded: Loaded, what: str) -> Loaded:
    """``loaded``, refused when fewer than 2 of its images are readable (no metric or threshold from one)."""
    if len(loaded.images) < 2:
        raise InputError(f"need at least 2 readable {what} images, got {len(loaded.images)}")
    return loaded


def _labelled(
    real: list[str], fake: list[str], image_column: str = "image", *, real_only: bool = False
) -> tuple[Loaded, Loaded, LazyImages, np.ndarray, np.ndarray]:
    """The real and generated images (``fake``: ``--fake`` values, see
    :func:`detectors.generators.fake_sources`), all of them together, their labels and each image's source:
    ``real`` or its generator's name. ``real_only``: no ``fake`` may be given (the real reference alone)."""
    from detectors.generators import REAL_SOURCE, fake_sources

    named = fake_sources(fake)
    refuse_repeated_inputs(real, "--real")
    refuse_repeated_inputs([path for _, path in named], "--fake")
    real_set = _at_least_two(load_images(real, image_column=image_column), "real")
    fake_set = Loaded(LazyImages(), [], [], [])
    sources = [REAL_SOURCE] * len(real_set.images)
    for name, path in named:  # listed after the real ones, in order: the scoring blocks every path makes
        part = load_images([path], offset=real_set.listed + fake_set.listed, image_column=image_column)
        fake_set = Loaded(fake_set.images + part.images, fake_set.names + part.names, fake_set.meta + part.meta,
                          fake_set.unreadable + part.unreadable, fake_set.listed + part.listed)  # fmt: skip
        sources += [name] * len(part.images)
    if not real_only:
        _at_least_two(fake_set, "generated")
    counts = {name: sources.count(name) for name, _ in named}
    if len(counts) > 1 and min(counts.values()) < 2:  # no metric of a generator from fewer than 2 of its images
        few = ", ".join(f"{n} ({c})" for n, c in counts.items() if c < 2)
        raise InputError(f"every generator needs at least 2 readable images; too few: {few}")
    refuse_shared(real_set.names, real_set.images, "--real", fake_set.names, fake_set.images, "--fake",
                  "An image cannot be both real and generated: remove it from one of them.")  # fmt: skip
    refuse_across_groups(fake_set.names, fake_set.images, sources[len(real_set.images) :], "--fake",
                         "A generator left out of calibration must be unseen: remove each such image from all but "
                         "one generator (a folder given under two names: give it once).")  # fmt: skip
    images = real_set.images + fake_set.images  # still files: decoded a chunk at a time when scored
    y = np.array([0] * len(real_set.images) + [1] * len(fake_set.images))
    return real_set, fake_set, images, y, np.array(sources)


def _generator_counts(sources: np.ndarray, y: np.ndarray) -> dict[str, int]:
    """Readable generated images per generator, in the order given."""
    return {str(g): int(np.sum(sources == g)) for g in dict.fromkeys(sources[y == 1])}


def fake_paths(fake: list[str]) -> list[str]:
    """The paths of ``--fake`` values (names dropped), in order."""
    from detectors.generators import fake_sources

    return [path for _, path in fake_sources(fake)]


def calibrate(
    real: list[str], fake: list[str], out: str | Path, *, model_spec: str = DEFAULT_MODEL,
    scorer_config: dict[str, Any] | None = None, target_fpr: float = 0.05, calibration: str = "logistic",
    image_column: str = "image", augment: int = 0, route_jpeg: bool = False,
) -> Path:  # fmt: skip
    """Fit a detector on labelled folders and save it (JSON + safetensors; see :func:`detector_paths`).
    With no ``fake``, a reference-only detector: the real images' model alone, its threshold at the target
    FPR on them (:class:`ReconstructionDetector`). ``augment``: perturbed copies of every image calibrate
    with it (:mod:`detectors.augment`). ``route_jpeg``: a second detector, calibrated on one JPEG or enlarged
    copy of every image, is saved beside it and scores the inputs that are recompressed JPEGs or larger than
    the calibration images (:mod:`detectors.routing`). The features are kept as they are scored, so a killed
    calibration resumes (:class:`detectors.feature_shards.FeatureJournal`): saved into a folder, in its
    ``shards/``; for a ``.json`` target, in a hidden ``.NAME.json.journal/`` beside it, removed once the
    detector is saved, which leaves nothing else beside it. A second calibration into the same target while
    this one runs is refused (:mod:`audit.out_lock`)."""
    target = detector_paths(out)[0]  # a wrong --out is refused before any scoring
    if route_jpeg:
        from detectors.routing import route_path

        route_file = route_path(target)
        try:
            detector_paths(route_file)  # nor is a route target that is not a detector
        except InputError:
            raise InputError(
                f"--route-jpeg saves the route at {route_file}, which exists and is not a genaudit detector (or its "
                "arrays file is there without it): not overwriting it; choose another --out"
            ) from None
    into_folder = target != Path(out)  # FOLDER/detector.json, not the .json file named
    journal_root = target.parent if into_folder else target.parent / f".{target.name}.journal"
    with holding(journal_root):  # made for the lock: removed again if the calibration stops before any scoring
        return _calibrated(real, fake, target, journal_root, into_folder, model_spec=model_spec,
                           scorer_config=scorer_config, target_fpr=target_fpr, calibration=calibration,
                           image_column=image_column, augment=augment, route_jpeg=route_jpeg)  # fmt: skip


def _calibrated(
    real: list[str], fake: list[str], target: Path, journal_root: Path, into_folder: bool, *, model_spec: str,
    scorer_config: dict[str, Any] | None, target_fpr: float, calibration: str, image_column: str, augment: int,
    route_jpeg: bool,
) -> Path:  # fmt: skip
    """:func:`calibrate`'s work, its target checked and held."""
    from detectors.calibration_sizes import side_range
    from detectors.feature_shards import feature_journal
    from detectors.noise_model import load_noise_model
    from detectors.recompression import jpeg_share, lossy_share, recompressed_rows, recompressed_share

    cfg = scorer_config or DEFAULT_SCORER
    real_set, fake_set, images, y, sources = _labelled(real, fake, image_column, real_only=not fake)
    model = load_noise_model(model_spec)
    scorer = build_scorer(cfg, model)
    journal = feature_journal(journal_root, model, scorer)
    feats, _ = kept_features(model, scorer, images, journal)
    copies = augmented_features(model, scorer, images, augment) or Copies.none(feats.shape[1])
    det = new_detector(scorer, calibration=calibration, target_fpr=target_fpr).fit(*copies.joined(feats, y, sources))
    from sklearn.metrics import roc_auc_score

    meta = {
        "model": model_spec,
        "models": model.models(),
        "scorer": scorer.config(),
        "feature_names": scorer.feature_names(model) if hasattr(scorer, "feature_names") else None,
        "calibrated_on": {
            "real": real,
            "generated": fake,
            "n_real": int((y == 0).sum()),
            "n_fake": int(y.sum()),
            "generators": _generator_counts(sources, y),
        },
        "mode": det.mode_,
        "augment": _augment_record(augment),
        "recompressed_share": recompressed_share(real_set.meta + fake_set.meta),  # what a JPEG route would take
        "calibration_sides": side_range(real_set.meta + fake_set.meta),  # a scan warns about other sizes
        "jpeg_share": jpeg_share(real_set.meta + fake_set.meta),  # none: a scan warns about q90+ JPEGs
        "lossy_share": lossy_share(real_set.meta + fake_set.meta),  # none: it warns about AVIFs, q80+ WebPs
        "reference_weight": float(det.combination_[4]) if det.mode_ == "combined" else None,
        "cross_fitted_auroc": float(roc_auc_score(y, det.cv_decisions_[: len(y)])) if fake else None,
        "warnings": shortcut_warnings(real_set.meta, fake_set.meta) if fake else [],
    }
    if route_jpeg:
        from detectors.routing import save_route

        log.info("scoring the JPEG route's copies (a JPEG or an enlarged copy of each image)")
        route = new_detector(scorer, calibration=calibration, target_fpr=target_fpr)
        copies_journal = feature_journal(journal_root, model, scorer, JPEG_COPIES_PASS)
        taken = recompressed_rows(real_set.meta + fake_set.meta)
        route.fit(route_features(model, scorer, images, feats, taken, copies_journal), y, sources)
        weight = float(route.combination_[4]) if route.mode_ == "combined" else None
        auroc = float(roc_auc_score(y, route.cv_decisions_[: len(y)])) if fake else None
        route_meta = {**meta, "mode": route.mode_, "augment": None, "reference_weight": weight,
                      "cross_fitted_auroc": auroc}  # fmt: skip
        meta["routes"] = save_route(target, route, route_meta)
    saved = det.save(target, meta)
    if not into_folder:  # the detector is saved: what would have resumed it is not needed
        import shutil

        shutil.rmtree(journal_root, ignore_errors=True)
    return saved


def detector_paths(out: str | Path) -> tuple[Path, Path]:
    """Where ``detect calibrate --out`` saves: a ``.json`` path (its arrays beside it, same name with
    ``.safetensors``), or a folder (an existing one, or a path ending in '/') that gets ``detector.json``
    and ``detector.safetensors``. Any other form is refused, and so is a target that would overwrite
    something that is not a genaudit detector: nothing is written beside or over the wrong file."""
    text = str(out)
    path = Path(out)
    if path.is_dir() or text.endswith(("/", os.sep)):
        path = path / DETECTOR_FILE
    elif path.suffix.lower() != ".json":
        raise InputError(
            f"--out {text}: give a .json file (its arrays go beside it as .safetensors) or a folder, "
            f"not a {path.suffix or 'suffix-less'} path"
        )
    arrays = path.with_suffix(".safetensors")
    if path.exists() and not _is_detector_file(path):
        raise InputError(f"--out {path} exists and is not a genaudit detector: not overwriting it")
    if arrays.exists() and not path.exists():
        raise InputError(f"{arrays} exists without its detector JSON: not overwriting it; choose another --out")
    return path, arrays


def _is_detector_file(path: Path) -> bool:
    import json

    try:
        with path.open("rb") as fh:
            doc = json.loads(fh.read(1 << 20))
    except (OSError, ValueError, RecursionError):
        return False
    return is_detector_document(doc)


class StaleDetectorError(InputError):
    """A saved detector whose feature layout is not the one this version's scorer gives."""


def _saved(detector_file: str | Path) -> tuple[Any, dict[str, Any], Any, Any]:
    """(the saved detector with its routes, a :class:`detectors.routing.Routed`, its meta, model, scorer)."""
    from detectors.noise_model import load_noise_model
    from detectors.routing import Routed, load_routes, saved_copies, takes_enlarged

    path = Path(detector_file)
    path = path / DETECTOR_FILE if path.is_dir() else path
    main, meta = ReconstructionDetector.load(path)
    routes = load_routes(path, meta)
    det = Routed(main, routes, takes_enlarged=takes_enlarged(meta), copies=saved_copies(path, meta) if routes else None)
    model = load_noise_model(meta["model"])
    scorer = build_scorer(meta["scorer"], model)
    saved = meta.get("feature_names")
    current = scorer.feature_names(model) if hasattr(scorer, "feature_names") else None
    if saved is not None and current is not None and saved != current:
        raise StaleDetectorError(
            f"{detector_file} was calibrated on {len(saved)} features, but this version's {scorer.name} scorer "
            f"gives {len(current)} (its features changed since; see CHANGELOG.md): recalibrate it with "
            "`genaudit detect calibrate` before scoring anything"
        )
    return det, meta, model, scorer


def _saved_default(detector_file: str | Path) -> tuple[Any, dict[str, Any], Any, Any]:
    """The embedded default, refused as stale (so calibrated again) when an older version saved it without
    its JPEG route (or with one that does not take enlarged inputs), its calibration size range or its shares of
    JPEGs and other lossy files."""
    loaded = _saved(detector_file)
    routed, meta = loaded[0], loaded[1]
    if JPEG_ROUTE not in routed.routes or not routed.takes_enlarged or not {
        "calibration_sides", "jpeg_share", "lossy_share"} <= set(meta):  # fmt: skip
        raise StaleDetectorError(
            f"{detector_file} has no JPEG route for enlarged inputs, size range or JPEG and lossy shares (an older "
            "genaudit)"
        )
    return loaded


@holds_out
def evaluate(
    real: list[str], fake: list[str], out: str | Path, *, detector_file: str | Path | None = None,
    model_spec: str = DEFAULT_MODEL, scorer_config: dict[str, Any] | None = None, target_fpr: float = 0.05,
    face_records: str | Path | None = None, face_backend: str | None = None, draws: int = 1000, folds: int = FOLDS,
    training: list[str] | None = None, shard: Any = None, executor: Any = None, progress: bool = True,
    image_column: str = "image", augment: int = 0, route_jpeg: bool = False,
) -> Path | None:  # fmt: skip
    """Evaluate on labelled folders (see the module docstring); returns the results path. ``training``:
    images the generator was trained on, scored by the same detector(s) for the membership check.
    ``augment``: perturbed copies of every image calibrate with it (cross-fitted without ``--detector``);
    the detector calibrated without them is evaluated beside it, perturbations included. ``route_jpeg``
    (without ``--detector``; a saved detector brings its own route): a JPEG route cross-fitted on one JPEG or
    enlarged copy of every image scores the inputs that are recompressed JPEGs (or larger than a saved
    detector's calibration images), and the sweep's JPEG, WebP and enlarging rows.
    ``shard``/``executor``: the feature pass of real, generated and training images in shards (see
    :func:`detect`); the evaluation itself runs once, here, without them."""
    from audit.atomic import write_json_atomic
    from detectors.feature_shards import feature_journal, score_shards
    from detectors.noise_model import load_noise_model

    out = Path(out)
    output_folder(out)

    def parts() -> tuple[Any, dict[str, Any], Any, Any]:  # (saved detector or None, meta, model, scorer)
        if detector_file is not None:
            return _saved(detector_file)
        model = load_noise_model(model_spec)
        scorer = build_scorer(scorer_config or DEFAULT_SCORER, model)
        names = scorer.feature_names(model) if hasattr(scorer, "feature_names") else None  # the card's direction
        return None, {"model": model_spec, "scorer": scorer.config(), "feature_names": names}, model, scorer

    loaded_parts = None
    if shard is not None or executor is not None:
        loaded_parts = det, meta, model, scorer = parts()
        groups = [[*real, *fake_paths(fake)], training or []]
        built = model, scorer
        score_shards(groups, out, meta["model"], meta["scorer"], shard=shard, executor=executor, built=built,
                     image_column=image_column, progress=progress)  # fmt: skip
        if shard is not None:
            return None
    real_set, fake_set, images, y, sources = _labelled(real, fake, image_column)
    generators = _generator_counts(sources, y)
    # refused now, before any scoring
    training_set = _training_set(training, real_set, image_column) if training else None
    record_faces = None
    if face_records is not None:  # read and checked whole now, not after an hour of scoring
        from audit.dataset.face_records import read_face_records

        record_faces = read_face_records(face_records).faces
    det, meta, model, scorer = loaded_parts or parts()
    if detector_file is not None:
        protocol = f"scored by the saved detector {Path(detector_file).name}"
    # the shards' features and what a killed run of this command kept are read back, not scored again
    journal = feature_journal(out, model, scorer)
    feats, seconds = kept_features(model, scorer, images, journal)
    plain = two_class = jpeg_crossed = route_feats = None  # plain: without augment's copies; two_class: no reference
    from detectors.calibration_sizes import larger_rows, side_range
    from detectors.recompression import recompressed_rows
    from detectors.routing import taken_rows

    metas = real_set.meta + fake_set.meta
    # the sizes a route compares with: the saved detector's calibration images', else these images' own (none larger)
    sides = meta.get("calibration_sides") if detector_file is not None else side_range(metas)
    takes = det.takes_enlarged if detector_file is not None else route_jpeg
    jpeg_rows = taken_rows(recompressed_rows(metas), larger_rows(metas, sides), takes)
    if detector_file is not None:  # det: the saved detector with its routes (_saved)
        crossed = scored_by(det, feats, jpeg_rows)
        jpeg_crossed = scored_by(det.routes[JPEG_ROUTE], feats) if JPEG_ROUTE in det.routes else None
    else:
        strata = sources if len(generators) > 1 else None  # one generator: the label is the source
        copies = augmented_features(model, scorer, images, augment)
        crossed = cross_fit(scorer, feats, y, target_fpr=target_fpr, folds=folds, strata=strata, copies=copies)
        if copies is not None:
            plain = cross_fit(scorer, feats, y, target_fpr=target_fpr, folds=folds, strata=strata)
        two_class = cross_fit(scorer, feats, y, target_fpr=target_fpr, folds=folds, strata=strata, copies=copies,
                              reference="off")  # fmt: skip
        if route_jpeg:  # the route's folds are the main detector's: same images, strata and seed
            log.info("scoring the JPEG route's copies (a JPEG or an enlarged copy of each image)")
            copies_journal = feature_journal(out, model, scorer, JPEG_COPIES_PASS)
            route_feats = route_features(model, scorer, images, feats, jpeg_rows, copies_journal)
            jpeg_crossed = cross_fit(scorer, route_feats, y, target_fpr=target_fpr, folds=folds, strata=strata)
            crossed = routed_cross_fit(crossed, jpeg_crossed, jpeg_rows, feats)
            two_class_route = cross_fit(scorer, route_feats, y, target_fpr=target_fpr, folds=folds, strata=strata,
                                        reference="off")  # fmt: skip
            two_class = routed_cross_fit(two_class, two_class_route, jpeg_rows, feats)
            if plain is not None:  # the route has no augmented copies: the same route beside either detector
                plain = routed_cross_fit(plain, jpeg_crossed, jpeg_rows, feats)
        # the one saved for later use
        det = new_detector(scorer, target_fpr=target_fpr).fit(
            *(copies or Copies.none(feats.shape[1])).joined(feats, y, sources)
        )
        protocol = (  # the folds actually used: fewer than asked when a class has fewer images
            f"cross-fitted: {len(crossed.fold_models)} stratified folds{' (by source)' if strata is not None else ''}, "
            "each image scored by a detector calibrated without it"
        )
    decisions, probs, flags = crossed.decisions, crossed.probs, crossed.flags
    max_sides = np.array([max(int(m["width"]), int(m["height"])) for m in metas], dtype=np.int64)
    sweep = _perturbation_sweep(model, scorer, images, y, crossed.decide, draws, progress,
                                compare_fn=plain.decide if plain is not None else None, out=out,
                                jpeg_fn=jpeg_crossed.decide if jpeg_crossed is not None else None,
                                taken_by=lambda name: sweep_taken(name, max_sides, sides, takes))  # fmt: skip
    warnings = shortcut_warnings(real_set.meta, fake_set.meta)
    names = real_set.names + fake_set.names
    fairness = None
    if face_records is not None or face_backend is not None:
        from detectors.fairness import faces_from_backend, fpr_by_group

        flagged_real = {n: bool(f) for n, f, t in zip(names, flags, y, strict=True) if t == 0}
        if record_faces is not None:
            fairness = fpr_by_group(flagged_real, record_faces)
        else:
            faces = faces_from_backend(zip(real_set.names, real_set.images, strict=True), face_backend)
            fairness = {**fpr_by_group(flagged_real, faces), "faces_from": f"face backend {face_backend}"}
    evaluation = {**evaluate_scores(y, decisions, draws=draws), **flag_shares(y, flags), "protocol": protocol,
                  "perturbations": sweep,
                  "warnings": warnings, "fairness": fairness, "generators": generators,
                  "augment": _augment_record(augment if detector_file is None else 0)}  # fmt: skip
    if jpeg_crossed is not None:
        from detectors.routing import copies_record

        copies_made = copies_record() if detector_file is None else det.copies or {}  # a saved route: its own
        evaluation["jpeg_route"] = {"copies": copies_made, "routed_inputs": int(jpeg_rows.sum())}
    if plain is not None:
        evaluation["compare"] = {"label": "calibrated without augmentation",
                                 **evaluate_scores(y, plain.decisions, draws=draws)}  # fmt: skip
    if two_class is not None:
        evaluation["two_class"] = evaluate_scores(y, two_class.decisions, draws=draws)
    if len(generators) > 1:
        from detectors.generators import REAL_SOURCE, held_out_generators

        evaluation["per_source"] = _per_source(list(sources), y, decisions, REAL_SOURCE, draws)
        if two_class is not None:  # cross-fitted here, not a saved detector
            evaluation["held_out_generators"] = held_out_generators(
                scorer, feats, y, sources, target_fpr=target_fpr, folds=folds, draws=draws, seen=decisions,
                seen_two_class=two_class.decisions, copies=copies,
                route=None if route_feats is None else (route_feats, jpeg_rows),
            )  # fmt: skip
    if training and training_set is not None:
        evaluation["membership"] = _training_membership(training_set, training, model, scorer, crossed, y, draws,
                                                        journal, jpeg_crossed, sides, takes)  # fmt: skip
    write_json_atomic(out / EVALUATION_FILE, evaluation)
    routed_rows = np.where(jpeg_rows, JPEG_ROUTE, MAIN_ROUTE) if jpeg_crossed is not None else None
    rows = _detections_rows(names, decisions, probs, flags, real_set.unreadable + fake_set.unreadable, routed_rows)
    write_detections(out / DETECTIONS_FILE, rows)
    from audit.results import write_results
    from detectors.results import build_results

    doc = build_results(
        title=f"Deepfake check: evaluation on {', '.join(real)} vs {', '.join(fake)}",
        dataset=f"real: {', '.join(real)}; generated: {', '.join(fake)}",
        model=model, detector=det, meta=meta, evaluation=evaluation, curves=_curves(y, decisions, probs),
        costs=[_cost(scorer, model, len(images), seconds)], detections=_thumbs(images, rows),
        n_flagged=int(flags.sum()), n_scored=len(images), warnings=warnings, notes=[protocol], fairness=fairness,
        config={"target_fpr": target_fpr, "folds": folds, "bootstrap_draws": draws, "detector": str(detector_file),
                "training": training},
    )  # fmt: skip
    return write_results(out / RESULTS_FILE, doc)


def _training_set(training: list[str], real_set: Loaded, image_column: str = "image") -> Loaded:
    """The ``--training`` images, refused when fewer than 2 are readable or when any is also in ``--real``."""
    loaded = _at_least_two(load_images(training, group=1, image_column=image_column), "training")
    refuse_shared(loaded.names, loaded.images, "--training", real_set.names, real_set.images, "--real",
                  "The membership check compares the generator's training images with real images it was not "
                  "trained on, and the false-positive rate on --real assumes the same: remove them from --real "
                  "(or from --training if they were not in fact trained on).")  # fmt: skip
    return loaded


def _training_membership(
    loaded: Loaded,
    sources: list[str],
    model: Any,
    scorer: Any,
    crossed: CrossFitted,
    y: np.ndarray,
    draws: int,
    journal: Any = None,
    jpeg_crossed: CrossFitted | None = None,
    sides: dict[str, int] | None = None,
    takes_enlarged: bool = False,
) -> dict[str, Any]:
    """The membership check of :func:`evaluate`: the training images are shared out in turn among the
    detectors that scored the real images (every fold's, or the one saved), none of which saw them, and
    flagged at that detector's threshold, just as each real image was; with a JPEG route
    (``jpeg_crossed``, the same folds) a training image the route takes (recompressed, or, when it
    ``takes_enlarged``, larger than ``sides``) by the route's detector of the same fold, as a real one is."""
    from detectors.calibration_sizes import larger_rows
    from detectors.membership import membership_check
    from detectors.recompression import recompressed_rows
    from detectors.routing import taken_rows

    feats, _ = kept_features(model, scorer, loaded.images, journal)
    scores, train_flags = crossed.share_out(feats)
    jpegs = taken_rows(recompressed_rows(loaded.meta), larger_rows(loaded.meta, sides), takes_enlarged)
    if jpeg_crossed is not None and jpegs.any():
        by_route = jpeg_crossed.share_out(feats)
        scores, train_flags = np.where(jpegs, by_route[0], scores), np.where(jpegs, by_route[1], train_flags)
    real = y == 0
    return {
        "training_images": f"{len(loaded.images)} images from {', '.join(sources)}",
        "real_images": "real images (--real)",
        **membership_check(scores, train_flags, crossed.decisions[real], crossed.flags[real], draws=draws),
        "unreadable_training_images": len(loaded.unreadable),
    }


@holds_out
def detect(
    inputs: list[str], out: str | Path, *, detector_file: str | Path | None = None, shard: Any = None,
    executor: Any = None, progress: bool = True, image_column: str = "image",
) -> Path | None:  # fmt: skip
    """Score images with a saved detector (default: calibrate the embedded one on ``builtin:digits-mixed``).
    ``shard``: score only that shard's images (:mod:`detectors.feature_shards`) and return None; ``executor``:
    every shard on Ray first. Without either, the images the shards scored are not scored again."""
    from detectors.feature_shards import feature_journal, score_shards

    out = Path(out)
    refuse_repeated_inputs(inputs, "the images to check")
    output_folder(out)
    if shard is not None:
        if detector_file is None:
            detector_file = out / "embedded-default" / DETECTOR_FILE
            if not detector_file.is_file():  # shards never race to calibrate the same files
                raise InputError(
                    "detect --shard needs a calibrated detector: pass --detector FILE ('genaudit detect calibrate' "
                    f"makes one), or run once without --shard to calibrate the embedded default into {out}"
                )
        _, meta, model, scorer = _saved(detector_file)
        built = model, scorer
        score_shards([inputs], out, meta["model"], meta["scorer"], shard=shard, built=built,
                     image_column=image_column, progress=progress)  # fmt: skip
        return None
    if detector_file is None:  # the embedded default in OUT/embedded-default, calibrated once per machine
        from detectors.kept_default import embedded_default

        detector_file = out / "embedded-default" / DETECTOR_FILE
        det, meta, model, scorer = embedded_default(detector_file.parent, run_default, _saved_default)
    else:
        det, meta, model, scorer = _saved(detector_file)
    if executor is not None:
        built = model, scorer
        score_shards([inputs], out, meta["model"], meta["scorer"], executor=executor, built=built,
                     image_column=image_column, progress=progress)  # fmt: skip
    from detectors.scan import scan, thumbnails

    # the shards' features and what a killed run of this command kept (its journal) are not scored again
    journal = feature_journal(out, model, scorer)
    found = scan(inputs, out / DETECTIONS_FILE, detector=det, model=model, scorer=scorer, cache=journal.rows(),
                 journal=journal, image_column=image_column, progress=progress,
                 meta=meta)  # fmt: skip
    from audit.results import write_results
    from detectors.calibration_sizes import size_warning
    from detectors.recompression import (
        QUALITY_LIMIT,
        WEBP_QUALITY_LIMIT,
        recompression_warning,
        unseen_jpeg_warning,
        unseen_lossy_warning,
    )
    from detectors.results import build_results

    warnings = [w for w in (recompression_warning(found.recompressed, found.scored, meta),
                            unseen_jpeg_warning(found.unseen_jpeg, found.scored, meta),
                            unseen_lossy_warning(found.unseen_lossy, found.scored, meta),
                            size_warning(found.off_size, found.scored, found.sides)) if w]  # fmt: skip
    notes = [f"{found.unreadable} unreadable file(s), listed in {DETECTIONS_FILE} with reasons"]
    if found.routed:
        enlarged = (f", {found.routed_larger} of them (not recompressed) for a side larger than the calibration "
                    "images' largest, as an upscaled file has: a natively larger image is not what the route's "
                    "enlarged copies model") if found.routed_larger else ""  # fmt: skip
        notes.append(f"{found.routed} of {found.scored} images were scored, thresholded and given p_synthetic by the "
                     f"detector's JPEG route (route 'jpeg' in {DETECTIONS_FILE}), calibrated on "
                     f"{'JPEG or enlarged' if det.takes_enlarged else 'JPEG'} copies of its calibration images: "
                     f"JPEGs re-encoded below quality {QUALITY_LIMIT}, lossy WebPs "
                     f"below quality {WEBP_QUALITY_LIMIT}{' and larger images' if det.takes_enlarged else ''}"
                     f"{enlarged}")  # fmt: skip
    doc = build_results(
        title=f"Deepfake check: {', '.join(inputs)}", dataset=", ".join(inputs), model=model, detector=det,
        meta=meta, evaluation=None, curves=None, costs=[_cost(scorer, model, found.scored, found.seconds)],
        detections=thumbnails(found.extremes.picks()), n_flagged=found.flagged, n_scored=found.scored,
        warnings=warnings, notes=notes, fairness=None, config={"detector": str(detector_file)},
    )  # fmt: skip
    return write_results(out / RESULTS_FILE, doc)
