"""``genaudit``: the command line.

Only argparse and the standard library are imported at start-up; each subcommand imports what it
needs when it runs, so ``genaudit --help`` never imports torch. Errors print one line and exit
non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
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


def build_parser() -> argparse.ArgumentParser:
    from audit.cli_args import OneLineParser

    parser = OneLineParser(
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

    from audit.bench.cli import add_parser as add_bench
    from audit.dataset.cli import add_parser as add_audit
    from audit.zoo.cli import add_parser as add_zoo
    from detectors.cli import add_parser as add_detect
    from reports.cli import add_parsers as add_report_and_publish

    add_zoo(sub)
    add_bench(sub)
    add_audit(sub)
    add_detect(sub)
    add_report_and_publish(sub)
    return parser


def _configure_logging(debug: bool, quiet: bool) -> None:
    """Our loggers at INFO (WARNING with --quiet, DEBUG with --debug); third-party ones at WARNING."""
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    fmt = "%(levelname)s %(name)s: %(message)s" if debug else "genaudit: %(message)s"
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format=fmt)
    for ours in ("genaudit", "audit", "reports", "detectors"):
        logging.getLogger(ours).setLevel(level)


@contextlib.contextmanager
def _third_party_warnings(debug: bool) -> Iterator[None]:
    """Warnings from Pillow, numpy, torch and the rest reach the user only with ``--debug`` (our own
    messages go through logging). Worker processes inherit the setting through PYTHONWARNINGS; both are
    restored when the command ends."""
    if debug:
        yield
        return
    previous = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = "ignore"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if previous is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = previous


def _check_environment() -> None:
    """Settings read from the environment, checked before any work (one clear error, not one per file)."""
    from audit.io.images import default_max_pixels

    default_max_pixels()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Errors are one line on stderr: 2 for the user's (input, weights), 1 for ours."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.debug, args.quiet)
    from audit.errors import GenauditError

    try:
        _check_environment()
        with _third_party_warnings(args.debug):
            outcome = args.func(args)
        if isinstance(outcome, Path):  # a results JSON: render its card beside it
            from reports.render import render_file

            card = render_file(outcome)
            log.info("results %s", outcome)
            sys.stdout.write(f"{card}\n")
            return 0
        return int(outcome or 0)
    except GenauditError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"genaudit: error: {_one_line(str(exc))}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("genaudit: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        sys.stderr.write(
            f"genaudit: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
            "(run with --debug for the traceback)\n"
        )
        return EXIT_INTERNAL_ERROR


def _one_line(text: str) -> str:
    """A message as one line: a parser's multi-line dump is folded, never printed over many lines."""
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
