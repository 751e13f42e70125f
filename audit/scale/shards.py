"""The unit of scale-out work: shard K of N, a contiguous range of item indices (see docs/scale-out.md).

Every job numbers its items (the audit's images in source order, a bench cell's images, the images a
detector scores) and each item's output depends only on its index, so shard K of N can run anywhere, any
time, again, with identical output. Shard K (counted from 0, as Slurm array and Kubernetes indexed-job
indices are) covers ``[T * K // N, T * (K + 1) // N)`` of T items.

A shard writes its outputs into its own files under ``OUT/shards/`` (never a file another shard
writes), and a completion marker last (:class:`ShardMarker`), so N processes on N machines can share
one ``--out`` without locks: a rerun of a finished shard does nothing, a torn one continues from what it
wrote. The command without ``--shard`` then does whatever is missing and merges, in index order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.atomic import write_json_atomic
from audit.errors import InputError

SHARDS_DIR = "shards"
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``k`` of ``n`` (0 <= k < n)."""

    k: int
    n: int

    def __post_init__(self) -> None:
        if self.n < 1 or not 0 <= self.k < self.n:
            raise InputError(f"--shard {self.k}/{self.n}: K must be in 0..N-1 (shards are counted from 0)")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` -> Shard; anything else is one clear error."""
        match = _SPEC.match(text)
        if match is None:
            raise InputError(f"--shard wants K/N (e.g. 0/4, shards counted from 0), got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    def range(self, total: int) -> range:
        """This shard's contiguous indices of ``total`` items."""
        return range(total * self.k // self.n, total * (self.k + 1) // self.n)

    @property
    def name(self) -> str:
        """The file-name stem of this shard's outputs, sortable: ``00003-of-00008``."""
        return f"{self.k:05d}-of-{self.n:05d}"

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"


def all_shards(n: int) -> list[Shard]:
    return [Shard(k, n) for k in range(n)]


class ShardMarker:
    """``OUT/shards/<job>/<K>-of-<N>.done``: written last, atomically, when a shard's outputs are complete."""

    def __init__(self, out: Path, job: str, shard: Shard) -> None:
        self.path = Path(out) / SHARDS_DIR / job / f"{shard.name}.done"
        self.shard = shard

    def done(self) -> bool:
        return self.read() is not None

    def read(self) -> dict[str, Any] | None:
        """The marker's contents, or None when the shard is not finished (a damaged marker counts as not
        finished: the shard is redone, which rewrites identical outputs)."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        return doc if isinstance(doc, dict) else None

    def write(self, **facts: Any) -> Path:
        return write_json_atomic(self.path, {"shard": str(self.shard), **facts})


def shard_folder(out: Path, job: str) -> Path:
    return Path(out) / SHARDS_DIR / job
