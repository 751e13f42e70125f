"""Generator adapters behind one protocol (``Generator.generate(GenerationRequest) -> ImageBatch``).

Specs: ``embedded:digits-ddpm``, ``diffusers:<path or hub id>``, ``python:<module>:<function>``,
``folder:<dir>``.
"""

from __future__ import annotations

from typing import Any

from audit.errors import InputError
from audit.generators.base import GenerationRequest, Generator, ImageBatch

__all__ = ["GenerationRequest", "Generator", "ImageBatch", "get_generator"]


def get_generator(spec: str, **options: Any) -> Generator:
    """Create the adapter a spec names; imports only what that adapter needs. ``options`` go to the
    adapters that take them (``batch_size`` for embedded; ``device``, ``dtype``, ``batch_size`` for
    diffusers); ``chunk`` (images per request, a benchmark setting) is ignored here."""
    options = {k: v for k, v in options.items() if k != "chunk"}
    kind, _, rest = spec.partition(":")
    if kind == "embedded":
        if rest != "digits-ddpm":
            raise InputError(f"unknown embedded generator {rest!r}; the zoo has digits-ddpm")
        from audit.generators.embedded import EmbeddedDigitsGenerator

        _only(spec, options, {"batch_size"})
        return EmbeddedDigitsGenerator(**options)
    if kind == "diffusers":
        if not rest:
            raise InputError("diffusers generator needs a local folder or hub id: diffusers:PATH_OR_ID")
        from audit.generators.diffusers_adapter import DiffusersGenerator

        _only(spec, options, {"device", "dtype", "batch_size", "height", "width"})
        return DiffusersGenerator(rest, **options)
    _only(spec, options, set())
    if kind == "python":
        from audit.generators.python_callable import CallableGenerator

        return CallableGenerator(spec)
    if kind == "folder":
        from audit.generators.folder import FolderGenerator

        return FolderGenerator(rest)
    raise InputError(
        f"unknown generator {spec!r}; use embedded:digits-ddpm, diffusers:PATH_OR_ID, "
        "python:MODULE:FUNCTION or folder:DIR"
    )


def _only(spec: str, options: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise InputError(f"generator {spec} takes no option {', '.join(sorted(unknown))}")
