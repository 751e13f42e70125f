"""What every subcommand's parser shares: one-line usage errors and numbers checked as they are parsed.

A bad number (NaN, inf, out of range) is refused by argparse before any work starts, so it can never
fail at the final JSON write, nor again on every ``--resume``.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (no usage dump), naming what to run
    for help. Subparsers made from it are of the same class."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"genaudit: error: {self.prog}: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def probability(text: str) -> float:
    """A number in [0, 1]."""
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def open_probability(text: str) -> float:
    """A number strictly between 0 and 1 (a rate a threshold can keep)."""
    value = _number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text!r}")
    return value


def finite(text: str) -> float:
    """Any finite number."""
    return _number(text)


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def shard_spec(text: str) -> object:
    """``K/N`` -> :class:`audit.scale.shards.Shard` (K counted from 0)."""
    from audit.errors import InputError
    from audit.scale.shards import Shard

    try:
        return Shard.parse(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def executor_spec(text: str) -> str:
    """``local``, ``ray`` (a local Ray on this machine) or ``ray:ADDRESS`` (``auto``, ``ray://host:10001``)."""
    if text == "local" or text == "ray" or (text.startswith("ray:") and len(text) > 4):
        return text
    raise argparse.ArgumentTypeError(f"must be local, ray or ray:ADDRESS (e.g. ray:auto), got {text!r}")


def add_scale_options(parser: argparse.ArgumentParser) -> None:
    """``--shard``, ``--executor`` and the Ray executor's settings (docs/scale-out.md)."""
    group = parser.add_argument_group("scale-out (docs/scale-out.md)")
    group.add_argument(
        "--shard", type=shard_spec, metavar="K/N",
        help="do only shard K of N (K from 0, e.g. $SLURM_ARRAY_TASK_ID/4) into the shared --out; the same "
        "command without --shard then does what is missing and merges",
    )  # fmt: skip
    group.add_argument(
        "--executor", type=executor_spec, default="local",
        help="local (default), ray (start Ray on this machine) or ray:ADDRESS (join a cluster: auto, "
        "ray://host:10001); needs the extra ray",
    )  # fmt: skip
    group.add_argument(
        "--ray-workers", type=positive_int, metavar="N",
        help="Ray workers (default: the cluster's GPUs / --ray-gpus, or one per CPU for CPU workers)",
    )  # fmt: skip
    group.add_argument(
        "--ray-gpus", type=non_negative_float, default=0.0, metavar="G",
        help="GPUs per Ray worker, fractional allowed (default 0: CPU workers)",
    )  # fmt: skip
    group.add_argument(
        "--ray-shards", type=positive_int, metavar="N",
        help="shards the Ray run is cut into (default: 4 per worker; more shards, finer resume)",
    )  # fmt: skip
    group.add_argument(
        "--ray-batch-size", type=positive_int, metavar="N",
        help="records an audit actor yields at a time (audit; default 8)",
    )  # fmt: skip


def add_column_options(parser: argparse.ArgumentParser) -> None:
    """The Parquet columns an input's image, label and caption are read from."""
    group = parser.add_argument_group("Parquet inputs")
    group.add_argument(
        "--image-column", default="image", metavar="NAME", help="image bytes or {bytes, path} (default image)"
    )
    group.add_argument("--label-column", metavar="NAME", help="label column (default: label, when present)")
    group.add_argument("--caption-column", metavar="NAME", help="caption column (default: caption, when present)")


def columns_of(args: argparse.Namespace) -> object:
    """The :class:`audit.io.archives.Columns` the parsed options name."""
    from audit.io.archives import Columns

    return Columns(image=args.image_column, label=args.label_column, caption=args.caption_column)


def executor_options(args: argparse.Namespace) -> object:
    """None for the local executor, else the Ray executor's :class:`audit.scale.ray_executor.RayOptions`."""
    if args.executor == "local":
        return None
    if args.shard is not None:
        from audit.errors import InputError

        raise InputError("--shard and --executor ray both split the work: give one of them")
    from audit.scale.ray_executor import RayOptions

    return RayOptions.from_spec(
        args.executor, workers=args.ray_workers, gpus=args.ray_gpus, shards=args.ray_shards,
        batch_size=args.ray_batch_size,
    )  # fmt: skip
