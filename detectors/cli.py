"""``genaudit detect``: its parser and command (the card is rendered by :mod:`audit.cli`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from audit.cli_args import add_scale_options, executor_options, non_negative_int, open_probability, positive_int
from audit.errors import InputError

log = logging.getLogger("genaudit")


def _scorer_config(args: argparse.Namespace) -> dict[str, object]:
    if args.scorer == "diffusion-loss":
        classes = {"on": True, "off": False}.get(args.classes, "auto")
        return {"name": "diffusion-loss", "k": args.k, "noise_sets": args.noise_sets, "classes": classes}
    if args.scorer == "inversion":
        return {"name": "inversion", "steps": args.steps}
    return {"name": args.scorer}


def _cmd_detect(args: argparse.Namespace) -> int | Path:
    """0 after ``calibrate`` (the detector path is printed), else the results JSON for the CLI to render."""
    from detectors import job

    inputs = list(args.inputs)
    action = inputs[0] if inputs and inputs[0] in ("calibrate", "evaluate") else None
    if action:
        inputs = inputs[1:]
        if inputs:
            raise InputError(f"detect {action} takes --real and --fake, not positional paths ({inputs[0]})")
        if action == "calibrate" and not args.real:
            raise InputError("detect calibrate needs --real DIR (and --fake DIR for the two-class detector)")
        if action == "evaluate" and (not args.real or not args.fake):
            raise InputError("detect evaluate needs --real DIR and --fake DIR")
    if args.augment and (action is None or args.detector):
        raise InputError(
            "--augment calibrates: it belongs to 'detect calibrate' and 'detect evaluate' without --detector"
        )
    if args.route_jpeg and (action is None or args.detector):
        raise InputError(
            "--route-jpeg calibrates: it belongs to 'detect calibrate' and 'detect evaluate' without --detector (a "
            "saved detector brings its own route)"
        )
    if args.training and action != "evaluate":
        raise InputError("--training belongs to 'detect evaluate'")
    executor = executor_options(args)
    if action == "calibrate" and (args.shard is not None or executor is not None):
        raise InputError("detect calibrate runs in one process; shard the feature pass with 'detect evaluate --shard'")
    if not action and not inputs and (args.shard is not None or executor is not None):
        raise InputError("--shard and --executor split the images given: the embedded default run takes none")
    if action == "calibrate":
        target = job.calibrate(
            args.real, args.fake or [], args.out or "detector.json", model_spec=args.model,
            scorer_config=_scorer_config(args), target_fpr=args.target_fpr, calibration=args.calibration,
            image_column=args.image_column, augment=args.augment, route_jpeg=args.route_jpeg,
        )  # fmt: skip
        log.info("detector saved: %s (+ %s)", target, Path(target).with_suffix(".safetensors").name)
        sys.stdout.write(f"{target}\n")
        return 0
    out = Path(args.out or "genaudit-detect")
    if action == "evaluate":
        results = job.evaluate(
            args.real, args.fake, out, detector_file=args.detector, model_spec=args.model,
            scorer_config=_scorer_config(args), target_fpr=args.target_fpr, face_records=args.face_records,
            face_backend=args.face_backend, draws=args.bootstrap, training=args.training, shard=args.shard,
            executor=executor, progress=not args.quiet, image_column=args.image_column, augment=args.augment,
            route_jpeg=args.route_jpeg,
        )  # fmt: skip
    elif not inputs:
        results = job.run_default(out, k=args.k, noise_sets=args.noise_sets, target_fpr=args.target_fpr,
                                  draws=args.bootstrap, progress=not args.quiet)  # fmt: skip
    else:
        if args.detector is None and args.model != job.DEFAULT_MODEL:
            raise InputError(f"{args.model} has no calibrated detector yet: run 'genaudit detect calibrate' first")
        results = job.detect(inputs, out, detector_file=args.detector, shard=args.shard, executor=executor,
                             progress=not args.quiet, image_column=args.image_column)  # fmt: skip
    return 0 if results is None else results


def add_parser(sub: Any) -> None:
    """Add ``detect`` to the CLI's subcommands."""
    detect = sub.add_parser(
        "detect",
        help="check images for deepfakes with a diffusion-loss reconstruction detector",
        description="Score IMAGES_OR_DIRS with a calibrated detector (default: the embedded one, calibrated on "
        "builtin:digits-mixed) and write detections.csv and a card to --out. With no inputs, run the embedded "
        "default end to end. 'detect calibrate --real DIR --fake DIR --out FILE' fits and saves a detector (with "
        "--real alone: the real-reference detector, which needs no generated image); "
        "'detect evaluate --real DIR --fake DIR --out DIR' evaluates one (cross-fitted without --detector), "
        "with bootstrap intervals and a JPEG/WebP/resize robustness sweep.",
    )
    detect.add_argument(
        "inputs", nargs="*", metavar="IMAGES_OR_DIRS",
        help="images, folders, manifests, webdataset .tar shards or Parquet tables",
    )  # fmt: skip
    detect.add_argument(
        "--image-column", default="image", metavar="NAME",
        help="Parquet inputs: the column of image bytes or {bytes, path} structs (default image)",
    )  # fmt: skip
    detect.add_argument("--model", default="embedded:digits-ddpm", help="embedded:digits-ddpm or diffusers:PATH")
    detect.add_argument(
        "--detector",
        metavar="PATH",
        help="a detector saved by 'detect calibrate': its .json file or the folder it was saved in",
    )
    detect.add_argument(
        "--scorer", choices=("diffusion-loss", "inversion", "autoencoder"), default="diffusion-loss",
        help="diffusion-loss (K timesteps, K network evaluations per image), inversion (DIRE-style, 2 x steps), "
        "autoencoder (AEROBLADE-style, latent models only)",
    )  # fmt: skip
    detect.add_argument(
        "--k", type=positive_int, default=16, help="timesteps of the diffusion-loss scorer (default 16)"
    )
    detect.add_argument(
        "--noise-sets", type=positive_int, default=2,
        help="diffusion-loss: independent sets of fixed noise, one detector block each, averaged (default 2; the "
        "cost grows with them)",
    )  # fmt: skip
    detect.add_argument(
        "--classes", choices=("auto", "on", "off"), default="off",
        help="diffusion-loss: add the class evidence (errors under the best-fitting class; on the embedded model "
        "10 x K/4 + K more evaluations per noise set); auto: when the model is conditioned on 2 to 32 classes; "
        "default off",
    )  # fmt: skip
    detect.add_argument("--steps", type=positive_int, default=20, help="DDIM steps each way of the inversion scorer")
    detect.add_argument(
        "--real", nargs="+", action="extend", metavar="DIR", help="real images (calibrate, evaluate; may repeat)"
    )
    detect.add_argument(
        "--fake", nargs="+", action="extend", metavar="[NAME=]DIR",
        help="generated images (calibrate, evaluate; may repeat), NAME=DIR naming the generator that made them "
        "(--fake gan=DIR --fake sd=DIR; one NAME given twice pools both folders as one generator): evaluate then "
        "reports each generator, and each left out of calibration",
    )  # fmt: skip
    detect.add_argument(
        "--training", nargs="+", action="extend", metavar="DIR",
        help="evaluate: real images the generator was trained on; reports how often the detector flags them "
        "(a model fits its training data unusually well)",
    )  # fmt: skip
    detect.add_argument(
        "--target-fpr", type=open_probability, default=0.05, help="false-positive rate the threshold keeps"
    )
    detect.add_argument("--calibration", choices=("logistic", "isotonic"), default="logistic")
    detect.add_argument(
        "--augment", type=non_negative_int, default=0, metavar="N",
        help="calibrate, evaluate: add N perturbed copies of every image (random JPEG q30-95, resize 0.5-2x, mild "
        "blur) to calibration, for robustness to re-encoding; evaluate then also reports the detector without "
        "them (default 0)",
    )  # fmt: skip
    detect.add_argument(
        "--route-jpeg", action="store_true",
        help="calibrate, evaluate: also calibrate a second detector on one copy of every image (half JPEG q30-95, "
        "half enlarged 1.1-2x; mild blur) and score with it every input that is a JPEG below quality 90, a lossy "
        "WebP below 80 or larger than the calibration images (the embedded default has one)",
    )  # fmt: skip
    detect.add_argument("--face-records", metavar="CSV", help="faces of the real images: FPR by perceived group")
    detect.add_argument(
        "--face-backend", metavar="BACKEND",
        help="find the real images' faces with this audit backend (e.g. dlib-agegender): FPR by perceived group",
    )  # fmt: skip
    detect.add_argument("--bootstrap", type=non_negative_int, default=1000, help="bootstrap draws for the intervals")
    detect.add_argument("--out", help="output folder (calibrate: the detector file)")
    add_scale_options(detect)
    detect.set_defaults(func=_cmd_detect)
