"""``genaudit audit``: its parser and command (the card is rendered by :mod:`audit.cli`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from audit.cli_args import (
    add_column_options,
    add_scale_options,
    columns_of,
    executor_options,
    positive_int,
    probability,
)
from audit.errors import InputError

log = logging.getLogger("genaudit")


def _cmd_audit(args: argparse.Namespace) -> int | Path:
    """0 after ``init-datasheet``, else the results JSON for the CLI to render."""
    from audit.dataset.job import run_audit

    if args.dataset == "init-datasheet":
        from audit.atomic import write_text_atomic
        from audit.dataset.datasheet import template_yaml

        target = Path(args.out if args.out != "genaudit-audit" else "datasheet-answers.yaml")
        if target.exists():
            raise InputError(f"{target} exists; not overwriting your answers")
        write_text_atomic(target, template_yaml())
        sys.stdout.write(f"{target}\n")
        return 0
    if args.dataset in ("review", "export-blurred"):
        return _cmd_review_or_export(args)
    if args.target:
        raise InputError(f"unexpected argument {args.target!r} (only review and export-blurred take an audit folder)")
    for flag, given in (("--dest", args.dest), ("--leave-out", args.leave_out)):
        if given:
            raise InputError(f"{flag} belongs to genaudit audit export-blurred OUT")
    if args.dataset and args.face_records:
        raise InputError("give a dataset or --face-records, not both")
    if args.face_records and (args.shard is not None or args.executor != "local"):
        raise InputError("--shard and --executor split a dataset's images: they do not apply to --face-records")
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
        shard=args.shard,
        columns=columns_of(args),
        executor=executor_options(args),
        caption_model=args.caption_model,
        caption_threshold=args.caption_threshold,
        offensive_terms=args.offensive_terms or (),
        reviewed=args.reviewed,
    )
    return 0 if results is None else results


def _cmd_review_or_export(args: argparse.Namespace) -> int | Path:
    """``audit review OUT`` (the review sheet; its page is rendered by the CLI) and ``audit export-blurred
    OUT --dest DIR``."""
    given_out = args.out if args.out != "genaudit-audit" else None  # --out names the audit folder too
    if args.target and given_out and Path(args.target) != Path(given_out):
        raise InputError(f"two audit folders given ({args.target} and --out {given_out}): give one")
    if not (args.target or given_out):
        raise InputError(f"genaudit audit {args.dataset} needs the audit's folder: genaudit audit {args.dataset} OUT")
    out = Path(args.target or given_out)
    if args.dataset == "review":
        from audit.dataset.review import write_review

        if args.dest or args.leave_out or args.reviewed:
            raise InputError("--dest, --leave-out and --reviewed belong to export-blurred (or to the audit itself)")
        if args.shard is not None or args.executor != "local":
            raise InputError("audit review reads the records once: it takes no --shard or --executor")
        return write_review(out)
    from audit.dataset.export import export_blurred

    if not args.dest:
        raise InputError("genaudit audit export-blurred OUT needs --dest DIR, the folder for the release")
    if args.executor != "local":
        raise InputError("export-blurred reads and writes files: split it with --shard K/N, not --executor")
    summary = export_blurred(
        out,
        args.dest,
        leave_out=(args.leave_out or "").split(",") if args.leave_out else (),
        reviewed=args.reviewed,
        progress=not args.quiet,
        shard=args.shard,
    )
    if args.shard is not None:
        log.info("export shard %s done (%s); run it without --shard to merge every shard", args.shard, summary)
    sys.stdout.write(f"{summary}\n")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``audit`` to the CLI's subcommands."""
    audit = sub.add_parser(
        "audit",
        help="audit a dataset: faces, perceived age and gender per class, with intervals",
        description="Detect faces in DATASET (a folder with class subfolders, a flat folder, a CSV/JSONL "
        "manifest, webdataset tar shards (a path or a brace pattern: 'data/shard-{0000..0099}.tar'), Parquet files "
        "of image bytes, or builtin:faces-demo, the default) and estimate perceived age and gender; or aggregate "
        "precomputed --face-records. Writes records.jsonl or records.parquet (per image, as produced, "
        "resumable), audit.json, the results JSON and its card to --out. Perceived attributes are model "
        "outputs, not facts.",
    )
    audit.add_argument(
        "dataset",
        nargs="?",
        help="dataset folder, manifest, webdataset .tar shards, Parquet, or builtin:faces-demo (default); "
        "'init-datasheet' writes the datasheet answers template to --out (default ./datasheet-answers.yaml); "
        "'review OUT' writes the review sheet of the audit in OUT; 'export-blurred OUT --dest DIR' writes its "
        "dataset with every detected face blurred",
    )
    audit.add_argument("target", nargs="?", metavar="OUT", help="the audit folder, for review and export-blurred")
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
    audit.add_argument("--workers", type=positive_int, help="worker processes (default: 2 or the CPU count if lower)")
    audit.add_argument(
        "--abstain-below",
        type=probability,
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
    audit.add_argument(
        "--caption-model",
        default="embedded",
        help="model of the image-caption CLIP-score for captioned datasets: embedded (the digits CLIP, default) "
        "or clip:ARCH:PRETRAINED_OR_PATH (docs/captions.md)",
    )
    audit.add_argument(
        "--caption-threshold",
        type=float,
        metavar="SCORE",
        help="caption CLIP-score below which a caption counts as incoherent (default: 25 for embedded, 28 for clip)",
    )
    audit.add_argument(
        "--offensive-terms",
        action="append",
        metavar="FILE",
        help="more terms for the offensive-term check of class names and captions, one per line (repeatable); "
        "the default list is better-profanity's (MIT)",
    )
    audit.add_argument(
        "--reviewed",
        metavar="CSV",
        help="the review sheet with your decisions (genaudit audit review OUT): folded into the card and datasheet "
        "as confirmed counts; with export-blurred, only confirmed items are left out",
    )
    audit.add_argument("--dest", metavar="DIR", help="export-blurred: the folder for the release")
    audit.add_argument(
        "--leave-out",
        metavar="KINDS",
        help="export-blurred: leave out images the review flags under these kinds, comma-separated (nsfw, minor, "
        "skew, caption, term, class-term, gps, near-duplicate)",
    )
    add_scale_options(audit)
    add_column_options(audit)
    audit.set_defaults(func=_cmd_audit)
