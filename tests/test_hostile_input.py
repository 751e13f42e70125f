"""Issue 18, hostile and messy input: each class of attack that once hung, aborted or mixed a run.

Classes (the issue's numbering): 1 the walk and the loader; 2 text that reaches matplotlib, CSV and
JSON; 3 resume; 4 memory; 5 outputs and saved artefacts; 6 messages. Every test feeds the real code a
hostile input and checks the exact outcome (a reason, an error line, a round trip).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from audit.cli import main
from audit.errors import InputError
from tests.conftest import png_bytes, write


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging CI) if the block runs longer than ``seconds``."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _image(side: int = 24, value: int = 90) -> bytes:
    return png_bytes(np.full((side, side, 3), value, np.uint8))


@pytest.fixture
def special_files(tmp_path: Path) -> Path:
    """A dataset folder with one good image and every kind of file that is not a regular image file."""
    root = tmp_path / "data"
    write(root / "cls" / "good.png", _image())
    os.mkfifo(root / "cls" / "fifo.png")
    os.mkfifo(tmp_path / "outside-fifo")
    (root / "cls" / "link-to-fifo.png").symlink_to(root / "cls" / "fifo.png")
    (root / "cls" / "chardev.png").symlink_to("/dev/zero")  # reads without end if ever opened
    (root / "cls" / "dangling.png").symlink_to(root / "cls" / "nowhere.png")
    (root / "cls" / "loop-a.png").symlink_to(root / "cls" / "loop-b.png")
    (root / "cls" / "loop-b.png").symlink_to(root / "cls" / "loop-a.png")
    (root / ".adir").mkdir()  # hidden: never walked itself
    (root / "cls" / "dirlink.png").symlink_to(root / ".adir")
    # a socket: bound in a short temporary folder (socket paths are limited to about 100 bytes)
    with tempfile.TemporaryDirectory(dir="/tmp") as short:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(os.path.join(short, "s"))
        os.rename(os.path.join(short, "s"), root / "cls" / "sock.png")
        sock.close()
    return root


EXPECTED_SPECIAL = {
    "cls/good.png": "ok",
    "cls/fifo.png": "not_a_file",
    "cls/link-to-fifo.png": "not_a_file",
    "cls/chardev.png": "outside_root",  # /dev/zero is outside the dataset folder; not_a_file when allowed
    "cls/dangling.png": "missing",
    "cls/loop-a.png": "unreadable",
    "cls/loop-b.png": "unreadable",
    "cls/dirlink.png": "not_a_file",
    "cls/sock.png": "not_a_file",
}


# ---- 1. the walk and the loader ----------------------------------------------------------------------------


def test_only_regular_files_are_opened_and_every_other_entry_gets_a_reason(special_files: Path) -> None:
    from audit.io import iter_images, open_source

    for allow_outside, chardev in ((False, "outside_root"), (True, "not_a_file")):
        with deadline(30):
            outcome = {
                item.record.relpath: "ok" if item.ok else item.result.reason
                for item in iter_images(open_source(special_files, allow_outside_root=allow_outside), workers=2)
            }
        assert outcome == {**EXPECTED_SPECIAL, "cls/chardev.png": chardev}


def test_a_manifest_naming_special_files_gets_the_same_reasons(special_files: Path) -> None:
    from audit.io import iter_images, open_source

    manifest = special_files / "list.csv"
    manifest.write_text("path\n" + "\n".join(EXPECTED_SPECIAL) + "\ncls\n", encoding="utf-8")
    with deadline(30):
        outcome = {i.record.relpath: "ok" if i.ok else i.result.reason for i in iter_images(open_source(manifest))}
    assert outcome == {**EXPECTED_SPECIAL, "cls": "not_a_file"}  # a directory named in a manifest too


def test_audit_over_special_files_records_each_reason_and_finishes(special_files: Path, tmp_path: Path) -> None:
    from audit.dataset.record_store import read_records

    out = tmp_path / "out"
    with deadline(240):
        assert main(["-q", "audit", str(special_files), "--backend", "opencv-haar", "--out", str(out)]) == 0
    statuses = {r["image"]: r["status"] for r in read_records(out / "records.jsonl")}
    assert statuses == EXPECTED_SPECIAL


def test_detect_inputs_that_are_not_files_get_reasons_not_a_hang(special_files: Path) -> None:
    from detectors.job import load_images

    with deadline(30):
        loaded = load_images([str(special_files / "cls" / "fifo.png"), str(special_files)])
    assert loaded.names == [f"{special_files}/cls/good.png"]
    reasons = dict(loaded.unreadable)
    assert reasons[str(special_files / "cls" / "fifo.png")] == "not_a_file"
    assert reasons[f"{special_files}/cls/sock.png"] == "not_a_file"
    assert load_images([str(special_files / "cls" / "chardev.png")]).unreadable[0][1] == "not_a_file"
    with pytest.raises(InputError, match="no such file or folder"):
        load_images([str(special_files / "typo")])


NON_UTF8 = b"caf\xe9-\xff<b>\"q'.png"  # Latin-1 and a stray byte, plus HTML and quotes


def test_names_that_are_not_utf8_are_recorded_escaped_and_losslessly(tmp_path: Path) -> None:
    from audit.dataset.record_store import read_records
    from audit.io.names import unescape_name

    root = tmp_path / "data"
    write(root / "ok.png", _image())
    (root / os.fsdecode(b"cls-\xfe")).mkdir()
    write(root / os.fsdecode(b"cls-\xfe") / os.fsdecode(NON_UTF8), _image(value=200))
    out = tmp_path / "out"
    assert main(["-q", "audit", str(root), "--backend", "opencv-haar", "--out", str(out)]) == 0
    records = read_records(out / "records.jsonl")
    names = sorted(r["image"] for r in records)
    assert names == ["cls-\\xfe/caf\\xe9-\\xff<b>\"q'.png", "ok.png"]
    escaped = next(r for r in records if r["image"] != "ok.png")
    assert escaped["status"] == "ok" and escaped["class"] == "cls-\\xfe"
    assert os.fsencode(unescape_name(escaped["image"])) == b"cls-\xfe/" + NON_UTF8  # lossless
    html = (out / "audit-results.html").read_text(encoding="utf-8")
    assert "cls-\\xfe" in html and "<b>" not in html
    json.loads((out / "audit-results.json").read_text(encoding="utf-8"))
    assert "\\\\xfe" in (out / "datasheet.md").read_text(encoding="utf-8") or "cls-\\xfe" in (
        out / "datasheet.md"
    ).read_text(encoding="utf-8")


def test_name_escaping_round_trips_and_is_injective() -> None:
    from audit.io.names import escape_name, unescape_name

    raw = [b"a\xff.png", b"a\\xff.png", b"a\\\\xff.png", "\u00e9\u4e2d".encode(), b"plain", b"x\\"]
    escaped = [escape_name(os.fsdecode(b)) for b in raw]
    assert len(set(escaped)) == len(raw)
    assert [os.fsencode(unescape_name(e)) for e in escaped] == raw
    assert all(e.encode("utf-8") for e in escaped)


def test_the_pixel_limit_bounds_the_upscale_for_face_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    from audit.dataset.backends import get_analyzer
    from audit.dataset.face_model import MAX_UPSCALE, upscaled_for_detection
    from audit.dataset.run import Item, analyze_item

    monkeypatch.setenv("GENAUDIT_MAX_PIXELS", "200000")
    strip = np.full((10, 15_000, 3), 128, np.uint8)  # 150,000 pixels: under the limit, 8x upscale would be 9.6 M
    detect, scale = upscaled_for_detection(strip)
    assert detect.shape[0] * detect.shape[1] <= 200_000 and 1.0 <= scale < MAX_UPSCALE
    assert scale == pytest.approx((200_000 / 150_000) ** 0.5)
    record = analyze_item(Item("strip.png", "c", pixels=strip), get_analyzer("opencv-haar"))
    assert record["status"] == "ok" and record["faces"] == []


class _FailsOnWideImages:
    """A face analyzer that raises on some images, as a third-party backend may on odd input."""

    def analyze(self, image: np.ndarray) -> list:
        if image.shape[1] > image.shape[0]:
            raise RuntimeError("cv2.error: (-215) !ssize.empty()")
        return []


def test_an_image_a_backend_fails_on_is_recorded_and_the_run_goes_on() -> None:
    from audit.dataset.run import Item, analyze_item

    analyzer = _FailsOnWideImages()
    wide = analyze_item(Item("wide.png", "c", pixels=np.zeros((8, 16, 3), np.uint8)), analyzer)
    square = analyze_item(Item("square.png", "c", pixels=np.zeros((8, 8, 3), np.uint8)), analyzer)
    assert wide["status"] == "backend_error" and "RuntimeError: cv2.error" in wide["message"]
    assert wide["faces"] == [] and square["status"] == "ok"
