"""``genaudit bench``: its parser and command (the card is rendered by :mod:`audit.cli`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from audit.cli_args import add_scale_options, executor_options, finite, non_negative_int, positive_int
from audit.errors import InputError

log = logging.getLogger("genaudit")


def _bench_config(args: argparse.Namespace) -> Any:
    from audit.bench import BenchConfig
    from audit.bench.config import parse_schedules

    defaults = BenchConfig()
    prompts = None
    if args.prompts:
        from audit.io.images import require_file

        path = Path(args.prompts)
        require_file(path, "prompts file")
        prompts = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        if not prompts:
            raise InputError(f"prompts file {path} has no prompts (one per line)")
    options = {k: v for k, v in (("device", args.device), ("dtype", args.dtype), ("batch_size", args.batch_size)) if v}
    return BenchConfig(
        generator=args.generator,
        schedules=tuple(s for text in args.schedules for s in parse_schedules(text))
        if args.schedules
        else defaults.schedules,
        scales=tuple(args.scales) if args.scales else defaults.scales,
        n=args.n,
        steps=args.steps,
        seed=args.seed,
        reference=args.reference,
        extractor=args.extractor,
        labels=None if prompts else tuple(args.labels) if args.labels else defaults.labels,
        prompts=prompts,
        negative_prompt=args.negative_prompt,
        negative_weight=args.negative_weight,
        pair_negative=args.pair_negative,
        bootstrap=args.bootstrap,
        baseline=not args.no_baseline,
        options=options,
        training=_training(args),
        attributes=args.attributes,
        tune=args.tune,
        memorization={
            k: v
            for k, v in (
                ("criterion", args.copy_criterion),
                ("ratio", args.copy_ratio),
                ("similarity", args.copy_similarity),
            )
            if v is not None
        },
    )


def _training(args: argparse.Namespace) -> str | None:
    """``--training``; by default the embedded DDPM is checked against its own 1,500 training digits, and
    ``--training none`` turns the check off."""
    if args.training is None:
        return "builtin:digits-train" if args.generator == "embedded:digits-ddpm" else None
    return None if args.training == "none" else args.training


def _cmd_bench(args: argparse.Namespace) -> int | Path:
    from audit.bench import run_bench

    results = run_bench(
        _bench_config(args), Path(args.out), resume=args.resume, progress=not args.quiet, shard=args.shard,
        executor=executor_options(args),
    )  # fmt: skip
    return 0 if results is None else results


def add_parser(sub: Any) -> None:
    """Add ``bench`` to the CLI's subcommands."""
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
        help="schedule names, with parameters as name:key=value (clamp-linear:c=2) and grids as key=a|b|c "
        "(clamp-linear:c=0.5|1|2); default: all heuristic shapes",
    )
    bench.add_argument(
        "--scales",
        nargs="+",
        type=finite,
        metavar="W",
        help="mean guidance weights, paper convention (0 = no guidance; diffusers scale = 1 + W)",
    )
    bench.add_argument("--n", type=positive_int, default=500, help="images per cell (default 500)")
    bench.add_argument("--steps", type=positive_int, default=25, help="sampling steps (default 25)")
    bench.add_argument(
        "--seed", type=non_negative_int, default=0, help="image i uses seed SEED + i in every cell (default 0)"
    )
    bench.add_argument(
        "--reference",
        default="embedded:digits-heldout",
        help="reference images: embedded:digits-heldout, a folder, a manifest, webdataset .tar shards or Parquet "
        "(any sizes). Its features are kept for the next run in $GENAUDIT_CACHE_DIR (default ~/.cache/genaudit; "
        "off keeps nothing), keyed by its files' names, sizes and times and the extractor",
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
    bench.add_argument(
        "--negative-prompt",
        help="negative prompt for every image (text-to-image); by default it replaces the unconditional branch",
    )
    bench.add_argument(
        "--negative-weight", type=finite, metavar="W_NEG",
        help="use the three-branch form eps_c + w (eps_c - eps_u) - W_NEG (eps_neg - eps_u) instead",
    )  # fmt: skip
    bench.add_argument(
        "--pair-negative", action="store_true",
        help="also run every cell without the negative prompt (same seeds, in OUT/without-negative) and report "
        "the paired differences",
    )  # fmt: skip
    bench.add_argument(
        "--bootstrap", type=non_negative_int, default=100, help="resampling draws for the intervals (default 100)"
    )
    bench.add_argument("--no-baseline", action="store_true", help="leave out the unguided cell (w = 0)")
    bench.add_argument("--device", help="torch device for diffusers generators (default: cuda if available)")
    bench.add_argument(
        "--dtype", choices=["float16", "bfloat16", "float32"], help="diffusers weights dtype (default: float16 on CUDA)"
    )
    bench.add_argument("--batch-size", type=positive_int, help="images per forward pass")
    bench.add_argument(
        "--out", default="genaudit-bench", help="run folder: cells, cache, results, card (default ./genaudit-bench)"
    )
    bench.add_argument("--resume", action="store_true", help="continue the run in --out, recomputing nothing finished")
    bench.add_argument(
        "--tune", action="store_true",
        help="choose each parametrized schedule's parameter from its grid on other seeds (and the other half of "
        "the prompts) in OUT/tune, and report every candidate here on the held-out ones (docs/tuning.md)",
    )  # fmt: skip
    bench.add_argument(
        "--attributes", metavar="faces[:BACKEND]",
        help="perceived gender and age of every generated image through the audit's face pipeline (BACKEND as "
        "genaudit audit --backend; default dlib-agegender); per cell and prompt, against guidance (docs/attributes.md)",
    )  # fmt: skip
    copies = bench.add_argument_group("memorization (near-copies of training images; docs/memorization.md)")
    copies.add_argument(
        "--training", metavar="SOURCE",
        help="training images to look for near-copies of: builtin:digits-train (the embedded DDPM's), a folder, "
        "a manifest, webdataset .tar shards or Parquet, or none; default for the embedded DDPM: builtin:digits-train; "
        "a finished run gains it with --resume",
    )  # fmt: skip
    copies.add_argument(
        "--copy-criterion", choices=["ratio", "similarity"],
        help="which criterion decides a cell's share: ratio (Carlini et al. 2023, pixels; default) or similarity "
        "(after Somepalli et al. 2023, the extractor's features)",
    )  # fmt: skip
    copies.add_argument(
        "--copy-ratio", type=finite, metavar="R", help="near-copy below this distance ratio (default 0.25)"
    )
    copies.add_argument(
        "--copy-similarity",
        type=finite,
        metavar="S",
        help="near-copy at or above this cosine similarity (default 0.999)",
    )
    add_scale_options(bench)
    bench.set_defaults(func=_cmd_bench)
