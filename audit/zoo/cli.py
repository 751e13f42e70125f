"""``genaudit zoo``: list, show, train and export the embedded models."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("genaudit")


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


def add_parser(sub: Any) -> None:
    """Add ``zoo`` and its actions to the CLI's subcommands."""
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
    z_train.add_argument("name", help="digits-classifier, digits-clip, digits-ddpm, digits-gan or all")
    z_train.add_argument("--out", default="zoo-weights", help="output folder (default: ./zoo-weights)")
    z_train.set_defaults(func=_cmd_zoo_train)
    z_export = zoo_sub.add_parser("export", help="write a dataset split as PNG files plus a manifest")
    z_export.add_argument("dataset", choices=["digits"])
    z_export.add_argument("--split", choices=["train", "heldout", "all"], default="heldout")
    z_export.add_argument("--out", required=True, help="output folder")
    z_export.set_defaults(func=_cmd_zoo_export)
