"""``genaudit report`` and ``genaudit publish``: render cards and sites from results JSON."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

log = logging.getLogger("genaudit")


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


def add_parsers(sub: Any) -> None:
    """Add ``report`` and ``publish`` to the CLI's subcommands."""
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
