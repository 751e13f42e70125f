"""Generator adapters behind one protocol (``Generator.generate(GenerationRequest) -> ImageBatch``).

Specs: ``embedded:digits-ddpm``, ``python:<module>:<function>``, ``folder:<dir>``.
"""

from __future__ import annotations

from audit.errors import InputError
from audit.generators.base import GenerationRequest, Generator, ImageBatch

__all__ = ["GenerationRequest", "Generator", "ImageBatch", "get_generator"]


def get_generator(spec: str) -> Generator:
    """Create the adapter a spec names; imports only what that adapter needs."""
    kind, _, rest = spec.partition(":")
    if kind == "embedded":
        if rest != "digits-ddpm":
            raise InputError(f"unknown embedded generator {rest!r}; the zoo has digits-ddpm")
        from audit.generators.embedded import EmbeddedDigitsGenerator

        return EmbeddedDigitsGenerator()
    if kind == "python":
        from audit.generators.python_callable import CallableGenerator

        return CallableGenerator(spec)
    if kind == "folder":
        from audit.generators.folder import FolderGenerator

        return FolderGenerator(rest)
    raise InputError(f"unknown generator {spec!r}; use embedded:digits-ddpm, python:MODULE:FUNCTION or folder:DIR")
