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
from audit.errors import GenauditError, InputError
from audit.io.names import escape_name
from audit.results import looks_like_results, read_results
from reports import budget
from reports.cards import kind_label
from reports.render import environment, render_card

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    s = _UNSAFE.sub("-", text).strip("-.")
    return s[:80] or "card"


def find_results(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Candidate results files among ``paths`` (files, or folders searched recursively for JSON whose first
    bytes name our schema), sorted and deduplicated, and the given files that are not results, each with a
    reason. Other JSON under a folder (a job's side files) is not a candidate."""
    found: set[Path] = set()
    skipped: list[tuple[str, str]] = []
    for p in map(Path, paths):
        if p.is_file():
            if looks_like_results(p):
                found.add(p.resolve())
            else:
                skipped.append((str(p), "not a genaudit results file"))
        elif p.is_dir():
            found.update(f.resolve() for f in p.rglob("*.json") if f.is_file() and looks_like_results(f))
        else:
            raise InputError(f"no such file or folder: {p}")
    return sorted(found), skipped


def publish(paths: Iterable[str | Path], out: str | Path, *, title: str = "genaudit report cards") -> Path:
    """Render every results file under ``paths`` into a site at ``out``; return the index path. A file that
    cannot be read or drawn is skipped with its reason (logged, and listed on the index page): one bad
    file never stops the site."""
    out = Path(out)
    twins = (out / "cards").resolve()
    candidates, skipped = find_results(paths)
    candidates = [p for p in candidates if twins not in p.parents]  # never re-read our own JSON twins
    tiles: list[dict[str, Any]] = []
    used: set[str] = set()
    for path in candidates:
        try:
            doc = read_results(path)
            html = render_card(doc, index_href="../index.html", source=str(path))
        except GenauditError as exc:
            skipped.append((str(path), str(exc)))
            continue
        except Exception as exc:  # a bug drawing one card must not cost the user the other cards
            skipped.append((str(path), f"internal error: {type(exc).__name__}: {exc}"))
            continue
        name, n = slug(doc["id"]), 2
        while name in used:
            name, n = f"{slug(doc['id'])}-{n}", n + 1
        used.add(name)
        write_text_atomic(out / "cards" / f"{name}.html", html)
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
    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)
    if not tiles:
        raise InputError(
            "no genaudit results JSON could be published from "
            + ", ".join(map(str, paths))
            + (f" ({len(skipped)} skipped: {skipped[0][1]})" if skipped else "")
        )
    skipped_rows = [{"path": escape_name(p), "reason": r} for p, r in skipped]
    html = environment().get_template("index.html.j2").render(title=title, cards=tiles, skipped=skipped_rows)
    budget.check_card(html, "index")
    return write_text_atomic(out / "index.html", html)
