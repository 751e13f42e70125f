"""One writer per output folder: a second run into the same ``--out`` is refused, never mixed in
(docs/scale-out.md, "Two runs into one folder").

A run without ``--shard`` (a whole run, a resume, a merge, a Ray driver) holds ``OUT/.genaudit.lock``
exclusively for as long as it runs. A ``--shard K/N`` process holds it shared, with ``OUT/shards/K-of-N.lock``
exclusively, so the N shards of a run write one folder at once, as they are meant to, while

- a second run into a folder another run is writing (two audits of different datasets started together),
- a merge started while shards still run (it would redo their shards beside them), and
- a shard started twice (a Slurm array resubmitted while the first is still running)

are each one line naming the process that holds the folder (pid, host, command, start), before anything
is read or written. Without the lock the first case mixed two datasets' records in one journal.

The locks are ``flock(2)`` locks, which the kernel drops when their process ends, however it ends (``kill
-9`` included): a killed run never leaves a stale lock behind, and its rerun takes the folder at once.
Network filesystems honour them as far as their locking goes (NFSv4 does); where ``flock`` is refused
(a filesystem without locks), the run goes on unlocked with one warning. Calls nest: a job that runs
another job into the same folder in the same process (``--tune`` runs its held-out split there) holds it once.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from audit.errors import InputError

log = logging.getLogger(__name__)

LOCK_FILE = ".genaudit.lock"
_held: dict[str, tuple[int, int, bool]] = {}  # lock file's real path -> (fd, depth, exclusive): this process's


def holds_out(job: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for a job writing its ``out`` argument: the call holds ``out`` (:func:`holding`, with the
    job's ``shard`` argument where it has one and it is given)."""
    signature = inspect.signature(job)

    @functools.wraps(job)
    def run(*args: Any, **kwargs: Any) -> Any:
        given = signature.bind(*args, **kwargs).arguments
        with holding(given["out"], shard=given.get("shard")):
            return job(*args, **kwargs)

    return run


@contextmanager
def holding(out: str | Path, *, shard: Any = None) -> Iterator[None]:
    """Hold ``out`` for one run (``shard``: an :class:`audit.scale.shards.Shard`, shared with its sibling
    shards); see the module docstring. Raises :class:`InputError` when another process holds it. A folder
    made here to hold the lock is removed again if the run wrote nothing into it (a refused input leaves no
    empty ``--out`` behind)."""
    from audit.atomic import output_folder

    made = not os.path.lexists(out)
    out = output_folder(out)
    run_lock = out / LOCK_FILE
    with _locked(run_lock, exclusive=shard is None, refused=lambda: _folder_refusal(out, run_lock, shard)):
        try:
            if shard is None:
                yield
                return
            from audit.scale.shards import SHARDS_DIR

            shard_lock = out / SHARDS_DIR / f"{shard.name}.lock"
            with _locked(shard_lock, exclusive=True, refused=lambda: _shard_refusal(out, shard_lock, shard)):
                yield
        finally:
            if made and _only_the_lock(out):  # still held, so no other run is in it
                run_lock.unlink(missing_ok=True)
                with suppress(OSError):
                    out.rmdir()


def _only_the_lock(out: Path) -> bool:
    try:
        return all(p.name == LOCK_FILE for p in out.iterdir())
    except OSError:
        return False


@contextmanager
def _locked(path: Path, *, exclusive: bool, refused: Any) -> Iterator[None]:
    """``path`` flocked (exclusively or shared, never waiting) for the block; ``refused()`` gives the
    error when another process holds it."""
    try:
        import fcntl
    except ImportError:  # no flock on this platform: run as before, unlocked
        yield
        return

    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(path)
    if key in _held:  # this process holds it already (a job running another job into the same folder)
        fd, depth, mode = _held[key]
        _held[key] = (fd, depth + 1, mode)
        try:
            yield
        finally:
            _release(key)
        return
    fd = _open_lock_file(path)
    if fd is None:  # a folder we cannot write in: the job's own first write says so, in its words
        yield
        return
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise refused() from None
    except OSError as exc:  # no flock on this filesystem: run as before, unlocked
        os.close(fd)
        log.warning("cannot lock %s (%s): another genaudit run writing the same folder would not be noticed",
                    path.parent, exc.strerror or exc)  # fmt: skip
        yield
        return
    if exclusive:
        _write_holder(fd)
    _held[key] = (fd, 1, exclusive)
    try:
        yield
    finally:
        _release(key)


_SAFE_OPEN = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK  # never through a link, never blocked by a FIFO


def _open_lock_file(path: Path) -> int | None:
    """A descriptor of the regular file ``path`` (made if missing), or None where the folder is not writable.
    Anything else in its place (a link planted to make the holder overwrite another file, a FIFO, a folder)
    is one clear error: the lock file is written to."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _SAFE_OPEN, 0o644)
    except OSError as exc:
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isfile(path)):
            raise _not_a_lock(path) from None
        log.debug("cannot open %s (%s): running unlocked", path, exc)
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_a_lock(path)
    return fd


def _not_a_lock(path: Path) -> InputError:
    return InputError(f"{path} is not a regular file (a link, FIFO or folder): remove it and run again")


def _release(key: str) -> None:
    fd, depth, exclusive = _held[key]
    if depth > 1:
        _held[key] = (fd, depth - 1, exclusive)
        return
    del _held[key]
    if exclusive:  # who held it is nobody's business once the run is over (a published --out is a website)
        with suppress(OSError):
            os.ftruncate(fd, 0)
    os.close(fd)  # closing the only descriptor drops the flock


def _write_holder(fd: int) -> None:
    """Who holds the lock, for the line another process is refused with (read only while it is held)."""
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command[:300],
              "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}  # fmt: skip
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder, ensure_ascii=False).encode("utf-8"), 0)
    except OSError:  # a full disk: the lock holds all the same, the refusal just names no process
        pass


@contextmanager
def _read_only(path: Path) -> Iterator[int | None]:
    """A read-only descriptor of ``path`` while it is a regular file, else None: never opened through a link,
    never blocked by a FIFO (another process's lock file, or whatever was put in its place)."""
    try:
        fd = os.open(path, os.O_RDONLY | _SAFE_OPEN)
    except OSError:
        yield None
        return
    try:
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            regular = False
        yield fd if regular else None
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    """``pid N on HOST (COMMAND, since TIME)`` from a held lock file, or ``""`` where it cannot be read (at
    most 4 KB of a regular file, each field on one line: the file is anyone's to write)."""
    with _read_only(path) as fd:
        if fd is None:
            return ""
        try:
            doc = json.loads(os.read(fd, 4096).decode("utf-8"))
            host, since = _one_line(doc["host"]), _one_line(doc["since"])
            return f"pid {int(doc['pid'])} on {host} ({doc['command']!r}, since {since})"
        except (OSError, ValueError, KeyError, TypeError):
            return ""


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())[:100]


def _is_held(path: Path) -> bool:
    """Whether another process holds the regular file ``path`` exclusively (a probe that takes and drops a
    shared lock; a FIFO or link in its place is not a lock)."""
    import fcntl

    with _read_only(path) as fd:
        if fd is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        return False


def _folder_refusal(out: Path, run_lock: Path, shard: Any) -> InputError:
    from audit.scale.shards import SHARDS_DIR

    if shard is not None or _is_held(run_lock):  # held exclusively: a run without --shard
        who = _holder(run_lock)
        what = "a genaudit run without --shard" + (f": {who}" if who else "")
        advice = "wait for it to finish, or use another --out"
    else:  # held shared: --shard processes
        running = sorted(p for p in (out / SHARDS_DIR).glob("*.lock") if _is_held(p))
        who = "; ".join(f"shard {_shard_of(p)}: {_holder(p) or 'a running process'}" for p in running[:3])
        more = f" and {len(running) - 3} more" if len(running) > 3 else ""
        what = f"{len(running) or 'some'} genaudit --shard process(es)" + (f" ({who}{more})" if who else "")
        advice = "run this once they have finished: it then merges their shards and does what they left"
    return InputError(f"{out} is being written by {what}; {advice}")


def _shard_of(lock: Path) -> str:
    """``K/N`` from a shard's lock file name (``00003-of-00008.lock``)."""
    k, _, n = lock.stem.partition("-of-")
    return f"{int(k)}/{int(n)}" if k.isdigit() and n.isdigit() else lock.stem


def _shard_refusal(out: Path, shard_lock: Path, shard: Any) -> InputError:
    who = _holder(shard_lock)
    return InputError(
        f"shard {shard} of {out} is already being run" + (f" by {who}" if who else "") + "; wait for it to finish "
        "(a rerun after it ends skips what it wrote)"
    )
