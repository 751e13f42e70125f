"""How much of the robustness loss can calibration win back, and does knowing the input's condition help?
(issue 20)

The robustness sweep re-encodes every image the same way (JPEG q75, q50; resize 0.5x, 2x) and scores it
with detectors calibrated on clean images ("plain") or on clean images plus one perturbed copy of each
("augmented", :mod:`detectors.augment`, the product's ``--augment 1``). Two more detectors, on the same
images and folds, bound and probe what calibration could do:

- **oracle**: calibrated on images perturbed exactly as the test images are (cross-fitted on the
  perturbed features). No user has it (they do not know what happened to an image), but no calibration on
  these features can do much better, so it is the ceiling of "lose far less".
- **matched**: an image's size and whether its file is a JPEG are known before it is scored, so a
  detector could be chosen by them. Calibrated on one copy of every image made under the query's
  observable condition but never its exact setting (:data:`CONDITIONS`): resized into its size class
  (smaller than the model's input: factor log-uniform in [0.5, 0.9]; larger: [1.1, 2]; then JPEG with
  p 0.7 as the augmentation), or JPEG-compressed at a quality uniform in a range (any: 30-95; or a
  quality bin around the test's), blur p 0.3 throughout; the copies alone, not the originals.

- **routed**: the product's JPEG route (``--route-jpeg``, :mod:`detectors.routing`): the main (plain)
  detector, and for a perturbation that leaves a JPEG below quality 90 (a lossy WebP below 80) or an image
  larger than the 8 px digits a detector calibrated on the product's own route copies alone (one per image,
  blur p 0.3, then half JPEG at quality 30-95, half enlarged 1.1-2x). Before the enlarged copies the route's
  copies were JPEGs alone: the "any JPEG" matched detector is that recipe (another seed).

Every image is scored by a detector whose calibration never saw it or a copy of it (5 folds stratified by
source, the DDPM's siblings in one fold); AUROC over all 1,347 images of ``builtin:digits-mixed`` (297
held-out real digits against every generated one), the default scorer (K = 16 x 2, 32 evaluations).

Usage: python benchmarks/size_aware_probe.py [--cache DIR]   (about 8 minutes on 2 cores; the feature
passes are kept in DIR when given)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the matched copies' conditions: (resize factors, JPEG qualities), each observable in a file
CONDITIONS = {
    "smaller": ((0.5, 0.9), None), "larger": ((1.1, 2.0), None),  # any JPEG (p 0.7), as the augmentation
    "any JPEG": (None, (30, 95)), "JPEG q60-90": (None, (60, 90)), "JPEG q35-65": (None, (35, 65)),
}  # fmt: skip
MATCHED = {"jpeg q95": ["any JPEG"], "jpeg q75": ["any JPEG", "JPEG q60-90"], "jpeg q50": ["any JPEG", "JPEG q35-65"],
           "resize 0.5x": ["smaller"], "resize 2x": ["larger"], "webp q75": ["any JPEG"],
           "resize 1.25x": ["larger"], "resize 1.5x": ["larger"], "resize 4x": ["larger"],
           "resize 2x, JPEG q75": ["larger", "any JPEG"]}  # fmt: skip


def extra_perturbations() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Perturbations beside the product's sweep: smaller and larger enlargements than the copies' 1.1-2x, and an
    enlarged file saved as a JPEG (the route takes all four: larger than the 8 px calibration digits, or a JPEG
    below quality 90)."""
    from detectors.evaluation import jpeg, resize

    return {"resize 1.25x": resize(1.25), "resize 1.5x": resize(1.5), "resize 4x": resize(4.0),
            "resize 2x, JPEG q75": lambda image: jpeg(75)(resize(2.0)(image))}  # fmt: skip


def matched_copy(
    image: np.ndarray, rng: np.random.Generator, factors: tuple[float, float] | None = None,
    qualities: tuple[int, int] | None = None,
) -> np.ndarray:  # fmt: skip
    """One copy of ``image`` through the augmentation's chain (blur p 0.3; a resize; JPEG), its resize always
    taken by a factor log-uniform in ``factors`` when given (else none), its JPEG always taken at a quality
    uniform in ``qualities`` when given (else p 0.7 at q 30-95 with a resize, none without)."""
    from PIL import Image, ImageFilter

    from detectors import augment
    from detectors.evaluation import jpeg, resize

    out = np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB"))
    if rng.random() < augment.BLUR_P:
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(float(rng.uniform(*augment.BLUR_SIGMA)))))
    if factors is not None:
        out = resize(float(np.exp(rng.uniform(*np.log(factors)))))(out)
    if qualities is not None:
        out = jpeg(int(rng.integers(qualities[0], qualities[1] + 1)))(out)
    elif factors is not None and rng.random() < augment.JPEG_P:
        out = jpeg(int(rng.integers(augment.JPEG_QUALITY[0], augment.JPEG_QUALITY[1] + 1)))(out)
    return out


def cached(cache: Path | None, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    if cache is not None and (cache / f"{name}.npy").is_file():
        return np.load(cache / f"{name}.npy")
    value = compute()
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(cache / f"{name}.npy", value)
    return value


def probe_setup(description: str) -> tuple[argparse.Namespace, Any, Any, Any]:
    """The probes' common start: ``--cache`` parsed, all of ``builtin:digits-mixed`` (150 samples a schedule),
    the embedded model and the default scorer (K = 16 x 2)."""
    from detectors.builtin import digits_mixed
    from detectors.job import build_scorer
    from detectors.noise_model import load_noise_model

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cache", type=Path, help="a folder to keep the feature passes in")
    args = parser.parse_args()
    model = load_noise_model("embedded:digits-ddpm")
    return args, digits_mixed(150), model, build_scorer({"name": "diffusion-loss", "k": 16, "noise_sets": 2}, model)


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from detectors.augment import AugmentedImages
    from detectors.evaluation import PERTURBATIONS, perturbed
    from detectors.job import (
        Copies,
        copy_features,
        cross_fit,
        features,
        flag_shares,
        routed_perturbation,
    )

    args, data, model, scorer = probe_setup(__doc__.splitlines()[0])
    y = np.asarray(data.y)

    def scored(images: Sequence[np.ndarray]) -> np.ndarray:
        return features(model, scorer, list(images))[0]

    clean = cached(args.cache, "clean", lambda: scored(list(data.images)))
    augmented_copies = cached(args.cache, "augmented", lambda: scored(AugmentedImages(data.images, 1)[:]))
    sized = {
        name: cached(args.cache, f"matched_{name.replace(' ', '_')}", lambda c=condition, s=seed: scored(
            [matched_copy(im, np.random.default_rng([s, i]), *c) for i, im in enumerate(data.images)]))
        for seed, (name, condition) in enumerate(CONDITIONS.items(), start=101)
    }  # fmt: skip

    def crossed(feats: np.ndarray, copies: Copies | None = None):
        return cross_fit(scorer, feats, y, target_fpr=0.05, strata=data.source, siblings=data.siblings, copies=copies)

    every = np.arange(len(y))
    plain = crossed(clean)
    augmented = crossed(clean, Copies(augmented_copies, every))
    # the size-matched detector: calibrated on the sized copies alone, each in its original's fold
    matched = {name: crossed(feats) for name, feats in sized.items()}
    route = crossed(cached(args.cache, "route_copies", lambda: copy_features(model, scorer, list(data.images))))
    print(f"{len(y)} images ({int((y == 0).sum())} real); AUROC, every image scored out of fold")
    print(f"{'perturbation':14s} {'plain':>7s} {'augmented':>10s} {'oracle':>7s} {'routed':>7s}  matched copies")
    clean_feats, clean = clean, roc_auc_score(y, plain.decisions)
    print(f"{'none':14s} {clean:7.3f} {roc_auc_score(y, augmented.decisions):10.3f} {'':7s} {clean:7.3f}")
    swept = {"none": clean_feats}
    extra = extra_perturbations()
    for name in [*PERTURBATIONS, *extra]:
        make = (lambda n=name: scored(perturbed(list(data.images), n))) if name in PERTURBATIONS else (
            lambda f=extra[name]: scored([f(np.asarray(im)) for im in data.images]))  # fmt: skip
        feats = cached(args.cache, name.replace(" ", "_").replace(",", ""), make)
        swept[name] = feats
        row = [roc_auc_score(y, plain.score(feats, every)), roc_auc_score(y, augmented.score(feats, every)),
               roc_auc_score(y, crossed(feats).decisions)]  # fmt: skip
        takes = name in extra or routed_perturbation(name)
        routed = roc_auc_score(y, route.score(feats, every)) if takes else row[0]
        cells = [f"{c} {roc_auc_score(y, matched[c].score(feats, every)):.3f}" for c in MATCHED[name]]
        print(f"{name:14s} {row[0]:7.3f} {row[1]:10.3f} {row[2]:7.3f} {routed:7.3f}  {'; '.join(cells)}", flush=True)
    for name, fitted in matched.items():
        print(f"matched copies alone ({name}), cross-fitted on themselves: {roc_auc_score(y, fitted.decisions):.3f}")
    print("flagged at each fold detector's own threshold (5% target FPR on clean real images), real / generated:")
    for name, feats in swept.items():
        fits = (plain, augmented, route, matched["any JPEG"])
        cells = [flag_shares(y, fitted.decide(feats, every)[1]) for fitted in fits]
        text = "   ".join(f"{label} {100 * c['flagged_real']:5.1f}% / {100 * c['flagged_generated']:5.1f}%"
                          for label, c in zip(("plain", "augmented", "route", "JPEG-only copies"), cells,
                                              strict=True))  # fmt: skip
        print(f"{name:14s} {text}")


if __name__ == "__main__":
    main()
