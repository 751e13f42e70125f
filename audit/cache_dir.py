"""Where genaudit keeps what later runs reuse (a reference's features, the calibrated embedded detector).

``$GENAUDIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/genaudit``, else ``~/.cache/genaudit``;
``GENAUDIT_CACHE_DIR=off`` keeps nothing. Everything kept is keyed by what it was computed from (inputs,
models and their hashes, package versions), written atomically and checked when read, so deleting the folder
only costs time (docs/large-samples.md, "Reference features across runs").
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "GENAUDIT_CACHE_DIR"
OFF = ("off", "none", "0", "")


def cache_root() -> Path | None:
    """The cache folder, or None when ``GENAUDIT_CACHE_DIR=off``."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "genaudit"
