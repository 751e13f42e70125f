"""``genaudit``: the command line.

Only argparse and the standard library are imported at start-up; each subcommand imports what it
needs when it runs, so ``genaudit --help`` never imports torch. Errors print one line and exit
non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit import __version__
from audit.errors import InputError

log = logging.getLogger("genaudit")

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1
EXIT_INTERRUPTED = 130


def _cmd_demo(args: argparse.Namespace) -> int:
    from audit.demo import run_demo

    index = run_demo(Path(args.out))
    log.info("published %s", index)
    sys.stdout.write(f"{index}\n")
    return 0


def _bench_config(args: argparse.Namespace) -> Any:
    from audit.bench import BenchConfig, parse_schedule

    defaults = BenchConfig()
    prompts = None
    if args.prompts:
        path = Path(args.prompts)
        if not path.is_file():
            raise InputError(f"prompts file not found: {path}")
        prompts = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        if not prompts:
            raise InputError(f"prompts file {path} has no prompts (one per line)")
    options = {k: v for k, v in (("device", args.device), ("dtype", args.dtype), ("batch_size", args.batch_size)) if v}
    return BenchConfig(
        generator=args.generator,
        schedules=tuple(parse_schedule(s) for s in args.schedules) if args.schedules else defaults.schedules,
        scales=tuple(args.scales) if args.scales else defaults.scales,
        n=args.n,
        steps=args.steps,
        seed=args.seed,
        reference=args.reference,
        extractor=args.extractor,
        labels=None if prompts else tuple(args.labels) if args.labels else defaults.labels,
        prompts=prompts,
        negative_prompt=args.negative_prompt,
        bootstrap=args.bootstrap,
        baseline=not args.no_baseline,
        options=options,
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    from audit.bench import run_bench
    from reports.render import render_file

    results = run_bench(_bench_config(args), Path(args.out), resume=args.resume, progress=not args.quiet)
    card = render_file(results)
    log.info("results %s", results)
    sys.stdout.write(f"{card}\n")
    return 0


def _scorer_config(args: argparse.Namespace) -> dict[str, object]:
    if args.scorer == "diffusion-loss":
        classes = {"on": True, "off": False}.get(args.classes, "auto")
        return {"name": "diffusion-loss", "k": args.k, "noise_sets": args.noise_sets, "classes": classes}
    if args.scorer == "inversion":
        return {"name": "inversion", "steps": args.steps}
    return {"name": args.scorer}


def _cmd_detect(args: argparse.Namespace) -> int:
    from detectors import job
    from reports.render import render_file

    inputs = list(args.inputs)
    action = inputs[0] if inputs and inputs[0] in ("calibrate", "evaluate") else None
    if action:
        inputs = inputs[1:]
        if inputs:
            raise InputError(f"detect {action} takes --real and --fake, not positional paths ({inputs[0]})")
        if not args.real or not args.fake:
            raise InputError(f"detect {action} needs --real DIR and --fake DIR")
    if args.training and action != "evaluate":
        raise InputError("--training belongs to 'detect evaluate'")
    if action == "calibrate":
        target = job.calibrate(
            args.real, args.fake, args.out or "detector.json", model_spec=args.model,
            scorer_config=_scorer_config(args), target_fpr=args.target_fpr, calibration=args.calibration,
        )  # fmt: skip
        log.info("detector saved: %s (+ %s)", target, Path(target).with_suffix(".safetensors").name)
        sys.stdout.write(f"{target}\n")
        return 0
    out = Path(args.out or "genaudit-detect")
    if action == "evaluate":
        results = job.evaluate(
            args.real, args.fake, out, detector_file=args.detector, model_spec=args.model,
            scorer_config=_scorer_config(args), target_fpr=args.target_fpr, face_records=args.face_records,
            face_backend=args.face_backend, draws=args.bootstrap, training=args.training,
        )  # fmt: skip
    elif not inputs:
        results = job.run_default(out, k=args.k, noise_sets=args.noise_sets, target_fpr=args.target_fpr,
                                  draws=args.bootstrap, progress=not args.quiet)  # fmt: skip
    else:
        if args.detector is None and args.model != job.DEFAULT_MODEL:
            raise InputError(f"{args.model} has no calibrated detector yet: run 'genaudit detect calibrate' first")
        results = job.detect(inputs, out, detector_file=args.detector)
    card = render_file(results)
    log.info("results %s", results)
    sys.stdout.write(f"{card}\n")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from audit.dataset.job import run_audit
    from reports.render import render_file

    if args.dataset == "init-datasheet":
        from audit.atomic import write_text_atomic
        from audit.dataset.datasheet import template_yaml

        target = Path(args.out if args.out != "genaudit-audit" else "datasheet-answers.yaml")
        if target.exists():
            raise InputError(f"{target} exists; not overwriting your answers")
        write_text_atomic(target, template_yaml())
        sys.stdout.write(f"{target}\n")
        return 0
    if args.dataset and args.face_records:
        raise InputError("give a dataset or --face-records, not both")
    results = run_audit(
        args.dataset,
        Path(args.out),
        face_records=args.face_records,
        backend=args.backend,
        workers=args.workers,
        resume=args.resume,
        abstain_below=args.abstain_below,
        datasheet_answers=args.datasheet_answers,
        compare=args.compare,
        show_faces=args.show_faces,
        nsfw=args.nsfw,
        records_format=args.records_format,
        progress=not args.quiet,
    )
    card = render_file(results)
    log.info("results %s", results)
    sys.stdout.write(f"{card}\n")
    return 0


def _headline_figure(kind: str, m: dict) -> str:
    if kind == "classifier":
        return f"held-out accuracy {100 * m['heldout_accuracy']:.1f}%"
    if kind == "clip":
        return f"zero-shot accuracy {100 * m['heldout_zero_shot_accuracy']:.1f}%"
    return f"class accuracy {100 * m['class_accuracy']:.1f}%, FID ratio {m['fid_ratio']:.2f}"


def _cmd_zoo_list(args: argparse.Namespace) -> int:
    from audit.zoo import registry

    rows = []
    for name, e in registry.ENTRIES.items():
        card = registry.read_card(name)
        figure = _headline_figure(e.kind, card["metrics"])
        rows.append(
            f"{name:<18} {e.kind:<10} {card['parameters']:>10,} params  {card['weights']['bytes'] / 1e6:5.2f} MB  "
            f"sha256 {card['weights']['sha256'][:12]}  {figure}\n    {e.summary}"
        )
    sys.stdout.write("\n".join(rows) + "\n")
    return 0


def _cmd_zoo_show(args: argparse.Namespace) -> int:
    import json

    from audit.zoo import registry

    sys.stdout.write(json.dumps(registry.read_card(args.name), indent=2) + "\n")
    return 0


def _cmd_zoo_train(args: argparse.Namespace) -> int:
    from audit.zoo import registry

    names = list(registry.ENTRIES) if args.name == "all" else [args.name]
    for name in names:
        registry.entry(name)
    for name in names:
        card = registry.train_and_save(name, Path(args.out))
        log.info(
            "%s trained in %.0f s -> %s (sha256 %s)",
            name,
            card["training"]["seconds"],
            args.out,
            card["weights"]["sha256"][:12],
        )
    return 0


def _cmd_zoo_export(args: argparse.Namespace) -> int:
    from audit.zoo.export import export_digits

    manifest = export_digits(Path(args.out), split=args.split)
    sys.stdout.write(f"{manifest}\n")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from reports.render import render_file

    out = render_file(args.results, args.out)
    sys.stdout.write(f"{out}\n")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from reports.publish import publish

    index = publish(args.dirs, args.out, title=args.title)
    sys.stdout.write(f"{index}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genaudit",
        description="Evaluate and audit image generators; publish self-contained HTML report cards.",
    )
    parser.add_argument("--version", action="version", version=f"genaudit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="run the embedded defaults (no download) and publish the report site",
        description="Run genaudit on its embedded models and publish a report site.",
    )
    demo.add_argument("--out", default="genaudit-site", help="site folder (default: ./genaudit-site)")
    demo.set_defaults(func=_cmd_demo)

    zoo = sub.add_parser(
        "zoo",
        help="the embedded model zoo: list, show, train, export",
        description="The embedded models this project trains on data that ships in packages.",
    )
    zoo_sub = zoo.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)
    z_list = zoo_sub.add_parser("list", help="list the models with their headline figures")
    z_list.set_defaults(func=_cmd_zoo_list)
    z_show = zoo_sub.add_parser("show", help="print a model's card (JSON)")
    z_show.add_argument("name")
    z_show.set_defaults(func=_cmd_zoo_show)
    z_train = zoo_sub.add_parser(
        "train",
        help="train a model from scratch on the CPU (reproduces the shipped weights)",
        description="Train NAME (or 'all', in dependency order) with its fixed recipe and seed; writes the "
        "safetensors weights and the model card to --out.",
    )
    z_train.add_argument("name", help="digits-classifier, digits-clip, digits-ddpm or all")
    z_train.add_argument("--out", default="zoo-weights", help="output folder (default: ./zoo-weights)")
    z_train.set_defaults(func=_cmd_zoo_train)
    z_export = zoo_sub.add_parser("export", help="write a dataset split as PNG files plus a manifest")
    z_export.add_argument("dataset", choices=["digits"])
    z_export.add_argument("--split", choices=["train", "heldout", "all"], default="heldout")
    z_export.add_argument("--out", required=True, help="output folder")
    z_export.set_defaults(func=_cmd_zoo_export)

    bench = sub.add_parser(
        "bench",
        help="benchmark guidance schedules: sample, score (FID, KID, IS, CLIP-score, diversity), card",
        description="Sample GENERATOR along every guidance schedule x scale with the same conditions and "
        "seeds, score every cell against the reference with one feature pass, and write the results JSON "
        "and card to --out. With no flags: the embedded digits DDPM, all heuristic schedules, scales "
        "0.5 1 2 4, 500 images per cell, held-out digits as reference (about 5 minutes on 2 CPU cores).",
    )
    bench.add_argument(
        "--generator",
        default="embedded:digits-ddpm",
        help="embedded:digits-ddpm, diffusers:PATH_OR_ID, folder:DIR, python:MODULE:FUNCTION",
    )
    bench.add_argument(
        "--schedules",
        nargs="+",
        metavar="S",
        help="schedule names, with parameters as name:key=value (clamp-linear:c=2); default: all heuristic shapes",
    )
    bench.add_argument(
        "--scales",
        nargs="+",
        type=float,
        metavar="W",
        help="mean guidance weights, paper convention (0 = no guidance; diffusers scale = 1 + W)",
    )
    bench.add_argument("--n", type=int, default=500, help="images per cell (default 500)")
    bench.add_argument("--steps", type=int, default=25, help="sampling steps (default 25)")
    bench.add_argument("--seed", type=int, default=0, help="image i uses seed SEED + i in every cell (default 0)")
    bench.add_argument(
        "--reference",
        default="embedded:digits-heldout",
        help="reference images: embedded:digits-heldout, a folder or a manifest",
    )
    bench.add_argument(
        "--extractor", default="embedded", help="embedded, inception[:PATH], clip:ARCH:PRETRAINED_OR_PATH"
    )
    bench.add_argument(
        "--labels",
        nargs="+",
        type=int,
        metavar="L",
        help="class labels to cycle through (class-conditional generators)",
    )
    bench.add_argument(
        "--prompts", metavar="FILE", help="text prompts, one per line, cycled (text-to-image generators)"
    )
    bench.add_argument("--negative-prompt", help="negative prompt for every image (text-to-image)")
    bench.add_argument("--bootstrap", type=int, default=100, help="resampling draws for the intervals (default 100)")
    bench.add_argument("--no-baseline", action="store_true", help="leave out the unguided cell (w = 0)")
    bench.add_argument("--device", help="torch device for diffusers generators (default: cuda if available)")
    bench.add_argument(
        "--dtype", choices=["float16", "bfloat16", "float32"], help="diffusers weights dtype (default: float16 on CUDA)"
    )
    bench.add_argument("--batch-size", type=int, help="images per forward pass")
    bench.add_argument(
        "--out", default="genaudit-bench", help="run folder: cells, cache, results, card (default ./genaudit-bench)"
    )
    bench.add_argument("--resume", action="store_true", help="continue the run in --out, recomputing nothing finished")
    bench.set_defaults(func=_cmd_bench)

    audit = sub.add_parser(
        "audit",
        help="audit a dataset: faces, perceived age and gender per class, with intervals",
        description="Detect faces in DATASET (a folder with class subfolders, a flat folder, a CSV/JSONL "
        "manifest, or builtin:faces-demo, the default) and estimate perceived age and gender; or aggregate "
        "precomputed --face-records. Writes records.jsonl or records.parquet (per image, as produced, "
        "resumable), audit.json, the results JSON and its card to --out. Perceived attributes are model "
        "outputs, not facts.",
    )
    audit.add_argument(
        "dataset",
        nargs="?",
        help="dataset folder, manifest, or builtin:faces-demo (default); 'init-datasheet' writes the datasheet "
        "answers template to --out (default ./datasheet-answers.yaml)",
    )
    audit.add_argument("--datasheet-answers", metavar="YAML", help="the dataset owner's datasheet answers")
    audit.add_argument(
        "--face-records",
        metavar="CSV",
        help="aggregate face records (image,class,age,gender[,det_score,gender_confidence])",
    )
    audit.add_argument(
        "--backend",
        default="dlib-agegender",
        help="face backend: dlib-agegender (default), opencv-haar, mtcnn[:DIR], insightface[:PACK_OR_DIR], "
        "or DETECTOR+ATTRIBUTES (detectors: dlib, opencv-haar, mtcnn, insightface; attributes: agegender, "
        "insightface), e.g. mtcnn+insightface:/models/buffalo_l",
    )
    audit.add_argument(
        "--compare",
        metavar="BACKEND",
        help="also run this backend and report both side by side with their disagreement",
    )
    audit.add_argument("--show-faces", action="store_true", help="do not blur faces in the card's sample thumbnails")
    audit.add_argument(
        "--nsfw",
        action="store_true",
        help="also check every image with NudeNet (extra nsfw, AGPL-3.0; off by default); flagged images are "
        "counted in the datasheet and never shown in the card",
    )
    audit.add_argument("--workers", type=int, help="worker processes (default: 2 or the CPU count if lower)")
    audit.add_argument(
        "--abstain-below",
        type=float,
        default=0.6,
        help="gender confidence below which a face gets no gender (default 0.6)",
    )
    audit.add_argument("--out", default="genaudit-audit", help="output folder (default ./genaudit-audit)")
    audit.add_argument("--resume", action="store_true", help="continue an interrupted audit in --out")
    audit.add_argument(
        "--records-format",
        choices=("jsonl", "parquet"),
        default="jsonl",
        help="per-image records as records.jsonl (default) or a records.parquet folder (extra parquet)",
    )
    audit.set_defaults(func=_cmd_audit)

    detect = sub.add_parser(
        "detect",
        help="check images for deepfakes with a diffusion-loss reconstruction detector",
        description="Score IMAGES_OR_DIRS with a calibrated detector (default: the embedded one, calibrated on "
        "builtin:digits-mixed) and write detections.csv and a card to --out. With no inputs, run the embedded "
        "default end to end. 'detect calibrate --real DIR --fake DIR --out FILE' fits and saves a detector; "
        "'detect evaluate --real DIR --fake DIR --out DIR' evaluates one (cross-fitted without --detector), "
        "with bootstrap intervals and a JPEG/resize robustness sweep.",
    )
    detect.add_argument("inputs", nargs="*", metavar="IMAGES_OR_DIRS", help="images, folders or manifests")
    detect.add_argument("--model", default="embedded:digits-ddpm", help="embedded:digits-ddpm or diffusers:PATH")
    detect.add_argument("--detector", metavar="FILE", help="a detector saved by 'detect calibrate'")
    detect.add_argument(
        "--scorer", choices=("diffusion-loss", "inversion", "autoencoder"), default="diffusion-loss",
        help="diffusion-loss (K timesteps, K network evaluations per image), inversion (DIRE-style, 2 x steps), "
        "autoencoder (AEROBLADE-style, latent models only)",
    )  # fmt: skip
    detect.add_argument("--k", type=int, default=16, help="timesteps of the diffusion-loss scorer (default 16)")
    detect.add_argument(
        "--noise-sets", type=int, default=4,
        help="diffusion-loss: independent sets of fixed noise, one detector block each, averaged (default 4; the "
        "cost grows with them)",
    )  # fmt: skip
    detect.add_argument(
        "--classes", choices=("auto", "on", "off"), default="auto",
        help="diffusion-loss: add the class evidence (errors under the best-fitting class); auto (default): when the "
        "model is conditioned on 2 to 32 classes",
    )  # fmt: skip
    detect.add_argument("--steps", type=int, default=20, help="DDIM steps each way of the inversion scorer")
    detect.add_argument("--real", nargs="+", metavar="DIR", help="real images (calibrate, evaluate)")
    detect.add_argument("--fake", nargs="+", metavar="DIR", help="generated images (calibrate, evaluate)")
    detect.add_argument(
        "--training", nargs="+", metavar="DIR",
        help="evaluate: real images the generator was trained on; reports how often the detector flags them "
        "(a model fits its training data unusually well)",
    )  # fmt: skip
    detect.add_argument("--target-fpr", type=float, default=0.05, help="false-positive rate the threshold keeps")
    detect.add_argument("--calibration", choices=("logistic", "isotonic"), default="logistic")
    detect.add_argument("--face-records", metavar="CSV", help="faces of the real images: FPR by perceived group")
    detect.add_argument(
        "--face-backend", metavar="BACKEND",
        help="find the real images' faces with this audit backend (e.g. dlib-agegender): FPR by perceived group",
    )  # fmt: skip
    detect.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws for the intervals")
    detect.add_argument("--out", help="output folder (calibrate: the detector file)")
    detect.set_defaults(func=_cmd_detect)

    report = sub.add_parser(
        "report",
        help="re-render a card from its results JSON (no recomputation)",
        description="Render RESULTS.json to a self-contained HTML card.",
    )
    report.add_argument("results", help="a genaudit results JSON file")
    report.add_argument("--out", help="HTML path (default: beside the JSON, .html)")
    report.set_defaults(func=_cmd_report)

    publish = sub.add_parser(
        "publish",
        help="build a static site from results JSON files",
        description="Find genaudit results JSON under DIR... and build an index plus one card each.",
    )
    publish.add_argument("dirs", nargs="+", metavar="DIR", help="folders (searched recursively) or results files")
    publish.add_argument("--out", default="genaudit-site", help="site folder (default: ./genaudit-site)")
    publish.add_argument("--title", default="genaudit report cards")
    publish.set_defaults(func=_cmd_publish)
    return parser


def _configure_logging(debug: bool, quiet: bool) -> None:
    """Our loggers at INFO (WARNING with --quiet, DEBUG with --debug); third-party ones at WARNING."""
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    fmt = "%(levelname)s %(name)s: %(message)s" if debug else "genaudit: %(message)s"
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format=fmt)
    for ours in ("genaudit", "audit", "reports", "detectors"):
        logging.getLogger(ours).setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.debug, args.quiet)
    from audit.errors import GenauditError

    try:
        return int(args.func(args) or 0)
    except GenauditError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"genaudit: error: {exc}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("genaudit: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        sys.stderr.write(
            f"genaudit: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)\n"
        )
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
