"""Render a results document to one self-contained HTML card.

jinja2 runs with autoescape on and ``StrictUndefined`` (a template that names a missing value fails
loudly instead of printing nothing). Every figure is a data URI; there is no script and no external
URL. A card must fit :data:`reports.budget.CARD_BUDGET_BYTES`.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any

from audit.atomic import write_text_atomic
from audit.errors import InputError
from audit.results import read_results, validate
from reports import budget


@functools.lru_cache(maxsize=1)
def environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = format_value
    return env


def format_value(value: Any, fmt: str | None = None) -> str:
    """Human format for a headline or table value: ``pct``, ``int``, ``float3``, ``float2`` or plain."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return "n/a"
        if fmt == "pct":
            return f"{100 * value:.1f}%"
        if fmt == "int":
            return f"{round(value):,}"
        if fmt == "float2":
            return f"{value:.2f}"
        if fmt == "bytes":
            return f"{value / 1e6:.2f} MB"
        if isinstance(value, float):
            return f"{value:.3g}" if fmt is None else f"{value:.3f}"
        return f"{value:,}"
    return str(value)


def card_context(doc: dict[str, Any]) -> dict[str, Any]:
    """Figures and template variables for a document, from the builder registered for its kind."""
    from reports.cards import builder_for

    return builder_for(doc["kind"])(doc)


def render_card(doc: dict[str, Any], *, index_href: str | None = None, source: str = "results") -> str:
    """HTML of one card; raises if the result would exceed the size budget. A document whose envelope is
    valid but whose data lacks a field its card needs (hand-edited, truncated, another version's) is one
    :class:`InputError` naming ``source`` and the field, never an internal error."""
    import jinja2

    doc = validate(doc, source)
    try:
        context = card_context(doc)
        template = environment().get_template(context.pop("template"))
        html = template.render(doc=doc, index_href=index_href, **context)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, jinja2.UndefinedError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise InputError(
            f"{source}: its {doc['kind']} data cannot be drawn ({what}); re-run the command that made it"
        ) from None
    budget.check_card(html, doc["id"])
    return html


def render_file(results_path: str | Path, out: str | Path | None = None) -> Path:
    """``genaudit report RESULTS.json``: re-render the card beside its JSON (or to ``out``). The results
    are the source of truth: an ``out`` that is the results file itself is refused."""
    results_path = Path(results_path)
    out = Path(out) if out else results_path.with_suffix(".html")
    if _same_file(out, results_path):
        raise InputError(f"--out {out} is the results file itself: a card never overwrites its results")
    doc = read_results(results_path)
    write_text_atomic(out, render_card(doc, source=str(results_path)))
    return out


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (through links, ``..`` or hard links)."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
