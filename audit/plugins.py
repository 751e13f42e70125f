"""Resolve ``python:<module>:<function>`` specs to callables (user schedules, user generators)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from audit.errors import InputError


def load_callable(spec: str, what: str) -> Callable[..., Any]:
    """Import ``module`` and walk the dotted ``function`` path; ``what`` names it in errors."""
    try:
        prefix, module_name, attr = spec.split(":", 2)
        if prefix != "python":
            raise ValueError("it must start with 'python:'")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ValueError, ImportError, AttributeError) as exc:
        raise InputError(f"cannot load {what} {spec!r} (expected python:module:function): {exc}") from None
    if not callable(obj):
        raise InputError(f"{what} {spec!r} is not callable")
    return obj
