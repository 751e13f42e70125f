"""Process-pool workers end when their parent is killed (kill -9), instead of living on as orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")

# A parent that starts a spawn pool of 2 workers (with or without the watcher), prints their pids and waits.
PARENT = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from audit.io.worker_exit import exit_with_parent

def pid(_):
    time.sleep(0.5)  # both workers take one task each
    return os.getpid()

if __name__ == "__main__":
    init = exit_with_parent if sys.argv[1] == "watched" else None
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=init)
    print(" ".join(str(p) for p in sorted(set(pool.map(pid, range(2))))), flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Running or sleeping; a zombie (exited, not yet reaped by whoever adopted it) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _killed(script: Path, args: list[str], *, kill: bool) -> tuple[int, list[int], list[int]]:
    """Run ``script`` (it prints its pool workers' pids on one line), SIGKILL it after that line when
    ``kill`` (else it kills itself); (its return code, the workers' pids, those still alive 10 s after it
    died)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    parent = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True, env=env)
    workers = [int(p) for p in parent.stdout.readline().split()]  # type: ignore[union-attr]
    if kill:
        parent.send_signal(signal.SIGKILL)
    returncode = parent.wait(timeout=60)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    return returncode, workers, [p for p in workers if _alive(p)]


def _workers_after_killing_their_parent(tmp_path: Path, mode: str) -> tuple[list[int], list[int]]:
    """(the workers' pids, those still alive 10 s after the parent got SIGKILL)."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT, encoding="utf-8")
    _, workers, alive = _killed(script, [mode], kill=True)
    return workers, alive


def test_watched_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    workers, alive = _workers_after_killing_their_parent(tmp_path, "watched")
    assert len(workers) == 2 and alive == []


def test_unwatched_workers_outlive_a_killed_parent(tmp_path: Path) -> None:
    """The control: without the watcher the same workers are still there 10 s later (what the watcher is
    for), then killed here so that the test leaves nothing behind."""
    workers, alive = _workers_after_killing_their_parent(tmp_path, "plain")
    try:
        assert len(workers) == 2 and alive == workers
    finally:
        for pid in alive:
            os.kill(pid, signal.SIGKILL)


AUDIT = """
import multiprocessing, os, sys, threading, time
from pathlib import Path
from audit.dataset import run

out = Path(sys.argv[2])

def kill_when_recording():
    records = out / "records.jsonl"
    while not (records.exists() and records.stat().st_size):
        time.sleep(0.02)
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    os.kill(os.getpid(), 9)

if __name__ == "__main__":
    threading.Thread(target=kill_when_recording, daemon=True).start()
    run.run_records(sys.argv[1], out, workers=2, progress=False)
"""


def test_a_killed_audit_leaves_no_pool_worker_behind(tmp_path: Path) -> None:
    """The audit's local pool (``run_records(workers=2)``), its parent killed by SIGKILL mid-run."""
    from PIL import Image
    from skimage import data

    folder = tmp_path / "ds"
    folder.mkdir()
    for i in range(300):
        Image.fromarray(data.astronaut()[::4, ::4]).save(folder / f"{i:03d}.png")
    script = tmp_path / "killed_run.py"  # not audit.py: it would shadow the package
    script.write_text(AUDIT, encoding="utf-8")
    returncode, workers, alive = _killed(script, [str(folder), str(tmp_path / "out")], kill=False)
    assert returncode == -signal.SIGKILL  # it killed itself mid-run
    lines = (tmp_path / "out" / "records.jsonl").read_text().count("\n")
    assert len(workers) == 2 and alive == [] and 0 < lines < 300
