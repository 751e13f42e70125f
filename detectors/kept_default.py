"""The embedded default detector, calibrated once per machine instead of once per output folder.

``genaudit detect FOLDER`` without ``--detector`` needs the embedded default: the diffusion-loss detector
calibrated on ``builtin:digits-mixed`` (:func:`detectors.job.run_default`, about two minutes on 2 cores:
it generates the DDPM's samples, scores every image and cross-fits the evaluation). It is made in
``OUT/embedded-default`` so the output folder holds the detector it was scored with and that detector's own
card. Every new ``--out`` made it again. Now the folder is also kept in the cache
(:func:`audit.cache_dir.cache_root`) under a key of everything it is computed from: the embedded models'
weights (sha256), the default scorer, and the versions of genaudit and of the packages that change numbers
(scikit-learn's digits among them). A later run with another ``--out`` copies it in, and loads it through
the same checks as any saved detector (its sha256 over itself, the scorer's feature layout); a kept copy
that fails them is made again. docs/detect.md, "The embedded default".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit.errors import InputError, WeightsError
from audit.out_lock import LOCK_FILE
from detectors.detector import DETECTOR_FILE

log = logging.getLogger(__name__)

FORMAT = "genaudit.embedded-default/2"  # 2: the detector carries its JPEG route (detectors.routing)
MODELS = ("digits-ddpm", "digits-gan")  # the DDPM scores and is sampled, the GAN is sampled (run_default)


def kept_folder() -> Path | None:
    """Where the embedded default is kept for this version and these models, or None (the cache is off)."""
    from audit.cache_dir import cache_root
    from audit.provenance import TRACKED_PACKAGES, package_versions
    from audit.zoo import registry
    from detectors.job import DEFAULT_MODEL, DEFAULT_SCORER

    root = cache_root()
    if root is None:
        return None
    identity = {
        "format": FORMAT,
        "model": DEFAULT_MODEL,
        "scorer": DEFAULT_SCORER,
        "weights": {name: registry.read_card(name)["weights"]["sha256"] for name in MODELS},
        "versions": package_versions(TRACKED_PACKAGES),
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return root / "embedded-detector" / key


def embedded_default(
    folder: Path, calibrate: Callable[[Path], Any], load: Callable[[Path], tuple[Any, ...]]
) -> tuple[Any, ...]:
    """The embedded default in ``folder`` (``OUT/embedded-default``), loaded with ``load``: the one already
    there, else a copy of the kept one, else one made by ``calibrate(folder)`` and then kept. A detector left
    there by an older version, or a kept copy that fails its checks, is made again, not an error."""
    from detectors.job import StaleDetectorError

    remade = (StaleDetectorError, WeightsError)  # WeightsError: an older format (OutdatedDetectorError)
    if (folder / DETECTOR_FILE).is_file():
        try:
            return load(folder / DETECTOR_FILE)
        except remade:
            log.info("the embedded default in %s predates this version's features: calibrating it again", folder)
    kept = kept_folder()
    if kept is not None and (kept / DETECTOR_FILE).is_file():
        try:
            _replace(kept, folder)
            loaded = load(folder / DETECTOR_FILE)
            log.info("no --detector: the embedded default calibrated by an earlier run, from %s", kept)
            return loaded
        except (InputError, WeightsError, OSError) as exc:
            log.warning("the kept embedded default in %s is unusable (%s): calibrating it again", kept, exc)
    else:
        log.info("no --detector: calibrating the embedded default on builtin:digits-mixed first")
    calibrate(folder)
    loaded = load(folder / DETECTOR_FILE)
    if kept is not None:
        try:
            _replace(folder, kept)
        except OSError as exc:
            log.warning("could not keep the embedded default in %s (%s): the next --out calibrates it again",
                        kept, exc.strerror or type(exc).__name__)  # fmt: skip
    return loaded


def _replace(source: Path, target: Path) -> None:
    """``target`` becomes a copy of folder ``source``: copied beside it first, then renamed into place, so a
    reader never sees half a folder (a detector whose files disagree fails its own sha256 check anyway)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    # not the feature journal, temporaries, or the lock the run that made it held (audit.out_lock)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns("shards", ".*.tmp", LOCK_FILE))
    try:
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
