"""``genaudit publish DIR...``: a static site of cards, re-rendered from the results JSON files found.

Layout of the site folder::

    index.html            one tile per card with its headline figures
    cards/<id>.html       the card (self-contained)
    cards/<id>.json       its JSON twin (a copy of the results file it was rendered from)

Card file names come from the results' ``id``, reduced to ``[A-Za-z0-9._-]``; two results with the same
id get ``-2``, ``-3`` suffixes in the order found (sorted paths), so publishing is deterministic.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audit.atomic import write_json_atomic, write_text_atomic
from audit.errors import InputError
from audit.results import is_results_file, read_results
from reports import budget
from reports.cards import kind_label
from reports.render import environment, render_card

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    s = _UNSAFE.sub("-", text).strip("-.")
    return s[:80] or "card"


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """Results JSON files among ``paths`` (files, or folders searched recursively), sorted, deduplicated."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if p.is_file():
            if not is_results_file(p):
                raise InputError(f"{p} is not a genaudit results file")
            found.add(p.resolve())
        elif p.is_dir():
            found.update(f.resolve() for f in p.rglob("*.json") if f.is_file() and is_results_file(f))
        else:
            raise InputError(f"no such file or folder: {p}")
    return sorted(found)


def publish(paths: Iterable[str | Path], out: str | Path, *, title: str = "genaudit report cards") -> Path:
    """Render every results file under ``paths`` into a site at ``out``; return the index path."""
    out = Path(out)
    twins = (out / "cards").resolve()
    results = [p for p in find_results(paths) if twins not in p.parents]  # never re-read our own JSON twins
    if not results:
        raise InputError("no genaudit results JSON found in " + ", ".join(map(str, paths)))
    tiles: list[dict[str, Any]] = []
    used: set[str] = set()
    for path in results:
        doc = read_results(path)
        name, n = slug(doc["id"]), 2
        while name in used:
            name, n = f"{slug(doc['id'])}-{n}", n + 1
        used.add(name)
        write_text_atomic(out / "cards" / f"{name}.html", render_card(doc, index_href="../index.html"))
        write_json_atomic(out / "cards" / f"{name}.json", doc)
        tiles.append(
            {
                "title": doc["title"],
                "kind_label": kind_label(doc["kind"]),
                "headline": doc["headline"],
                "href": f"cards/{name}.html",
                "json_href": f"cards/{name}.json",
            }
        )
        log.info("card %s <- %s", name, path)
    html = environment().get_template("index.html.j2").render(title=title, cards=tiles)
    budget.check_card(html, "index")
    return write_text_atomic(out / "index.html", html)
