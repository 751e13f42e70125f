"""Which builder turns a results document of each kind into a card's template context.

A builder is a function ``(doc) -> dict`` returning at least ``template``, ``kind_label``, ``summary``,
``sections`` and ``provenance_text``. Entries are ``"module:function"`` strings, imported when a card
of that kind is rendered.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

from audit.errors import InputError

BUILDERS: dict[str, str] = {
    "zoo-model": "reports.zoo_card:build",
    "guidance-bench": "reports.bench_card:build",
    "dataset-audit": "reports.audit_card:build",
    "audit-review": "reports.review_card:build",
    "deepfake-detection": "reports.detect_card:build",
}
KIND_LABELS: dict[str, str] = {
    "zoo-model": "embedded model card",
    "guidance-bench": "guidance benchmark",
    "dataset-audit": "dataset audit",
    "audit-review": "dataset audit review sheet",
    "deepfake-detection": "deepfake check",
}


def builder_for(kind: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    try:
        module_name, func = BUILDERS[kind].split(":")
    except KeyError:
        raise InputError(f"no card template for results of kind {kind!r} (known: {', '.join(BUILDERS)})") from None
    return getattr(importlib.import_module(module_name), func)


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def base_context(doc: dict[str, Any], *, summary: str, sections: list[dict[str, Any]]) -> dict[str, Any]:
    """The context every card shares: generic template, labels, provenance as readable JSON."""
    return {
        "template": "card.html.j2",
        "kind_label": kind_label(doc["kind"]),
        "summary": summary,
        "sections": sections,
        "provenance_text": json.dumps(doc["provenance"], indent=2, sort_keys=True, ensure_ascii=False),
    }
