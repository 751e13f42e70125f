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

SCHEMA = "genaudit.results/1"
REQUIRED_KEYS = ("schema", "kind", "id", "title", "headline", "provenance", "data")


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
    return doc


def write_results(path: str | Path, doc: dict[str, Any]) -> Path:
    """Validate and write a results document atomically."""
    return write_json_atomic(path, validate(doc, str(path)))


def read_results(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"results file not found: {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    return validate(doc, str(path))


def is_results_file(path: Path) -> bool:
    """True for a readable JSON file whose schema is ours (cheap check used by ``publish``)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and doc.get("schema") == SCHEMA
