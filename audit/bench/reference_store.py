"""Reference features kept across benchmark runs, so a reference is decoded and extracted once per extractor.

A user benchmarks many runs (schedules, checkpoints, samplers) against one reference: COCO val, a 30,000-image
FID set. Extracting it is most of a short run's cost on a CPU (Inception: about 0.1 s an image here) and a
pass over every file on any machine. clean-fid keeps a reference's statistics under a name the user gives
(``make_custom_stats``), torchmetrics keeps real features across ``reset()`` when asked; genaudit keeps every
output of the extractor for the reference (features, probabilities, CLIP embeddings), because its metrics
need more than a mean and a covariance.

The file is ``<cache>/reference-features/<key>.npz`` (:func:`audit.cache_dir.cache_root`: ``$GENAUDIT_CACHE_DIR``,
else ``$XDG_CACHE_HOME/genaudit``, else ``~/.cache/genaudit``; ``GENAUDIT_CACHE_DIR=off`` keeps nothing). The key
is a sha256 over the reference's listing (every item's name; every file's size, modification and change times:
:func:`audit.io.sources.listing_digest`), the extractor's id and weights, the pixel limit and the versions
of the packages that change numbers, so a reference whose files changed, another extractor or another
version gets a new file, never stale features. Written atomically after a complete pass; a damaged file is
ignored with a warning and written again. Built-in references (``embedded:...``) ship with the package and
extract in under a second: they are not kept. docs/large-samples.md, "Reference features across runs".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from audit.errors import InputError

log = logging.getLogger(__name__)

FORMAT = "genaudit.reference-features/1"


class ReferenceStore:
    """One reference's extractor outputs under one extractor: :meth:`load` them, or :meth:`save` them after a
    pass. ``path`` is None when nothing is kept (a built-in reference, or the cache turned off)."""

    def __init__(self, spec: str, extractor: Any, root: Path | None = None) -> None:
        from audit.cache_dir import cache_root

        root = cache_root() if root is None else root
        builtin = not os.path.lexists(spec) and ":" in spec and not _is_archive(spec)
        self.path = (
            None if root is None or builtin else root / "reference-features" / f"{self._key(spec, extractor)}.npz"
        )

    @staticmethod
    def _key(spec: str, extractor: Any) -> str:
        from audit.io.images import default_max_pixels
        from audit.io.sources import listing_digest
        from audit.provenance import TRACKED_PACKAGES, package_versions

        where = os.path.realpath(spec) if os.path.lexists(spec) else spec
        listing, count = listing_digest(where)
        identity = {
            "format": FORMAT,
            "listing": listing,
            "items": count,
            "extractor": extractor.id,
            "models": extractor.models() if hasattr(extractor, "models") else [],
            "max_pixels": default_max_pixels(),
            "versions": package_versions(TRACKED_PACKAGES),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()

    def load(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The kept outputs and the reference's description, or None (nothing kept, or a damaged file)."""
        if self.path is None or not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as data:
                info = json.loads(str(data["info"]))
                outputs = {name: data[name] for name in data.files if name != "info"}
            if info.get("format") != FORMAT or any(len(v) != info["n"] for v in outputs.values()):
                raise ValueError("not a reference-features file of this format")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            log.warning(
                "kept reference features %s are unreadable (%s): extracting again", self.path, type(exc).__name__
            )
            return None
        info.pop("format")
        return outputs, info

    def save(self, outputs: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        """Keep the outputs of a complete pass; a full disk or a read-only cache is a warning, not an error."""
        if self.path is None:
            return
        from audit.atomic import write_atomic

        header = np.array(json.dumps({"format": FORMAT, **info}))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # straight into the temporary file: 50,000 Inception rows are 1.2 GB, not to be held twice
            write_atomic(self.path, lambda fh: np.savez(fh, info=header, **outputs))
        except (OSError, InputError) as exc:  # InputError: write_atomic's own one-line account of an OSError
            why = getattr(exc, "strerror", None) or str(exc)
            log.warning("could not keep the reference features in %s (%s): the next run extracts them again",
                        self.path, why)  # fmt: skip


def _is_archive(spec: str) -> bool:
    from audit.io import archives

    return archives.is_webdataset(spec) or archives.is_parquet(spec)
