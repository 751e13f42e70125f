"""Two processes writing one output folder: refused with the holder named, never mixed (audit/out_lock.py)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.atomic import create_json_atomic
from audit.errors import InputError
from audit.out_lock import LOCK_FILE, holding
from audit.scale.shards import Shard

ROOT = Path(__file__).resolve().parents[1]


class Holder:
    """Another process holding ``out`` (or one shard of it) until it is stopped."""

    def __init__(self, out: Path, shard: str | None = None) -> None:
        script = textwrap.dedent(f"""
            import sys
            from audit.out_lock import holding
            from audit.scale.shards import Shard
            shard = Shard.parse({shard!r}) if {shard!r} else None
            with holding({str(out)!r}, shard=shard):
                print("held", flush=True)
                sys.stdin.read()
        """)
        self.proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "held\n"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.communicate("", timeout=30)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        if holder.proc.poll() is None:
            holder.kill()


def test_a_second_run_into_a_held_folder_is_refused_naming_the_holder(tmp_path: Path, holders: list[Holder]) -> None:
    out = tmp_path / "out"
    holders.append(first := Holder(out))
    for shard in (None, Shard(0, 2)):  # neither another whole run nor a shard may write beside it
        with pytest.raises(InputError) as refused, holding(out, shard=shard):
            pytest.fail("took a folder another process holds")
        assert f"pid {first.pid} on " in str(refused.value) and "without --shard" in str(refused.value)
    first.stop()
    with holding(out):  # free again the moment the holder ends
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()
        (out / "results.json").write_text("{}")  # the run writes something: its folder stays
    assert (out / LOCK_FILE).read_bytes() == b""  # released: no pid, host or command left in a published folder


def test_shards_share_the_folder_but_not_a_shard_and_a_merge_waits_for_them(
    tmp_path: Path, holders: list[Holder]
) -> None:
    out = tmp_path / "out"
    holders.append(zero := Holder(out, "0/2"))
    with holding(out, shard=Shard(1, 2)):  # shard 1 of the same run: at once, as a Slurm array does
        pass
    with (
        pytest.raises(InputError, match=rf"shard 0/2 of .* already being run by pid {zero.pid} on "),
        holding(out, shard=Shard(0, 2)),
    ):
        pytest.fail("ran a shard another process is running")
    with pytest.raises(InputError) as refused, holding(out):  # the merge, too early
        pytest.fail("merged while a shard was still running")
    assert f"1 genaudit --shard process(es) (shard 0/2: pid {zero.pid} on " in str(refused.value)
    assert "run this once they have finished" in str(refused.value)


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, holders: list[Holder]) -> None:
    out = tmp_path / "out"
    holders.append(whole := Holder(out))
    whole.kill()  # kill -9: no cleanup ran
    with holding(out):
        pass
    holders.append(shard := Holder(out, "1/3"))
    shard.kill()
    with holding(out), holding(out, shard=Shard(1, 3)):  # nested in one process: held once
        pass


def test_calls_nest_in_one_process_and_release_at_the_outermost(tmp_path: Path, holders: list[Holder]) -> None:
    out = tmp_path / "out"
    with holding(out), holding(out), holding(out / "sub"):
        pass
    holders.append(Holder(out))  # released: another process takes it


def test_a_filesystem_without_flock_runs_unlocked_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import errno
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    ran = []
    with caplog.at_level(logging.WARNING, logger="audit.out_lock"), holding(tmp_path / "out"):
        ran.append(True)
    assert ran and "cannot lock" in caplog.text and "No locks available" in caplog.text


def test_create_json_atomic_writes_once_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    assert create_json_atomic(path, {"run": 1}) is True
    assert create_json_atomic(path, {"run": 2}) is False
    assert json.loads(path.read_text()) == {"run": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_shards_of_two_runs_cannot_both_start_one_folder(tmp_path: Path) -> None:
    from audit.dataset.run import adopt_identity

    path = tmp_path / "records.run.json"
    adopt_identity(path, {"spec": "a", "n": 3}, what="an audit")
    adopt_identity(path, {"spec": "a", "n": 3}, what="an audit")  # a sibling shard of the same run joins it
    with pytest.raises(InputError, match="an audit"):
        adopt_identity(path, {"spec": "b", "n": 3}, what="an audit")
    assert json.loads(path.read_text()) == {"spec": "a", "n": 3}


def test_the_cli_refuses_an_audit_into_a_folder_another_run_holds(
    tmp_path: Path, holders: list[Holder], capsys: pytest.CaptureFixture[str]
) -> None:
    """The case the lock was built for: two audits of different data into one --out had both "finished",
    their records mixed in one journal and one card overwritten by the other."""
    from audit.cli import main

    out = tmp_path / "out"
    holders.append(first := Holder(out))
    code = main(["-q", "audit", "builtin:faces-demo", "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"pid {first.pid} on " in err, err
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing read, nothing written


def test_planted_links_fifos_and_garbage_in_place_of_a_lock_are_refused_or_ignored(tmp_path: Path) -> None:
    from audit.out_lock import _holder, _is_held

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).symlink_to(victim)  # the holder writes its lock file: never through a link
    with pytest.raises(InputError, match="not a regular file"), holding(out):
        pytest.fail("locked through a link")
    assert victim.read_text() == "keep me"
    fifo = tmp_path / "fifo.lock"
    os.mkfifo(fifo)
    assert _is_held(fifo) is False and _holder(fifo) == ""  # opened without blocking, not taken for a lock
    garbage = tmp_path / "garbage.lock"
    garbage.write_bytes(b'{"pid": 1, "host": "a\\nb", "command": "x", "since": "' + b"y" * 10**6 + b'"}')
    assert _holder(garbage) == ""  # read only 4 KB: not JSON, so nothing named
    garbage.write_text(json.dumps({"pid": 7, "host": "evil\nhost", "command": "x\ny", "since": "now"}))
    assert _holder(garbage) == "pid 7 on evil host ('x\\ny', since now)"  # one line whatever the file holds


def test_a_refused_calibration_into_a_json_file_leaves_nothing_beside_it(tmp_path: Path) -> None:
    from detectors.job import calibrate

    with pytest.raises(InputError):
        calibrate([str(tmp_path / "missing")], [], tmp_path / "det.json")
    assert list(tmp_path.iterdir()) == []  # not even the hidden journal folder made to hold the lock


def test_a_refused_run_leaves_no_empty_out_folder_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from audit.cli import main

    image = tmp_path / "a.png"
    Image.new("L", (8, 8)).save(image)
    out = tmp_path / "new-out"
    code = main(["-q", "detect", str(image), str(image), "--out", str(out)])
    assert code == 2 and "the same file or folder twice" in capsys.readouterr().err
    assert not out.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    with holding(kept):
        pass
    assert sorted(p.name for p in kept.iterdir()) == [LOCK_FILE]  # a folder the user made is left as it was, lock aside
