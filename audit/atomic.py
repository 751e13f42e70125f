"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half of one."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from audit.errors import InputError


def write_atomic(
    path: str | Path, write: Callable[[BinaryIO], None], *, fsync: bool = True, exclusive: bool = False
) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    ``fsync=False`` keeps the rename's all-or-nothing view for readers and killed runs but skips the
    flush to disk (for many small files whose loss on power failure is only recomputation).
    ``exclusive``: put it at ``path`` only where no file is yet (a hard link, which fails if one is), else
    raise :class:`FileExistsError`; see :func:`create_json_atomic`."""
    path = Path(path)
    try:
        if path.is_dir():
            raise InputError(f"cannot write {path}: it is a folder; give a file path")
        path.parent.mkdir(parents=True, exist_ok=True)
        # the temporary name is kept short: a long target name must not fail only because of its prefix
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {_reason(exc, path.parent)}") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a results file is as readable as any other
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if exclusive:
            _link_new(tmp, path)
        else:
            os.replace(tmp, path)
    except FileExistsError:
        Path(tmp).unlink(missing_ok=True)
        raise
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {_reason(exc, path)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _link_new(tmp: str, path: Path) -> None:
    """Give the finished ``tmp`` the name ``path`` if nothing has it (FileExistsError otherwise), in one step
    that two processes cannot both win. A filesystem without hard links gets the check and the rename,
    which two processes starting in the same instant can still both pass."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _reason(exc: OSError, path: Path) -> str:
    """What went wrong writing ``path``, in words a user can act on."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return "a file stands where a folder is needed on its path"
    return f"{exc.strerror or exc}" + (" (shorten the name)" if exc.errno == errno.ENAMETOOLONG else "")


def output_folder(path: str | Path) -> Path:
    """``path`` as an existing folder (made if missing); a file in its place, or a path that cannot be made
    (too long a name, no permission), is one :class:`InputError` naming it."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise InputError(f"output folder {path} is a file: give a folder path (--out)")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder {path}: {_reason(exc, path)}") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | Path, data: bytes, *, fsync: bool = True) -> Path:
    return write_atomic(path, lambda fh: fh.write(data), fsync=fsync)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """JSON in the producer's key order (so a re-rendered card matches the original), no NaN
    (``allow_nan=False``: NaN is not JSON; use None)."""
    return write_text_atomic(path, _json_text(obj))


def _json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def create_json_atomic(path: str | Path, obj: Any) -> bool:
    """:func:`write_json_atomic`, only if no file is at ``path`` yet; whether this call wrote it. Shards
    that start one run at once each try to write its identity: one wins, the others compare theirs with
    what it wrote, so two shards of different runs can never both think they started the folder."""
    data = _json_text(obj).encode("utf-8")
    try:
        write_atomic(path, lambda fh: fh.write(data), exclusive=True)
    except FileExistsError:
        return False
    return True


def write_csv_atomic(
    path: str | Path, fieldnames: Sequence[str], rows: Iterable[dict[str, Any]], *, text_columns: Sequence[str] = ()
) -> Path:
    """A CSV with a header row (``csv`` module quoting, so commas, quotes and newlines in names survive).
    ``text_columns``: columns of user text (labels, file names) in a file meant for a spreadsheet, each cell
    through :func:`audit.io.names.spreadsheet_text` so that none runs as a formula; leave it empty for a
    file genaudit reads back (a manifest), whose names must stay exactly as they are."""
    from audit.io.names import spreadsheet_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **{c: spreadsheet_text(row.get(c)) for c in text_columns}} if text_columns else row)
    return write_text_atomic(path, buf.getvalue())
