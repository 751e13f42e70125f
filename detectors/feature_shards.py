"""The detector's feature pass cut into shards (``detect --shard K/N``, ``detect evaluate --shard K/N``, Ray).

Scoring an image is the expensive part of every detect job (K network evaluations per image) and depends
on nothing but the image, the model and the scorer's settings. So a shard lists the job's inputs (no
decode), cut into scoring blocks of :data:`detectors.image_files.CHUNK_IMAGES` listed files, takes its
contiguous range of blocks, decodes and scores those images block by block (the batches one process
makes: float32 convolutions give batch-dependent last bits, so the batches must be the same), and keeps the
features by the image's sha256 in ``OUT/shards/detect-<key>/<K>-of-<N>.npz``, then its marker. ``<key>``
names the model and scorer settings, so features of another scorer are never mixed in. The command
without ``--shard`` looks every image's features up there and scores only what no shard did; what comes
after (calibration, cross-fitting, bootstrap intervals, the perturbation sweep) runs once, on the driver,
as in one process (docs/scale-out.md).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audit.atomic import write_bytes_atomic
from audit.scale.shards import Shard, ShardMarker, shard_folder

log = logging.getLogger(__name__)


def feature_job(model: Any, scorer: Any) -> str:
    """The shard job name for this model and scorer: ``detect-`` and 16 hex digits of their identity."""
    identity = {"models": model.models(), "scorer": scorer.config()}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return f"detect-{digest[:16]}"


def _write_part(path: Path, shas: list[str], feats: np.ndarray) -> None:
    """One part of feature rows (a shard's or a journal's), atomically: what :func:`_read_parts` reads."""
    buf = io.BytesIO()
    np.savez_compressed(buf, sha256=np.array(shas, dtype="U64"), features=feats)
    write_bytes_atomic(path, buf.getvalue())


def _read_parts(folder: Path) -> dict[str, np.ndarray]:
    rows: dict[str, np.ndarray] = {}
    for part in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        try:
            with np.load(part, allow_pickle=False) as data:
                rows.update(zip((str(s) for s in data["sha256"]), data["features"], strict=True))
        except (OSError, ValueError, KeyError) as exc:  # a damaged part is rescored, never trusted
            log.warning("ignoring %s (%s): its images are scored again", part, exc)
    return rows


JOURNAL_ROWS = 4096  # a one-process run's journal writes a part at least every this many images
JOURNAL_SECONDS = 30.0  # or every this many seconds of scoring: a kill loses about this much work


class FeatureJournal:
    """The features one pass of a one-process run has computed (the images as they are, or after one of the
    robustness sweep's perturbations), kept in ``folder`` as the run goes: whole scoring chunks, a part
    every :data:`JOURNAL_SECONDS` or :data:`JOURNAL_ROWS` images, each part written atomically and named by
    its images. The same command run again after a kill reads them back and scores only the rest, in the
    same chunks, so its numbers equal an uninterrupted run's (docs/scale-out.md)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._shas: list[str] = []
        self._feats: list[np.ndarray] = []
        self._since = time.monotonic()

    def rows(self) -> dict[str, np.ndarray]:
        """Every row kept so far in this journal's folder, by image sha256."""
        return _read_parts(self.folder)

    def keep(self, shas: list[str], feats: np.ndarray) -> None:
        """One scored chunk's rows; written with others once enough work has piled up."""
        self._shas.extend(shas)
        self._feats.append(np.asarray(feats))
        if len(self._shas) >= JOURNAL_ROWS or time.monotonic() - self._since >= JOURNAL_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the rows kept since the last part as one part (nothing when there are none)."""
        if self._shas:
            name = hashlib.sha256("\n".join(self._shas).encode()).hexdigest()[:16]
            _write_part(self.folder / f"run-{name}.npz", self._shas, np.concatenate(self._feats))
        self._shas, self._feats, self._since = [], [], time.monotonic()


def feature_journal(out: Path, model: Any, scorer: Any, perturbation: str | None = None) -> FeatureJournal:
    """The journal of one pass in ``out``: the images as they are share the shards' folder (the same rows by
    sha256); each perturbation of the robustness sweep has a folder of its own beside it."""
    job = feature_job(model, scorer)
    if perturbation is not None:
        job += "-" + re.sub(r"[^a-z0-9.]+", "-", perturbation.lower()).strip("-")
    return FeatureJournal(shard_folder(out, job))


@dataclass(frozen=True)
class FeatureShards:
    """Shard K of N of a detect job's feature pass over ``specs`` (in order). Calling it loads the model and
    scorer (once per process or Ray actor) and returns the function that runs a shard."""

    groups: tuple[tuple[str, ...], ...]  # the inputs listed together: (real + fake or detect's inputs), (training)
    out: str
    model_spec: str
    scorer_config: dict[str, Any]
    progress: bool = True
    image_column: str = "image"  # Parquet inputs' image column

    def __call__(self) -> Any:
        from detectors.job import build_scorer
        from detectors.noise_model import load_noise_model

        model = load_noise_model(self.model_spec)
        scorer = build_scorer(self.scorer_config, model)
        return lambda shard: self.run(shard, model, scorer)

    def run(self, shard: Shard, model: Any, scorer: Any) -> str:
        from detectors.image_files import ImageFile, LazyImages
        from detectors.job import features, iter_inputs

        out = Path(self.out)
        job = feature_job(model, scorer)
        marker = ShardMarker(out, job, shard)
        if marker.done():
            log.info("detect shard %s is already done (%s): nothing to do", shard, marker.path)
            return str(marker.path)
        from audit.io.archives import load_at
        from detectors.image_files import CHUNK_IMAGES

        # the job's scoring blocks in order, from a first listing that only counts; the second keeps this shard's
        listed = [sum(r[3] is None for r in iter_inputs(list(specs), self.image_column)) for specs in self.groups]
        order = [(group, b) for group, n in enumerate(listed) for b in range(-(-n // CHUNK_IMAGES))]
        span = shard.range(len(order))
        mine = set(order[span.start : span.stop])
        chosen: list[ImageFile] = []
        for group, specs in enumerate(self.groups):
            position = -1
            for file, _name, file_span, refusal in iter_inputs(list(specs), self.image_column):
                position += refusal is None
                block = (group, position // CHUNK_IMAGES)
                if refusal is None and block in mine and (result := load_at(file, file_span)).ok:
                    chosen.append(ImageFile(file, result.sha256 or "", "", block, file_span))
        feats, _ = features(model, scorer, LazyImages(chosen))
        _write_part(shard_folder(out, job) / f"{shard.name}.npz", [f.sha256 for f in chosen],
                    feats if len(chosen) else np.zeros((0, 0)))  # fmt: skip
        return str(marker.write(blocks=[span.start, span.stop], scored=len(chosen)))


def score_shards(
    groups: list[list[str]], out: Path, model_spec: str, scorer_config: dict[str, Any], *, shard: Shard | None = None,
    executor: Any = None, built: tuple[Any, Any] | None = None, image_column: str = "image", progress: bool = True,
) -> tuple[Any, Any]:  # fmt: skip
    """Run one shard here (``shard``) or every shard on Ray (``executor``). ``built``: the (model, scorer) the
    caller already loaded for ``model_spec`` and ``scorer_config``, used here instead of loading them again
    (Ray workers load their own). Returns the (model, scorer) used here."""
    from audit.atomic import output_folder
    from detectors.job import build_scorer

    output_folder(out)
    listed = tuple(tuple(g) for g in groups if g)
    work = FeatureShards(listed, str(out), model_spec, scorer_config, progress, image_column)
    if built is None:
        from detectors.noise_model import load_noise_model

        model = load_noise_model(model_spec)
        built = model, build_scorer(scorer_config, model)
    if shard is not None:
        work.run(shard, *built)
        log.info("detect shard %s done in %s; run the command without --shard to merge every shard", shard, out)
        return built
    from audit.scale.ray_executor import run_shards

    run_shards(executor, feature_job(*built), out, work, progress=progress)
    return built
