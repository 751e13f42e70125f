"""``genaudit demo``: the main job on the embedded defaults, with no download, published as a site.

One card per embedded model (figures, sample grids of the generator per class) and the guidance
benchmark of the embedded DDPM (every heuristic schedule at four scales, 200 images per cell: the
``genaudit bench`` defaults with a smaller n, about two and a half minutes on two CPU cores), every
generated image compared with the DDPM's 1,500 training digits for near-copies. The benchmark's
cells are cached under ``out/bench``, so running the demo again into the same folder reuses them. Then
the face audit of ``builtin:faces-demo`` (records under ``out/audit``), and the deepfake check on
``builtin:digits-mixed`` (``out/detect``: the diffusion-loss detector cross-fitted over 5 folds, every
image scored by a detector calibrated without it, beside the inversion baseline).
"""

from __future__ import annotations

import logging
from pathlib import Path

from audit.out_lock import holds_out

log = logging.getLogger(__name__)

DEMO_BENCH_N = 200  # per cell: above the 128-d feature space FID needs; the demo stays near 5 minutes


@holds_out
def run_demo(out: Path) -> Path:
    """Write every results JSON under ``out/results``, then publish the site at ``out`` (another demo writing
    ``out`` meanwhile is one clear error: :mod:`audit.out_lock`)."""
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from audit.results import write_results
    from audit.zoo import registry
    from audit.zoo.report import zoo_results
    from reports.publish import publish

    results_dir = Path(out) / "results"
    with logging_redirect_tqdm():  # log lines above the progress bar, not through it
        for name in tqdm(list(registry.ENTRIES), desc="demo: zoo cards", unit="model"):
            doc = zoo_results(name)
            write_results(results_dir / f"{doc['id']}.json", doc)
            log.info("results %s", results_dir / f"{doc['id']}.json")
        bench = _run_bench(Path(out) / "bench")
        audit = _run_audit(Path(out) / "audit")
        review = _review_audit(Path(out) / "audit")
        detect = _run_detect(Path(out) / "detect", bench=Path(out) / "bench")
    return publish([results_dir, bench, audit, review, detect], out, title="genaudit demo: embedded defaults")


def _run_detect(folder: Path, bench: Path) -> Path:
    """The deepfake check's embedded default (``genaudit detect`` with no inputs), its DDPM samples read from
    the benchmark's cells (the same seeds, labels and steps) rather than generated again."""
    from detectors.job import run_default

    log.info("deepfake check: %s", folder)
    return run_default(folder, bench=bench)


def _run_audit(folder: Path) -> Path:
    """The face audit of ``builtin:faces-demo`` (resumed when ``folder`` holds it)."""
    from audit.dataset.job import run_audit
    from audit.dataset.run import RECORDS_FILE

    log.info("dataset audit: %s", folder)
    return run_audit("builtin:faces-demo", folder, resume=(folder / RECORDS_FILE).is_file())


def _review_audit(folder: Path) -> Path:
    """The audit's review sheet (``genaudit audit review``; docs/review.md): what a person should check."""
    from audit.dataset.review import write_review

    return write_review(folder)


def _run_bench(folder: Path) -> Path:
    """The guidance benchmark on the embedded defaults (resumed when ``folder`` holds this run)."""
    from audit.bench import BenchConfig, run_bench
    from audit.bench.run import CONFIG_FILE

    log.info("guidance benchmark: %s", folder)
    config = BenchConfig(n=DEMO_BENCH_N, training="builtin:digits-train")  # near-copies of the DDPM's training digits
    return run_bench(config, folder, resume=(folder / CONFIG_FILE).is_file())
