"""The CLI: help without torch, one-line errors, --debug tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from audit.cli import build_parser, main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from audit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'open_clip', 'matplotlib', 'sklearn') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "HEAVY=\n" in out, out


@pytest.mark.parametrize(
    "command",
    [["demo"], ["zoo"], ["zoo", "list"], ["zoo", "show"], ["zoo", "train"], ["zoo", "export"], ["report"], ["publish"]],
)
def test_every_subcommand_has_its_own_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*command, "--help"])
    assert exc.value.code == 0
    assert f"usage: genaudit {' '.join(command)}" in capsys.readouterr().out


def test_no_placeholder_commands() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == ["audit", "bench", "demo", "detect", "publish", "report", "zoo"]


def test_user_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = _run("report", str(tmp_path / "missing.json"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"genaudit: error: results file not found: {tmp_path / 'missing.json'}"]
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = _run("--debug", "report", str(tmp_path / "missing.json"))
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "InputError" in proc.stderr


def test_not_json_results(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["report", str(bad)]) == 2
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}', encoding="utf-8")
    assert main(["report", str(other)]) == 2


def test_unknown_zoo_model_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "show", "nope"]) == 2
    assert "unknown zoo model 'nope'" in capsys.readouterr().err
