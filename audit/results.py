"""The results JSON every command writes first (owned by measuring code); `reports` renders HTML from it alone.

A results document is a plain dict::

    {
      "schema": "genaudit.results/1",
      "kind": "zoo-model",              # selects the card template and figure builders
      "id": "zoo-digits-ddpm",          # stable, used for the card's file name
      "title": "digits-ddpm",
      "headline": [{"label": "class accuracy", "value": 0.97, "format": "pct"}, ...],
      "provenance": {...},              # audit.provenance.provenance(...)
      "data": {...},                    # everything the card shows, numbers and small thumbnails
    }

Thumbnails live in ``data`` as base64 PNG strings, never as raw arrays (``audit.io.encode``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audit.atomic import write_json_atomic
from audit.errors import InputError
from audit.io.images import require_file

SCHEMA = "genaudit.results/1"
REQUIRED_KEYS = ("schema", "kind", "id", "title", "headline", "provenance", "data")
MAX_RESULTS_BYTES = 256 * 1024 * 1024  # a results file holds numbers and small thumbnails: a few MB


def validate(doc: Any, source: str = "results") -> dict[str, Any]:
    """Check a results document's envelope; raise :class:`InputError` naming what is wrong."""
    if not isinstance(doc, dict):
        raise InputError(f"{source}: a results document must be a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise InputError(f"{source}: not a genaudit results file (missing {', '.join(missing)})")
    if doc["schema"] != SCHEMA:
        raise InputError(f"{source}: schema {doc['schema']!r} is not supported (this genaudit reads {SCHEMA!r})")
    if not isinstance(doc["headline"], list) or not all(isinstance(h, dict) and "label" in h for h in doc["headline"]):
        raise InputError(f"{source}: 'headline' must be a list of {{label, value}} objects")
    for key, kind in (("kind", str), ("id", str), ("title", str), ("provenance", dict), ("data", dict)):
        if not isinstance(doc[key], kind):
            raise InputError(f"{source}: '{key}' must be a JSON {'string' if kind is str else 'object'}")
    return doc


def write_results(path: str | Path, doc: dict[str, Any]) -> Path:
    """Validate and write a results document atomically."""
    return write_json_atomic(path, validate(doc, str(path)))


def read_results(path: str | Path) -> dict[str, Any]:
    """A results document, checked: not found, too large, not JSON, nested too deeply or a bad envelope is
    one :class:`InputError` naming the file."""
    path = Path(path)
    require_file(path, "results file")
    size = path.stat().st_size
    if size > MAX_RESULTS_BYTES:
        limit = MAX_RESULTS_BYTES / 1e6
        raise InputError(f"{path}: {size / 1e6:.0f} MB, over the {limit:.0f} MB a results file may be")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to be a results file") from None
    return validate(doc, str(path))


def looks_like_results(path: Path) -> bool:
    """Whether ``path`` claims to be a genaudit results file: its first bytes name our schema (every
    results file is written with ``schema`` first). Cheap, and safe on huge or hostile JSON."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return b'"genaudit.results/' in head
