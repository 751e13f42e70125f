"""Run a guidance benchmark: sample every cell, score it, analyse the sweep, write the results JSON.

Work is cached in ``OUT`` (see :mod:`audit.bench.store`); a run into a folder that already holds one
needs ``resume=True`` and the same shared config, and then recomputes nothing that is finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audit.atomic import write_json_atomic
from audit.bench.config import BenchConfig, cell_label
from audit.bench.store import CellStore
from audit.errors import InputError
from audit.out_lock import LOCK_FILE, holds_out
from audit.scale.shards import Shard, ShardMarker, shard_folder

log = logging.getLogger(__name__)

CONFIG_FILE = "bench-config.json"
IDENTITY_FILE = "bench.run.json"
RESULTS_FILE = "bench-results.json"
FEATURES_FILE = "features.npz"
TRAINING_PART = "training.npz"  # a shard's training-set features (the memorization check), beside its features.npz
WITHOUT_NEGATIVE = "without-negative"  # --pair-negative: the same cells without the negative prompt


def reference_chunks(
    spec: str, info: dict[str, Any], part: Shard | None = None
) -> Iterator[np.ndarray | list[np.ndarray]]:
    """The reference images, :data:`STREAM_CHUNK` at a time so only one chunk of pixels is ever held: each
    chunk (k, H, W, 3) uint8, or a list of (H, W, 3) arrays when its images differ in size (every extractor
    resizes each image from its own size, as clean-fid does; :func:`audit.io.images.image_batch`).
    ``embedded:digits-heldout`` or any source genaudit reads (folder, manifest, webdataset tar, Parquet).
    Unreadable files are skipped, counted and named; ``info`` gets the description ("spec", "n", "refused",
    "sizes" (how many distinct sizes) or "source") once the stream is exhausted.

    ``part`` (shard K of N): only the images at positions p with p % N == K, the others skipped before
    they are decoded (a bench shard extracts its share of the reference without counting the source
    first); ``info`` then describes that share only."""
    from audit.metrics.evaluator import STREAM_CHUNK

    info["spec"] = spec
    if spec == "embedded:digits-heldout":
        from audit.zoo import digits

        grey, _ = digits.load_split("heldout")
        if part is not None:
            grey = grey[part.k :: part.n]
        info.update(n=len(grey), source="sklearn load_digits(), last 297 images (never seen in training)")
        if len(grey):
            yield np.repeat(grey[..., None], 3, axis=-1)
        return
    from audit.io import open_source
    from audit.io.images import image_batch
    from audit.io.sources import load_record

    chunk: list[np.ndarray] = []
    refused: list[dict[str, Any]] = []
    sizes: set[tuple[int, ...]] = set()
    n = 0
    for position, record in enumerate(open_source(spec)):
        if part is not None and position % part.n != part.k:
            continue
        result = load_record(record)  # a file, a tar member or a Parquet cell, through the one loader
        if not result.ok:
            refused.append({"path": record.relpath, "reason": result.reason})
            continue
        chunk.append(result.image)
        sizes.add(result.image.shape[:2])
        n += 1
        if len(chunk) == STREAM_CHUNK:
            yield image_batch(chunk)  # images of several sizes: each resized by the extractor from its own
            chunk = []
    if refused:
        log.warning("reference %s: skipped %d unreadable file(s), e.g. %s", spec, len(refused), refused[0])
    if not n and part is None:
        raise InputError(f"reference {spec}: no readable images")
    info.update(n=n, refused=refused, sizes=len(sizes))
    if chunk:
        yield image_batch(chunk)


def _reference_outputs(spec: str, extractor: Any, cache: Any) -> tuple[dict[str, np.ndarray], dict[str, Any], str]:
    """The reference's extractor outputs, its description and where the outputs came from: read from the
    reference features kept by an earlier run (:mod:`audit.bench.reference_store`), else streamed through
    ``cache`` and kept for the next run."""
    from audit.bench.reference_store import ReferenceStore
    from audit.metrics.evaluator import extract_all

    store = ReferenceStore(spec, extractor)
    kept = store.load()
    if kept is not None:
        log.info("reference %s: features read from %s (kept by an earlier run)", spec, store.path)
        return kept[0], {**kept[1], "spec": spec}, f"read from {store.path}"  # the spec as given this time
    info: dict[str, Any] = {}
    outputs = extract_all(cache, extractor, reference_chunks(spec, info))  # streamed
    store.save(outputs, info)
    return outputs, info, "extracted now" + (f", kept in {store.path}" if store.path is not None else "")


def _reference_kept(spec: str, extractor: Any) -> bool:
    """Whether an earlier run kept this reference's features under this extractor (a shard then skips its
    share of the reference: the merge reads them all)."""
    from audit.bench.reference_store import ReferenceStore

    path = ReferenceStore(spec, extractor).path
    return path is not None and path.is_file()


def load_reference(spec: str) -> tuple[np.ndarray | list[np.ndarray], dict[str, Any]]:
    """The whole reference in memory, (N, H, W, 3) or a list when its images differ in size, and its
    description (:func:`reference_chunks`)."""
    from audit.io.images import image_batch

    info: dict[str, Any] = {}
    return image_batch([image for chunk in reference_chunks(spec, info) for image in chunk]), info


def _check_folder(out: Path, config: BenchConfig, resume: bool) -> None:
    from audit.atomic import output_folder
    from audit.run_identity import read_identity, start_or_resume

    stored = output_folder(out) / CONFIG_FILE
    started = stored.is_file()
    if started:
        if not resume:
            raise InputError(f"{out} already holds a benchmark run: pass --resume to continue it, or another --out")
        previous = read_identity(stored)  # a damaged or hand-edited config.json is one clear error
        diffs = config.differences(previous)
        if diffs:
            raise InputError(f"{out} holds a run with a different config ({'; '.join(diffs)}); use another --out")
    elif out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):  # the run's own lock is not content
        raise InputError(f"{out} is not empty and holds no benchmark run; use an empty or new --out")
    # beyond the config: the reference's identity, the pixel limit and the versions that change numbers
    start_or_resume(out / IDENTITY_FILE, _identity(config), resume=resume, started=started, what="a benchmark run")
    write_json_atomic(stored, config.to_dict())


def _identity(config: BenchConfig) -> dict[str, Any]:
    from audit.io.images import default_max_pixels
    from audit.provenance import TRACKED_PACKAGES, package_versions
    from audit.run_identity import dataset_identity

    return {
        "job": "bench",
        "reference": dataset_identity(config.reference),
        "max_pixels": default_max_pixels(),
        "versions": package_versions(TRACKED_PACKAGES),
    }


def _captions(config: BenchConfig, extractor: Any, conditions: list[Any]) -> list[str] | None:
    if config.prompts is not None:
        return [str(c) for c in conditions]
    if hasattr(extractor, "label_caption"):
        return [extractor.label_caption(int(c)) for c in conditions]
    return None


def _request(config: BenchConfig, schedule: Any, part: list[int]) -> Any:
    """The generation request for images ``part`` of a cell: image i's seed and condition depend on i only."""
    from audit.generators import GenerationRequest

    conditions, seeds = config.conditions(), config.seeds()
    key = "label" if config.labels is not None else "prompt"
    return GenerationRequest(
        seeds=tuple(seeds[i] for i in part),
        schedule=schedule,
        steps=config.steps,
        labels=tuple(int(conditions[i]) for i in part) if key == "label" else None,
        prompts=tuple(conditions[i] for i in part) if key == "prompt" else None,
        negative_prompts=(config.negative_prompt,) * len(part) if config.negative_prompt else None,
        negative_weight=config.negative_weight,
    )


def _generate(config: BenchConfig, generator: Any, store: CellStore, todo: list[int]) -> list[float] | None:
    """Generate and write images ``todo`` of ``store``'s cell, a chunk at a time; the step weights applied."""
    chunk = int(config.options.get("chunk", 250))
    weights = None
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        batch = generator.generate(_request(config, store.schedule, part))
        store.write_images(part, batch.images)
        weights = batch.step_weights
    return weights


@holds_out
def run_bench(
    config: BenchConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    shard: Shard | None = None,
    executor: Any = None,
) -> Path | None:
    """Run (or finish) the benchmark in ``out``; return the path of the results JSON.

    ``shard`` (K of N): generate and extract only that shard's images of every cell (see
    :class:`BenchShards`) and return None; the call without it (or ``executor``, Ray options, which runs
    every shard on Ray first) then does what is missing and scores every cell: the numbers equal a
    one-process run's. Another process writing ``out`` (another run, or shards while this one would merge
    them) is one clear error (:func:`audit.out_lock.holds_out`)."""

    out = Path(out)
    if config.tune:
        return _run_tuned(config, out, resume=resume, progress=progress, shard=shard, executor=executor)
    if config.pair_negative:
        return _run_paired(config, out, resume=resume, progress=progress, shard=shard, executor=executor)
    if shard is not None:
        _join_folder(out, config)
        BenchShards(config, str(out), progress)()(shard)
        log.info("bench shard %s done in %s; run the command without --shard to merge every shard", shard, out)
        return None
    if executor is None:
        return _finish(config, out, resume=resume, progress=progress)
    from audit.scale.ray_executor import WorkerPool, ray_session

    _join_folder(out, config)
    with ray_session(executor) as ray, WorkerPool(ray, executor, "bench", BenchShards(config, str(out), False)) as pool:
        pool.run_shards(out, progress=progress)  # then the cells scored by the same warm actors
        return _finish(config, out, resume=resume, progress=progress, ray=pool)


def _run_paired(config: BenchConfig, out: Path, *, resume: bool, **kwargs: Any) -> Path | None:
    """``--pair-negative``: the run with the negative prompt in ``out``, the same cells without it (same
    conditions, seeds and resampling draws) in ``out/without-negative``, then the results again with every
    cell's paired differences (with minus without)."""
    from dataclasses import replace

    first = run_bench(replace(config, pair_negative=False), out, resume=resume, **kwargs)
    without = replace(config, negative_prompt=None, negative_weight=None, pair_negative=False, training=None)
    sub = out / WITHOUT_NEGATIVE
    run_bench(without, sub, resume=resume or (sub / CONFIG_FILE).is_file(), **kwargs)
    if first is None:  # a shard: the merge pairs the cells
        return None
    return _finish(config, out, resume=True, progress=kwargs.get("progress", True), without_negative=sub)


def _run_tuned(config: BenchConfig, out: Path, *, resume: bool, **kwargs: Any) -> Path | None:
    """``--tune``: every candidate on the held-out split in ``out`` (what is reported) and on the tuning split
    in ``out/tune``, then the results again with the tuning report (:mod:`audit.bench.tuning`)."""
    from dataclasses import replace

    from audit.bench.tuning import TUNE_DIR, splits

    tune, held = splits(config)
    sub = out / TUNE_DIR
    first = run_bench(held, out, resume=resume or (out / CONFIG_FILE).is_file(), **kwargs)  # out first: empty
    tuned = run_bench(tune, sub, resume=resume or (sub / CONFIG_FILE).is_file(), **kwargs)
    if first is None or tuned is None:  # a shard: the merge reports
        return None
    marked = replace(held, tune=True)  # an analysis field: the cells are the held-out run's
    pairs = out / WITHOUT_NEGATIVE if held.pair_negative else None
    return _finish(marked, out, resume=True, progress=kwargs.get("progress", True), tuned=sub, without_negative=pairs)


def _tuning(config: BenchConfig, tuned: Path, held_cells: list[dict[str, Any]]) -> dict[str, Any]:
    from audit.bench.tuning import report

    tune_cells = [m for s in config.cells() if (m := CellStore(tuned / "cells", s).read_metrics()) is not None]
    return {**report(tune_cells, held_cells), "tuning_run": str(tuned)}


def _negative_pairs(config: BenchConfig, out: Path, without: Path) -> dict[str, Any]:
    """Each cell with the negative prompt minus the same cell without it, per metric (paired draws)."""
    from audit.bench.analysis import metric_differences

    rows = []
    for schedule in config.cells():
        with_it = CellStore(out / "cells", schedule).read_metrics()
        without_it = CellStore(without / "cells", schedule).read_metrics()
        if with_it is None or without_it is None:
            continue
        rows.append({"label": with_it["label"], "schedule": with_it["schedule"],
                     "metrics": metric_differences(with_it["metrics"], without_it["metrics"])})  # fmt: skip
    form = "replaces the unconditional branch" if config.negative_weight is None else "three-branch"
    return {"negative_prompt": config.negative_prompt, "negative_weight": config.negative_weight, "form": form,
            "without": str(without), "rows": rows}  # fmt: skip


def _finish(
    config: BenchConfig,
    out: Path,
    *,
    resume: bool,
    progress: bool,
    ray: Any = None,
    without_negative: Path | None = None,
    tuned: Path | None = None,
) -> Path:
    """Take in the shards' features, generate what is missing, score every cell (here, or on Ray when
    ``ray`` is the :class:`~audit.scale.ray_executor.WorkerPool` that ran the shards), write the results."""
    from tqdm.auto import tqdm

    from audit.bench.results import build_results
    from audit.bench.scoring import LocalScoring, RayScoring
    from audit.features import get_extractor
    from audit.generators import get_generator
    from audit.metrics.evaluator import FeatureCache, extract_all

    shards = shard_folder(out, "bench")
    _check_folder(out, config, resume or shards.is_dir())
    generator = get_generator(config.generator, **config.options)
    extractor = get_extractor(config.extractor)
    cache = FeatureCache(out / FEATURES_FILE)
    for part in sorted(shards.glob("*.features.npz")) if shards.is_dir() else []:
        cache.take(FeatureCache(part))  # every shard's features: no image goes through an extractor twice
    reference, reference_info, reference_kept = _reference_outputs(config.reference, extractor, cache)
    count, dim = reference["features"].shape
    _refuse_singular(config, extractor.id, dim)  # before any sampling, not after the first cell
    if count <= dim:  # the same for the reference, whose unreadable files were skipped
        skipped = len(reference_info.get("refused", []))
        raise InputError(
            f"reference {config.reference}: {count} readable images ({skipped} skipped) cannot give a FID in "
            f"{extractor.id}'s {dim}-d feature space (the covariance would be singular): it needs {dim + 1} or more"
        )
    conditions, seeds = config.conditions(), config.seeds()
    key = "label" if config.labels is not None else "prompt"
    labels = np.asarray(conditions) if key == "label" and getattr(extractor, "scores_labels", False) else None
    captions = _captions(config, extractor, conditions)
    options = {
        "labels": labels,
        "bootstrap": config.bootstrap,
        "seed": config.seed,
        "keep_draws": True,
    }
    memo = None
    if config.training:
        from audit.bench.memorization import MemorizationCheck

        mean = reference["features"].mean(axis=0)
        memo = MemorizationCheck(config.training, config.memorization, extractor, mean, salt=config.fingerprint(),
                                 cache=_training_cache(shards))  # fmt: skip
    if ray is None:  # the captions are encoded once, where the cells are scored
        scoring: Any = LocalScoring(reference, extractor, options, captions)
    else:
        warm = ray if ray.actors else None  # no shard ran now: tasks, not actors built to score
        scoring = RayScoring(ray.ray, ray.workers, reference, extractor, options, pool=warm, captions=captions)
    cells = config.cells()
    finished: list[dict[str, Any] | None] = [None] * len(cells)
    bar = tqdm(cells, desc="bench", unit="cell", disable=not progress)
    for slot, schedule in enumerate(bar):
        store = CellStore(out / "cells", schedule)
        label = cell_label(schedule.to_config())
        bar.set_postfix_str(label)
        metrics = store.read_metrics()
        if metrics is not None and metrics.get("fingerprint") == config.fingerprint():
            finished[slot] = metrics
            if memo is not None and memo.stored(store.dir) is None:  # images and features read back, not redone
                fake = extract_all(cache, extractor, memo.tap(store.image_chunks(range(config.n))))
                memo.add(store.dir, fake["features"])
            continue
        t0 = time.perf_counter()
        generated = 0
        if not store.manifest.is_file():
            todo = store.missing(config.n)
            weights = _generate(config, generator, store, todo)
            generated = len(todo)
            if not todo:  # every image survived a kill that came just before the manifest (or shards made them):
                # the weights the sampler applied (the same for every image: noise-level windows need its
                # sigmas), kept by the shards, else from one image generated again
                weights = store.stored_step_weights()
                if weights is None:
                    weights = generator.generate(_request(config, schedule, [0])).step_weights
            store.write_manifest(
                conditions,
                seeds,
                key,
                {
                    "step_weights": weights,
                    "steps": config.steps,
                    "negative_prompt": config.negative_prompt,
                    **({"negative_weight": config.negative_weight} if config.negative_weight is not None else {}),
                },
            )
        t1 = time.perf_counter()
        chunks = store.image_chunks(range(config.n))
        fake = extract_all(cache, extractor, memo.tap(chunks) if memo else chunks)  # streamed, a chunk at a time
        cache.save()
        if memo is not None and memo.stored(store.dir) is None:
            memo.add(store.dir, fake["features"])
        extract_seconds = time.perf_counter() - t1
        cell = _ScoredCell(config, schedule, store, generated, t1 - t0, extract_seconds, finished, slot)
        scoring.submit(fake, cell.done)
    by_folder = memo.finish(progress) if memo is not None else {}  # on Ray, while the workers score the last cells
    scoring.drain()
    attributes = None
    if config.attributes:
        from audit.bench.attributes import analyse_cells

        done = [m for m in finished if m is not None]
        attributes = analyse_cells(config, out, done, [CellStore(out / "cells", _schedule(c)) for c in done], progress)
    memorization = None
    if memo is not None:
        for cell in finished:
            if cell is not None:
                cell["memorization"] = by_folder[str(CellStore(out / "cells", _schedule(cell)).dir)]
        memorization = memo.summary()
    doc = build_results(
        config,
        [m for m in finished if m is not None],
        generator=generator,
        extractor=extractor,
        reference_info=reference_info,
        reference_kept=reference_kept,
        cells_root=out / "cells",
        memorization=memorization,
        attributes=attributes,
        tuning=None if tuned is None else _tuning(config, tuned, [m for m in finished if m is not None]),
        negative_pairs=None if without_negative is None else _negative_pairs(config, out, without_negative),
    )
    from audit.results import write_results

    return write_results(out / RESULTS_FILE, doc)


def _schedule(cell: dict[str, Any]) -> Any:
    from audit.guidance import get_schedule

    return get_schedule(**cell["schedule"])


@dataclass
class _ScoredCell:
    """A cell handed to scoring, and what its metrics file records besides the metrics."""

    config: BenchConfig
    schedule: Any
    store: CellStore
    generated: int
    generate_seconds: float
    extract_seconds: float
    finished: list[dict[str, Any] | None]
    slot: int

    def done(self, result: dict[str, Any], seconds: float) -> None:
        """Write the cell's metrics (atomically: a rerun skips it) and put them in their slot."""
        label = cell_label(self.schedule.to_config())
        metrics = {
            "fingerprint": self.config.fingerprint(),
            "schedule": self.schedule.to_config(),
            "label": label,
            "step_weights": self.store.step_weights(),
            "generated_now": self.generated,
            "seconds": {"generate": round(self.generate_seconds, 3), "score": round(self.extract_seconds + seconds, 3)},
            "metrics": result,
        }
        self.store.write_metrics(metrics)
        log.info("%s: FID %.3f (%d images generated now)", label, result["fid"]["value"], self.generated)
        self.finished[self.slot] = metrics


def _join_folder(out: Path, config: BenchConfig) -> None:
    """A shard's check of the shared run folder: the same config and identity, or a new run started (shards
    start in any order and at once: they write the same bytes)."""
    from audit.atomic import create_json_atomic, output_folder
    from audit.dataset.run import adopt_identity
    from audit.run_identity import read_identity

    stored = output_folder(out) / CONFIG_FILE
    if not create_json_atomic(stored, config.to_dict()):  # another shard's (or an earlier run's): the same, or refused
        diffs = config.differences(read_identity(stored))
        if diffs:
            raise InputError(f"{out} holds a run with a different config ({'; '.join(diffs)}); use another --out")
    adopt_identity(out / IDENTITY_FILE, _identity(config), what="a benchmark run")


@dataclass(frozen=True)
class BenchShards:
    """Shard K of N of a benchmark: images ``Shard.range(n)`` of every cell, generated (those not on disk)
    and sent through the extractor once, with the shard's share of the reference images (positions
    p % N == K), their features kept in ``OUT/shards/bench/<K>-of-<N>.features.npz`` (and with
    ``training``, its share of the training images' in ``<K>-of-<N>.training.npz``), then the shard's
    marker. Each cell's step weights are kept beside its images, so the merge never needs the generator
    when the shards made every image. Calling it builds the generator and extractor (once per process or
    Ray actor) and returns the :class:`BenchWorker` that runs a shard (and, on Ray, scores cells)."""

    config: BenchConfig
    out: str
    progress: bool = True

    def __call__(self) -> BenchWorker:
        from audit.features import get_extractor
        from audit.generators import get_generator

        generator = get_generator(self.config.generator, **self.config.options)
        return BenchWorker(self, generator, get_extractor(self.config.extractor))

    def run(self, shard: Shard, generator: Any, extractor: Any) -> str:
        from tqdm.auto import tqdm

        from audit.metrics.evaluator import FeatureCache, extract_all

        out, config = Path(self.out), self.config
        marker = ShardMarker(out, "bench", shard)
        if marker.done():
            log.info("bench shard %s is already done (%s): nothing to do", shard, marker.path)
            return str(marker.path)
        cache = FeatureCache(shard_folder(out, "bench") / f"{shard.name}.features.npz")
        span = shard.range(config.n)
        indices = list(span)
        generated = 0
        stores = [CellStore(out / "cells", schedule) for schedule in config.cells()]
        fingerprint = config.fingerprint()
        unscored = [s for s in stores if (m := s.read_metrics()) is None or m.get("fingerprint") != fingerprint]
        if unscored:  # the reference's share: the merge then finds every reference image's features cached
            if not _reference_kept(config.reference, extractor):  # (or reads them all from an earlier run's)
                for chunk in reference_chunks(config.reference, {}, part=shard):
                    _refuse_singular(config, extractor.id, cache.extract(extractor, chunk)["features"].shape[1])
                cache.save()
            if config.training:  # and the training set's share, for the memorization check's pass
                _extract_training_share(config.training, extractor, shard, shard_folder(out, "bench"))
        for store in tqdm(unscored, desc=f"bench shard {shard}", unit="cell", disable=not self.progress):
            if not indices:
                continue
            todo = [i for i in indices if not store.has_image(i)]
            weights = _generate(config, generator, store, todo)
            if weights is not None:
                store.write_step_weights(weights)
            generated += len(todo)
            extract_all(cache, extractor, store.image_chunks(indices))
            cache.save()  # after every cell: a killed shard keeps the features of the cells it finished
        return str(marker.write(cells=len(config.cells()), range=[span.start, span.stop], generated=generated))


def _refuse_singular(config: BenchConfig, extractor_id: str, dim: int) -> None:
    """Refuse ``config.n`` images per cell at or under the feature dimension ``dim``: their covariance would be
    singular and no cell could get a FID. The merge checks it before sampling, and so does every shard (which
    finds ``dim`` in its share of the reference), so N shard processes never sample for a run that can't be scored."""
    if config.n <= dim:
        raise InputError(
            f"n = {config.n} images per cell cannot give a FID in {extractor_id}'s {dim}-d feature space "
            f"(the covariance would be singular): use --n {dim + 1} or more"
        )


def _extract_training_share(spec: str, extractor: Any, shard: Shard, folder: Path) -> None:
    """Shard K of N's share of the training images (positions p % N == K) through the extractor, kept in
    ``<folder>/<K>-of-<N>.training.npz`` apart from the run's feature cache: the merge reads them into the
    memorization check's pass (:func:`_training_cache`) and never writes them into ``features.npz``."""
    from audit.bench.memorization import training_chunks
    from audit.io.images import image_batch
    from audit.metrics.evaluator import FeatureCache

    cache = FeatureCache(folder / f"{shard.name}.{TRAINING_PART}")
    for _, images in training_chunks(spec, {}, part=shard):
        cache.extract(extractor, image_batch(images))
    cache.save()


def _training_cache(shards: Path) -> Any:
    """The training features every shard kept (:func:`_extract_training_share`), in memory only: for a
    training set of T images in a d-d space that is T x d floats (100,000 Inception features: 800 MB)."""
    from audit.metrics.evaluator import FeatureCache

    cache = FeatureCache()
    for part in sorted(shards.glob(f"*.{TRAINING_PART}")) if shards.is_dir() else []:
        cache.take(FeatureCache(part))  # a damaged part is skipped with a warning: its images are extracted again
    return cache


class BenchWorker:
    """A bench shard runner with its models built: called with a shard it runs it; :meth:`score` scores a
    cell with the same extractor (a Ray actor that ran shards scores cells without building anything)."""

    def __init__(self, shards: BenchShards, generator: Any, extractor: Any) -> None:
        from audit.bench.scoring import CaptionScoring

        self.shards, self.generator, self.extractor = shards, generator, extractor
        self.score = CaptionScoring(extractor)

    def __call__(self, shard: Shard) -> str:
        return self.shards.run(shard, self.generator, self.extractor)
