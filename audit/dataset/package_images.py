"""Real images that ship inside installed packages (no download), located without importing them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from audit.errors import InputError


def package_file(package: str, *parts: str) -> Path:
    """Path of a data file inside an installed package, found from its import spec (not imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"package {package!r} is not installed (it ships the image {'/'.join(parts)})")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        raise InputError(f"{package} is installed but has no {'/'.join(parts)}")
    return path


def insightface_image(name: str) -> Path:
    """``t1.jpg`` (a group photo: 3 women, 3 men) or ``Tom_Hanks_54745.png`` (an aligned face crop)."""
    return package_file("insightface", "data", "images", name)
