"""``builtin:digits-mixed``: the embedded default for the deepfake check, made on the spot.

Real: the 297 held-out digits of scikit-learn's digits (never seen by the embedded models in
training). Generated, :data:`PER_SCHEDULE` images per source, digits cycling 0..9: the embedded digit
DDPM's samples under several guidance schedules (:data:`SCHEDULES`, 25 DDIM steps; image i with seed i and
label i mod 10 under every schedule, as in ``genaudit bench``, whose cells the demo reuses),
and two generators of other families trained on the same 1,500 training digits (:data:`OTHER_FAMILIES`):
the zoo's conditional GAN (``digits-gan``) and a per-class Gaussian mixture on pixels
(:mod:`audit.zoo.mixture`, fitted on the fly). All are 8x8 grey digits quantised to the same 17 levels
and held as uint8 RGB in memory, so format and size cannot give the answer away. Each image carries its
source (a schedule, ``gan``, ``mixture``) and its generator family, the unit the held-out-generator
figures leave out. The DDPM's image i under one schedule and image i under another start from the same
seed and look alike: they are *siblings* (:attr:`LabelledImages.siblings`), kept in one fold whenever the
images are cross-fitted, or a fold detector would be scored on near-copies of images it was calibrated on
(docs/detect.md, "Siblings").

:func:`training_digits` is a seeded sample of the digits the embedded models *were* trained on: not part
of the evaluation, but scored to show how the detector treats its generator's own training images.

:func:`split_halves` cuts every source (the real digits, each schedule) in two seeded random halves:
the benchmark's split-half figures calibrate on one and evaluate on the other (the demo cross-fits over
folds stratified by source instead, see :func:`detectors.job.run_default`), and the demo's robustness
sweep re-encodes a quarter of every source (:func:`quarter_of_every_source`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCHEDULES = (("static", 0.0), ("static", 1.0), ("static", 2.0), ("linear", 2.0), ("cosine", 2.0))
PER_SCHEDULE = 150
STEPS = 25
REAL = "real (held-out digits)"
DIFFUSION = "diffusion (embedded DDPM, 5 schedules)"
# source tag -> generator family, for the generators that are not the embedded DDPM
OTHER_FAMILIES = {"gan": "adversarial (digits-gan)", "mixture": "statistical (per-class Gaussian mixture)"}
OTHER_SEED = 800_000
TRAINING_SAMPLE = 300  # training digits scored for the membership check (about as many as the held-out 297)
TRAINING_SEED = 700_000  # which of them (a draw without replacement; independent of the samples' seeds)


@dataclass(frozen=True)
class LabelledImages:
    images: np.ndarray  # (N, H, W, 3) uint8
    y: np.ndarray  # 1 = generated, 0 = real
    source: list[str]  # "real (held-out digits)", the schedule (e.g. "cosine w=2"), "gan" or "mixture"
    names: list[str]
    siblings: np.ndarray | None = None  # images from one seed share a number (None: every image its own)

    def subset(self, idx: np.ndarray) -> LabelledImages:
        pick = [int(i) for i in idx]
        names = [self.names[i] for i in pick]
        siblings = None if self.siblings is None else self.siblings[idx]
        return LabelledImages(self.images[idx], self.y[idx], [self.source[i] for i in pick], names, siblings)

    @property
    def family(self) -> np.ndarray:
        """Each image's generator family (:data:`REAL` for the real ones): every schedule is the DDPM's."""
        return np.array([s if s == REAL else OTHER_FAMILIES.get(s, DIFFUSION) for s in self.source])


def digits_mixed(per_schedule: int = PER_SCHEDULE, bench: str | Path | None = None) -> LabelledImages:
    """The embedded default's images (see the module docstring). ``bench``: the folder of a ``genaudit bench``
    run of the embedded DDPM (e.g. the demo's): a cell of the same schedule, steps, seeds and labels holds the
    very images this would generate, so they are read from there instead (:func:`bench_cell_images`)."""
    from audit.generators.base import GenerationRequest
    from audit.generators.embedded import EmbeddedDigitsGenerator
    from audit.guidance import get_schedule
    from audit.zoo import digits

    real, _ = digits.load_split("heldout")
    images = [np.repeat(real[..., None], 3, axis=-1)]
    source = [REAL] * len(real)
    names = [f"real/heldout-{i:03d}.png" for i in range(len(real))]
    generator = EmbeddedDigitsGenerator()
    labels = tuple(int(i % digits.NUM_CLASSES) for i in range(per_schedule))
    for name, scale in SCHEDULES:
        schedule = get_schedule(name, scale)
        cached = bench_cell_images(bench, schedule, labels) if bench is not None else None
        if cached is None:
            request = GenerationRequest(seeds=tuple(range(per_schedule)), schedule=schedule, steps=STEPS, labels=labels)
            cached = generator.generate(request).images
        images.append(cached)
        tag = f"{name} w={scale:g}"
        source += [tag] * per_schedule
        names += [f"generated/{name}-w{scale:g}-{i:03d}.png" for i in range(per_schedule)]
    for tag, grey in _other_families(labels).items():
        images.append(np.repeat(grey[..., None], 3, axis=-1))
        source += [tag] * per_schedule
        names += [f"generated/{tag}-{i:03d}.png" for i in range(per_schedule)]
    y = np.array([0] * len(real) + [1] * (len(source) - len(real)))
    siblings = np.arange(len(source))  # the DDPM's image i under every schedule: one seed, one number
    siblings[len(real) : len(real) + len(SCHEDULES) * per_schedule] = len(source) + np.tile(
        np.arange(per_schedule), len(SCHEDULES)
    )
    return LabelledImages(np.concatenate(images), y, source, names, siblings)


def bench_cell_images(bench: str | Path, schedule: Any, labels: tuple[int, ...]) -> np.ndarray | None:
    """The first ``len(labels)`` images of ``schedule``'s cell in the bench folder ``bench``, when that run is
    of the embedded DDPM at :data:`STEPS` steps and its manifest gives image i seed i and label ``labels[i]``
    (what :func:`digits_mixed` would generate: an image depends only on its seed and condition); else None."""
    import csv
    import json

    from audit.bench.run import CONFIG_FILE
    from audit.bench.store import CellStore
    from audit.errors import InputError

    try:
        config = json.loads((Path(bench) / CONFIG_FILE).read_text(encoding="utf-8"))
        if config.get("generator") != "embedded:digits-ddpm" or int(config.get("steps", -1)) != STEPS:
            return None
        store = CellStore(Path(bench) / "cells", schedule)
        with store.manifest.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))[: len(labels)]
        expected = [(str(i), str(label), str(STEPS)) for i, label in enumerate(labels)]
        if [(r["seed"], r["label"], r["steps"]) for r in rows] != expected:
            return None
        return store.read_images(len(labels))
    except (OSError, ValueError, KeyError, TypeError, InputError):  # no such run, not this one, or a damaged
        return None  # image: generate instead


def _other_families(labels: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The GAN's and the Gaussian mixture's digits of classes ``labels`` (uint8 grey), by source tag."""
    from audit.zoo import gan, registry
    from audit.zoo.mixture import sample_mixture

    return {
        "gan": gan.sample(registry.load("digits-gan"), np.asarray(labels), seed=OTHER_SEED),
        "mixture": sample_mixture(labels, seed=OTHER_SEED + 1),
    }


def training_digits(n: int = TRAINING_SAMPLE, seed: int = TRAINING_SEED) -> np.ndarray:
    """``n`` of the embedded models' 1,500 training digits, drawn without replacement with ``seed``, as
    uint8 RGB (n, 8, 8, 3) like :func:`digits_mixed`'s images."""
    from audit.zoo import digits

    train, _ = digits.load_split("train")
    if not 1 <= n <= len(train):
        raise ValueError(f"n must be between 1 and {len(train)}, got {n}")
    pick = np.sort(np.random.default_rng(seed).choice(len(train), size=n, replace=False))
    return np.repeat(train[pick][..., None], 3, axis=-1)


def split_halves(data: LabelledImages, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two halves, each a seeded random half of every source (the first one image larger where
    a source is odd; not every other image: the generated digits cycle 0..9, so alternate images would
    split the classes)."""
    rng = np.random.default_rng(seed)
    calib, evaluation = [], []
    for tag in dict.fromkeys(data.source):
        idx = rng.permutation([i for i, s in enumerate(data.source) if s == tag])
        half = (len(idx) + 1) // 2
        calib += idx[:half].tolist()
        evaluation += idx[half:].tolist()
    return np.array(sorted(calib)), np.array(sorted(evaluation))


def quarter_of_every_source(data: LabelledImages, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded quarter of every source: one of the two halves of :func:`split_halves`'s
    second half (the images the demo's robustness sweep re-encodes)."""
    half = split_halves(data, seed)[1]
    return np.sort(half[split_halves(data.subset(half), seed)[1]])
