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

from audit import __version__

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
