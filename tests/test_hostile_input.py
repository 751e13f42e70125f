"""Issue 18, hostile and messy input: each class of attack that once hung, aborted or mixed a run.

Classes (the issue's numbering): 1 the walk and the loader; 2 text that reaches matplotlib, CSV and
JSON; 3 resume; 4 memory; 5 outputs and saved artefacts; 6 messages. Every test feeds the real code a
hostile input and checks the exact outcome (a reason, an error line, a round trip).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path

import numpy as np
import pytest

from audit.cli import main
from audit.errors import InputError
from tests.conftest import deadline, png_bytes, write


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


def test_an_audit_that_finds_no_images_is_one_error_not_an_empty_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "data"
    (empty / "cls").mkdir(parents=True)
    (empty / "cls" / "notes.txt").write_text("not an image")  # not listed as an image: nothing to audit
    out = tmp_path / "out"
    assert main(["-q", "audit", str(empty), "--backend", "opencv-haar", "--out", str(out)]) == 2
    assert f"no images found in {empty}" in capsys.readouterr().err
    assert not (out / "audit-results.json").exists()
    write(empty / "cls" / "bad.png", b"")  # one unreadable file is a finding, recorded with its reason
    assert main(["-q", "audit", str(empty), "--backend", "opencv-haar", "--out", str(tmp_path / "out2")]) == 0
    doc = json.loads((tmp_path / "out2" / "audit.json").read_text())
    assert doc["overall"]["images"] == 0


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["audit", "{fifo}.csv"], "manifest"),
        (["audit", "--face-records", "{fifo}.csv"], "face records file"),
        (["audit", "--datasheet-answers", "{fifo}.yaml"], "datasheet answers file"),
        (["report", "{fifo}.json"], "results file"),
    ],
)
def test_a_fifo_given_as_an_input_file_is_one_error_not_a_hang(
    tmp_path: Path, argv: list[str], what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for suffix in (".csv", ".yaml", ".json"):
        os.mkfifo(tmp_path / f"fifo{suffix}")
    out = ["--out", str(tmp_path / "out")] if argv[0] == "audit" else []  # never the default ./genaudit-audit
    with deadline(30):
        assert main([a.replace("{fifo}", str(tmp_path / "fifo")) for a in argv] + out) == 2
    err = capsys.readouterr().err
    assert f"{what} {tmp_path / 'fifo'}" in err and "a FIFO (named pipe), not a regular file" in err


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


# ---- 2. text that reaches matplotlib, CSV and JSON -------------------------------------------------------


def _svg_texts(html: str) -> str:
    """Every SVG figure of a card, decoded (the figures are base64 data URIs)."""
    import base64
    import re

    return "\n".join(
        base64.b64decode(m).decode("utf-8") for m in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", html)
    )


def test_labels_that_look_like_mathtext_are_drawn_literally(tmp_path: Path) -> None:
    faces = tmp_path / "faces.csv"
    rows = ["image,class,age,gender"]
    for label in ("$x$", "$\\frac{$", "a_b^c"):
        rows += [f'"{label}-{i}.jpg","{label}",{30 + i},{"male" if i % 2 else "female"}' for i in range(6)]
    faces.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["-q", "audit", "--face-records", str(faces), "--out", str(out)]) == 0  # '$\frac{$' once crashed
    svg = _svg_texts((out / "audit-results.html").read_text(encoding="utf-8"))
    assert "$x$" in svg and "$\\frac{$" in svg and "a_b^c" in svg


def test_a_manifest_field_over_the_csv_limit_is_one_error_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv

    manifest = tmp_path / "list.csv"
    write(tmp_path / "a.png", _image())
    huge = "x" * (csv.field_size_limit() + 10)
    manifest.write_text(f"path,caption\na.png,ok\na.png,{huge}\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["-q", "audit", str(manifest), "--backend", "opencv-haar", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{manifest}:3: not a readable CSV row" in err[0]
    assert not (out / "records.jsonl").exists()  # nothing analysed before the error


def test_manifest_rows_with_odd_bytes_nesting_and_surrogates(tmp_path: Path) -> None:
    from audit.io import open_source

    write(tmp_path / os.fsdecode(b"caf\xe9.png"), _image())
    write(tmp_path / "b.png", _image())
    csv_manifest = tmp_path / "latin1.csv"
    csv_manifest.write_bytes(b"\xef\xbb\xbfpath,label\ncaf\xe9.png,caf\xe9\n")  # a BOM, then Latin-1 bytes
    (record,) = list(open_source(csv_manifest))
    assert record.refusal is None and record.relpath == "caf\\xe9.png" and record.label == "caf\\xe9"
    jsonl = tmp_path / "rows.jsonl"
    nested = "[" * 100_000 + "]" * 100_000
    jsonl.write_text(
        f'{{"path": "b.png", "label": "lone \\ud800 surrogate"}}\n{{"path": "b.png", "x": {nested}}}\n[1]\n',
        encoding="utf-8",
    )
    records = list(open_source(jsonl))
    assert records[0].refusal is None and records[0].label == "lone \\ud800 surrogate"
    assert (records[1].refusal, records[1].refusal_message) == ("manifest_error", "line 2: JSON nested too deeply")
    assert records[2].refusal_message == "line 3: a line must be a JSON object"
    json.dumps([r.label for r in records], ensure_ascii=False).encode("utf-8")  # no encode error


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"image,class,age,gender\na.jpg,c,30,male\nb\xff.jpg,c,30,male\n", r"faces\.csv:3: not UTF-8 text"),
        (b"image,class,age,gender\na.jpg,c,30,male,extra\n", r"faces\.csv:2: more cells than header columns"),
        (b"image,class,age,gender,gender_confidence\na.jpg,c,30,male,1.5\n", r"faces\.csv:2: gender_confidence"),
        (b"image,class,age,gender,det_score\na.jpg,c,30,male,nan\n", r"faces\.csv:2: det_score must be finite"),
        (b"image,class,age,gender\na.jpg,c,30," + b"m" * 200_000 + b"\n", r"faces\.csv:2: not a readable CSV row"),
    ],
)
def test_face_records_errors_name_the_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    from audit.dataset.face_records import read_face_records

    path = write(tmp_path / "faces.csv", content)
    with pytest.raises(InputError, match=message):
        read_face_records(path)


def test_face_records_with_a_bom_are_read(tmp_path: Path) -> None:
    from audit.dataset.face_records import read_face_records

    path = write(tmp_path / "faces.csv", "\ufeffimage,class,age,gender\na.jpg,c,30,female\n".encode())
    assert read_face_records(path).images_per_class == {"c": 1}


def test_detect_evaluate_checks_face_records_before_scoring(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import detectors.noise_model

    def scoring_started(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded to score images before the face records were checked")

    monkeypatch.setattr(detectors.noise_model, "load_noise_model", scoring_started)
    for kind in ("real", "fake"):
        for i in range(3):
            write(tmp_path / kind / f"{i}.png", _image(side=16, value=40 * i + (kind == "fake")))
    bad = write(tmp_path / "faces.csv", b"image,class,age,gender\n0.png,c,thirty,male\n")
    args = ["-q", "detect", "evaluate", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake")]
    with deadline(60):
        assert main([*args, "--face-records", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "faces.csv:2: age must be a number" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["audit", "--abstain-below", "nan"], "--abstain-below: must be a finite number"),
        (["audit", "--abstain-below", "1.5"], "--abstain-below: must be between 0 and 1"),
        (["detect", "--target-fpr", "0"], "--target-fpr: must be strictly between 0 and 1"),
        (["bench", "--n", "-3"], "--n: must be at least 1"),
        (["detect", "--k", "inf"], "--k: not a whole number"),
    ],
)
def test_numbers_from_users_are_checked_up_front(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "usage:" not in err[0]


@pytest.mark.parametrize("value", ["abc", "-5", "0", "1e9"])
def test_a_bad_pixel_limit_in_the_environment_is_one_error(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GENAUDIT_MAX_PIXELS", value)
    assert main(["report", str(tmp_path / "missing.json")]) == 2
    expected = "positive" if value in ("-5", "0") else "a whole number of pixels"
    assert capsys.readouterr().err.strip() == f"genaudit: error: GENAUDIT_MAX_PIXELS must be {expected}, got {value!r}"


@pytest.mark.parametrize("weights", ['"[1.0, NaN]"', "not json", '"[1, ""two""]"', '"{""a"": 1}"'])
def test_folder_generator_step_weights_are_checked(tmp_path: Path, weights: str) -> None:
    from audit.generators import GenerationRequest, get_generator
    from audit.generators.folder import cell_folder
    from audit.guidance import get_schedule

    schedule = get_schedule("static", 1.0)
    folder = tmp_path / cell_folder(schedule)
    write(folder / "a.png", _image(side=8))
    (folder / "manifest.csv").write_text(f"path,label,seed,step_weights\na.png,3,11,{weights}\n", encoding="utf-8")
    gen = get_generator(f"folder:{tmp_path}")
    with pytest.raises(InputError, match=r"manifest\.csv: a\.png: step_weights must be"):
        gen.generate(GenerationRequest(seeds=[11], labels=[3], steps=2, schedule=schedule))


def test_yaml_answers_alias_bomb_and_wrong_shapes_are_refused(tmp_path: Path) -> None:
    from audit.dataset.datasheet import read_answers

    bomb = ["a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        bomb.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    bomb.append("Motivation: {'For what purpose was the dataset created?': *i}")
    path = write(tmp_path / "bomb.yaml", "\n".join(bomb).encode())
    assert path.stat().st_size < 1000  # 9^9 = 387 million strings once expanded
    with deadline(20), pytest.raises(InputError, match="alias bomb"):
        read_answers(path)
    path.write_text("- Motivation\n- Uses\n", encoding="utf-8")
    with pytest.raises(InputError, match="expected sections as a mapping"):
        read_answers(path)
    path.write_text("Motivation:\n  - a list\n", encoding="utf-8")
    with pytest.raises(InputError, match="Motivation: expected questions as a mapping"):
        read_answers(path)
    path.write_text("a: &a [*a]\n", encoding="utf-8")
    with pytest.raises(InputError, match="recursive alias"):
        read_answers(path)


# ---- 3. resume never mixes or drops ----------------------------------------------------------------------


def _faces_folder(root: Path) -> Path:
    """Three small real photographs (one with a face) in two classes."""
    from PIL import Image
    from skimage import data

    for i, (label, image) in enumerate((("p", data.astronaut()), ("t", data.coffee()), ("t", data.chelsea()))):
        write(root / label / f"{i}.png", b"")
        Image.fromarray(image[::2, ::2]).save(root / label / f"{i}.png")
    return root


def test_resume_refuses_other_settings_and_inputs_naming_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audit.dataset.run import run_records

    root = _faces_folder(tmp_path / "ds")
    manifest = root / "list.csv"
    manifest.write_text("path,label\np/0.png,a\nt/1.png,b\n", encoding="utf-8")
    out = tmp_path / "out"
    run_records(str(manifest), out, backend="opencv-haar", workers=1, progress=False)
    with pytest.raises(InputError, match=r"backend: 'opencv-haar\+agegender' -> 'dlib\+agegender'"):
        run_records(str(manifest), out, backend="dlib-agegender", workers=1, resume=True, progress=False)
    with pytest.raises(InputError, match=r"nsfw: False -> True"):
        run_records(str(manifest), out, backend="opencv-haar", workers=1, resume=True, nsfw=True, progress=False)
    monkeypatch.setenv("GENAUDIT_MAX_PIXELS", "1000")
    with pytest.raises(InputError, match=r"max_pixels: 89478485 -> 1000"):
        run_records(str(manifest), out, backend="opencv-haar", workers=1, resume=True, progress=False)
    monkeypatch.delenv("GENAUDIT_MAX_PIXELS")
    manifest.write_text("path,label\np/0.png,a\nt/2.png,b\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"dataset\.sha256: '[0-9a-f]{64}' -> '[0-9a-f]{64}'"):
        run_records(str(manifest), out, backend="opencv-haar", workers=1, resume=True, progress=False)
    (out / "records.run.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"records\.run\.json is damaged"):
        run_records(str(manifest), out, backend="opencv-haar", workers=1, resume=True, progress=False)


def test_resume_refuses_a_folder_whose_listing_changed(tmp_path: Path) -> None:
    from audit.dataset.run import run_records

    root = _faces_folder(tmp_path / "ds")
    out = tmp_path / "out"
    run_records(str(root), out, backend="opencv-haar", workers=1, progress=False)
    lines = (out / "records.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (out / "records.jsonl").write_text("".join(lines[:2]), encoding="utf-8")  # killed after two records
    write(root / "a-first" / "new.png", _image())  # sorts before every recorded image
    with pytest.raises(InputError, match=r"the dataset changed since this audit started: item 0 was 'p/0\.png'"):
        run_records(str(root), out, backend="opencv-haar", workers=1, resume=True, progress=False)


@pytest.mark.parametrize("records_format", ["jsonl", "parquet"])
def test_duplicate_manifest_rows_are_neither_dropped_nor_doubled_on_resume(tmp_path: Path, records_format: str) -> None:
    from audit.dataset.job import run_audit
    from audit.dataset.record_store import read_records
    from audit.dataset.run import RECORDS_FORMATS

    root = _faces_folder(tmp_path / "ds")
    manifest = root / "list.csv"
    manifest.write_text("path,label\np/0.png,a\np/0.png,a\nt/1.png,b\np/0.png,a\nt/2.png,b\n", encoding="utf-8")
    name = RECORDS_FORMATS[records_format]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    options = {"backend": "opencv-haar", "workers": 1, "records_format": records_format, "progress": False}
    run_audit(str(manifest), whole, **options)
    complete = read_records(whole / name)
    assert [(r["index"], r["image"]) for r in complete] == [
        (0, "p/0.png"), (1, "p/0.png"), (2, "t/1.png"), (3, "p/0.png"), (4, "t/2.png")
    ]  # fmt: skip
    # the same run killed after its first two records (both p/0.png), then resumed
    from audit.dataset.record_store import record_store
    from audit.dataset.run import records_identity
    from audit.run_identity import start_or_resume

    start_or_resume(cut / "records.run.json", records_identity(str(manifest), "opencv-haar", False),
                    resume=False, started=False, what="an audit")  # fmt: skip
    store = record_store(cut / name)
    for record in complete[:2]:
        store.append(record)
    store._journal.close() if records_format == "parquet" else store.close()  # no flush: as after a kill
    run_audit(str(manifest), cut, resume=True, **options)
    assert read_records(cut / name) == complete
    if records_format == "jsonl":
        assert (cut / name).read_bytes() == (whole / name).read_bytes()
    summary = [json.loads((folder / "audit.json").read_text())["overall"] for folder in (whole, cut)]
    assert summary[0] == summary[1] and summary[0]["images"] == 5


def test_a_file_changed_after_it_was_recorded_is_reported_not_an_internal_error(tmp_path: Path) -> None:
    from audit.dataset.job import run_audit

    root = _faces_folder(tmp_path / "ds")
    out = tmp_path / "out"
    run_audit(str(root), out, backend="opencv-haar", workers=1, progress=False)
    write(root / "t" / "1.png", _image(value=7))  # replaced by other pixels
    (root / "t" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # damaged
    resumed = json.loads(run_audit(str(root), out, backend="opencv-haar", workers=1, resume=True,
                                   progress=False).read_text())  # fmt: skip
    assert resumed["data"]["thumbnails"]["changed_since_recorded"] == ["t/1.png", "t/2.png"]
    assert [g["class"] for g in resumed["data"]["thumbnails"]["grids"]] == ["p"]


# ---- 5. outputs and saved artefacts ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real detector fitted on random log-normal features and saved by the real code."""
    from detectors.detector import ReconstructionDetector

    rng = np.random.default_rng(0)
    det = ReconstructionDetector().fit(rng.lognormal(size=(40, 6)), np.repeat([0, 1], 20))
    return det.save(tmp_path_factory.mktemp("det") / "detector.json", {"model": "embedded:digits-ddpm"})


def _copy_detector(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copy(src, dst / src.name)
    shutil.copy(src.with_suffix(".safetensors"), dst / src.with_suffix(".safetensors").name)
    return dst / src.name


def test_an_edited_threshold_in_a_saved_detector_is_refused(saved_detector: Path, tmp_path: Path) -> None:
    from audit.errors import WeightsError
    from detectors.detector import ReconstructionDetector

    det, _ = ReconstructionDetector.load(saved_detector)  # intact: loads
    assert np.isfinite(det.threshold_)
    copy = _copy_detector(saved_detector, tmp_path)
    doc = json.loads(copy.read_text())
    edits = (("threshold", doc["threshold"] + 1.0), ("params", {**doc["params"], "target_fpr": 0.5}),
             ("C_chosen", [c * 10 + 1 for c in doc["C_chosen"]]),
             ("meta", {"model": "diffusers:/elsewhere"}))  # fmt: skip
    for edit in edits:
        copy.write_text(json.dumps({**doc, edit[0]: edit[1]}), encoding="utf-8")
        with pytest.raises(WeightsError, match=r"^corrupt detector: .*do not match the sha256"):
            ReconstructionDetector.load(copy)


def test_a_detector_loads_from_the_folder_it_was_saved_in(saved_detector: Path, tmp_path: Path) -> None:
    """``detect calibrate --out FOLDER`` writes FOLDER/detector.json: ``--detector FOLDER`` must read it back
    (the folder was once read as a file: IsADirectoryError)."""
    from audit.errors import WeightsError
    from detectors.detector import ReconstructionDetector

    rows = np.random.default_rng(1).lognormal(size=(5, 6))
    by_file, meta = ReconstructionDetector.load(saved_detector)
    by_folder, folder_meta = ReconstructionDetector.load(saved_detector.parent)
    assert folder_meta == meta and by_folder.threshold_ == by_file.threshold_
    np.testing.assert_array_equal(by_folder.decision_function(rows), by_file.decision_function(rows))
    with pytest.raises(WeightsError, match=r"^cannot read detector .*detector\.json: FileNotFoundError"):
        ReconstructionDetector.load(tmp_path)  # a folder without one: named, one line


@pytest.mark.parametrize(
    "damage",
    ["missing keys", "wrong shapes", "garbage arrays", "not json", "nan"],
)
def test_a_structurally_damaged_detector_is_one_line(saved_detector: Path, tmp_path: Path, damage: str) -> None:
    from safetensors.numpy import load_file, save_file

    from audit.errors import WeightsError
    from audit.hashing import sha256_file
    from detectors.detector import ReconstructionDetector, _document_sha256

    copy = _copy_detector(saved_detector, tmp_path)
    arrays = copy.with_suffix(".safetensors")
    doc = json.loads(copy.read_text())
    if damage == "missing keys":
        doc.pop("threshold")
        doc["sha256"] = _document_sha256(doc)  # forged consistently: the structure check must still catch it
    elif damage == "wrong shapes":
        tensors = load_file(arrays)
        tensors["mean_"] = tensors["mean_"][:, :3]
        save_file(tensors, arrays)
        doc["arrays"]["sha256"] = sha256_file(arrays)
        doc["sha256"] = _document_sha256(doc)
    elif damage == "garbage arrays":
        arrays.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
        doc["arrays"]["sha256"] = sha256_file(arrays)
        doc["sha256"] = _document_sha256(doc)
    if damage == "not json":
        copy.write_text('{"format": "genaudit.detector/2", "params": [[[', encoding="utf-8")
    elif damage == "nan":
        copy.write_text(json.dumps(doc).replace('"threshold": ', '"threshold": NaN, "x": '), encoding="utf-8")
    else:
        copy.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(WeightsError) as exc:
        ReconstructionDetector.load(copy)
    message = str(exc.value)
    assert "\n" not in message and str(copy) in message
    assert message.startswith(("corrupt detector: ", "cannot read detector "))


@pytest.mark.parametrize(
    ("out", "error"),
    [
        ("det.safetensors", "give a .json file"),
        ("det", "give a .json file"),
        ("results.json", "exists and is not a genaudit detector"),
        ("orphan.json", "orphan.safetensors exists without its detector JSON"),
    ],
)
def test_calibrate_out_takes_one_form_and_never_overwrites_the_wrong_file(tmp_path: Path, out: str, error: str) -> None:
    from detectors.job import calibrate, detector_paths

    (tmp_path / "results.json").write_text('{"schema": "genaudit.results/1"}', encoding="utf-8")
    (tmp_path / "orphan.safetensors").write_bytes(b"arrays")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(InputError, match=error):
        calibrate([str(tmp_path)], [str(tmp_path)], tmp_path / out)  # refused before any image is read
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert detector_paths(tmp_path) == (tmp_path / "detector.json", tmp_path / "detector.safetensors")
    new = tmp_path / "new"
    assert detector_paths(f"{new}/") == (new / "detector.json", new / "detector.safetensors")
    assert detector_paths(tmp_path / "d.json")[1] == tmp_path / "d.safetensors"


def _results_doc(tmp_path: Path, name: str = "r.json") -> Path:
    from audit.dataset.job import run_audit

    faces = write(tmp_path / "faces.csv", b"image,class,age,gender\na.jpg,c,30,male\nb.jpg,c,40,female\n")
    return run_audit(None, tmp_path / "audit", face_records=faces)


def test_report_never_overwrites_its_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = _results_doc(tmp_path)
    before = results.read_bytes()
    link = tmp_path / "link.json"
    link.symlink_to(results)
    for out in (results, link, tmp_path / "audit" / ".." / "audit" / results.name):
        assert main(["report", str(results), "--out", str(out)]) == 2
        assert "is the results file itself" in capsys.readouterr().err
    assert results.read_bytes() == before


def test_report_and_publish_on_incomplete_or_hostile_results(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = _results_doc(tmp_path)
    doc = json.loads(results.read_text())
    site_in = tmp_path / "in"
    del doc["data"]["overall"]
    write(site_in / "incomplete.json", json.dumps(doc).encode())
    deep = b"[" * 200_000 + b"]" * 200_000
    write(site_in / "nested.json", b'{"schema": "genaudit.results/1", "data": ' + deep + b"}")
    write(site_in / "other.json", b'{"not": "ours"}')
    write(site_in / "good.json", results.read_bytes())
    assert main(["report", str(site_in / "incomplete.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = "incomplete.json: its dataset-audit data cannot be drawn (missing field 'overall')"
    assert len(err) == 1 and expected in err[0]
    assert main(["-q", "publish", str(site_in), str(site_in / "other.json"), "--out", str(tmp_path / "site")]) == 0
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert index.count('class="tile"') == 1  # the good one
    for name in ("incomplete.json", "nested.json", "other.json"):
        assert name in index
    assert "nested too deeply" in index and "not a genaudit results file" in index


def test_out_that_is_a_file_or_too_long_a_name_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    faces = write(tmp_path / "faces.csv", b"image,class,age,gender\na.jpg,c,30,male\n")
    a_file = write(tmp_path / "taken", b"x")
    assert main(["-q", "audit", "--face-records", str(faces), "--out", str(a_file)]) == 2
    assert f"output folder {a_file} is a file" in capsys.readouterr().err  # said before anything is read
    assert main(["-q", "audit", str(tmp_path), "--backend", "opencv-haar", "--out", str(a_file)]) == 2
    assert f"output folder {a_file} is a file" in capsys.readouterr().err
    results = _results_doc(tmp_path)
    long_name = tmp_path / ("x" * 251 + ".html")
    assert main(["report", str(results), "--out", str(long_name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "File name too long" in err[0]
    assert main(["report", str(results), "--out", str(tmp_path / ("y" * 240 + ".html"))]) == 0  # long but legal


def test_a_thousand_classes_of_face_records_audit_and_render_within_budget(tmp_path: Path) -> None:
    import csv

    from reports.budget import CARD_BUDGET_BYTES

    rng = np.random.default_rng(0)
    rows = ["image,class,age,gender"]
    for c in range(1000):
        for i in range(c % 7 + 1):
            rows.append(f"c{c}-{i}.jpg,class-{c:04d},{rng.integers(5, 80)},{rng.choice(['male', 'female'])}")
    faces = tmp_path / "faces.csv"
    faces.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["-q", "audit", "--face-records", str(faces), "--out", str(out)]) == 0
    html = (out / "audit-results.html").read_text(encoding="utf-8")
    assert len(html.encode()) < CARD_BUDGET_BYTES
    assert "The dataset has 1,000 classes: the per-class table and figures show the 20 with the most faces" in html
    doc = json.loads((out / "audit-results.json").read_text())
    assert len(doc["data"]["classes"]) == 1000  # the JSON twin keeps every class
    with (out / "classes.csv").open(encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 1001 and table[-1]["class"] == "overall"
    assert int(table[6]["faces"]) == 7 and table[6]["class"] == "class-0006"


def test_labels_cannot_run_as_spreadsheet_formulas_and_numbers_stay_numbers(tmp_path: Path) -> None:
    """classes.csv is opened in spreadsheets: a class named like a formula gets a quote in front (OWASP's CSV
    injection advice); a class that is a plain number is left as it is, and the JSON twin keeps every name."""
    import csv

    from audit.io.names import spreadsheet_text

    assert [spreadsheet_text(v) for v in ("=1+2", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx")] == [
        "'=1+2", "'+cmd|' /C calc'!A0", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx"]  # fmt: skip
    assert [spreadsheet_text(v) for v in ("-1", "+2.5e3", "-.5", "a=b", "", None, 7)] == [
        "-1", "+2.5e3", "-.5", "a=b", "", "", "7"]  # fmt: skip
    classes = ['=HYPERLINK("http://x.example","y")', "-1", "@SUM(A1)", "plain"]
    rows = ["image,class,age,gender"] + [f'i{i}.jpg,"{c.replace(chr(34), chr(34) * 2)}",30,female'
                                         for i, c in enumerate(classes)]  # fmt: skip
    faces = tmp_path / "faces.csv"
    faces.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["-q", "audit", "--face-records", str(faces), "--out", str(out)]) == 0
    with (out / "classes.csv").open(encoding="utf-8", newline="") as fh:
        written = sorted(r["class"] for r in csv.DictReader(fh))
    assert written == sorted(["'" + classes[0], "-1", "'@SUM(A1)", "plain", "overall"])
    doc = json.loads((out / "audit-results.json").read_text())
    assert sorted(c["class"] for c in doc["data"]["classes"]) == sorted(classes)


# ---- 4. memory that does not grow with the data ------------------------------------------------------------


def test_near_duplicates_of_3000_copies_among_100000_images_in_bounded_memory() -> None:
    import tracemalloc

    from audit.dataset.datasheet import composition

    rng = np.random.default_rng(0)
    base = 0x0123456789ABCDEF
    near = [base] * 1000 + [base ^ 1] * 1000 + [base ^ 2] * 1000  # within 2 bits of one another: one cluster
    ordinary = rng.integers(0, 2**63, size=100_000, dtype=np.int64).astype(np.uint64).tolist()
    records = [
        {"image": f"i{n}.png", "class": "c", "status": "ok", "sha256": f"s{n}", "dhash": f"{h:016x}", "faces": [],
         "width": 8, "height": 8}
        for n, h in enumerate(near + ordinary)
    ]  # fmt: skip
    tracemalloc.start()
    comp = composition(records)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    near_dups = comp["near_duplicates"]
    assert near_dups["pairs"] == 3000 * 2999 // 2 and near_dups["clusters"] == 1
    assert near_dups["images_in_clusters"] == 3000 and near_dups["examples"][0]["size"] == 3000
    assert len(near_dups["examples"][0]["images"]) == 10  # a cluster is named by examples, never every pair
    # the pairwise search held a 1024 x N block of 64-bit counts: 1024 x 103,000 x 8 x 8 bytes = 6.7 GB
    assert peak < 400e6, f"peak {peak / 1e6:.0f} MB"


def test_near_duplicate_clusters_equal_a_brute_force_search() -> None:
    from audit.dataset.near_duplicates import near_duplicates

    rng = np.random.default_rng(1)
    values = []
    for b in rng.integers(0, 2**63, size=30, dtype=np.int64).tolist():
        for _ in range(int(rng.integers(1, 6))):
            v = int(b)
            for bit in rng.choice(64, size=int(rng.integers(0, 6)), replace=False).tolist():
                v ^= 1 << bit
            values.append(v)
    values += values[:8]  # exact repeats
    hashes = [f"{v:016x}" for v in values]
    close = [(i, j) for i in range(len(values)) for j in range(i + 1, len(values))
             if bin(values[i] ^ values[j]).count("1") <= 4]  # fmt: skip
    parent = list(range(len(values)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in close:
        a, b = root(i), root(j)
        parent[max(a, b)] = min(a, b)
    members: dict[int, list[int]] = {}
    for i in range(len(values)):
        members.setdefault(root(i), []).append(i)
    expected = sorted((m for m in members.values() if len(m) > 1), key=lambda m: (-len(m), m[0]))
    found = near_duplicates(hashes, 4)
    assert found.pairs == len(close) > 0 and found.clusters == expected


def test_detect_streams_its_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Peak memory of ``detect`` is one chunk of decoded images, whatever the number of images."""
    import tracemalloc

    from detectors import image_files, job
    from detectors.detector import ReconstructionDetector
    from detectors.noise_model import load_noise_model

    monkeypatch.setattr(image_files, "CHUNK_IMAGES", 4)
    rng = np.random.default_rng(0)
    for i in range(60):
        write(tmp_path / "many" / f"{i:03d}.png", png_bytes(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)))
    (tmp_path / "few").mkdir()
    for i in range(6):
        (tmp_path / "few" / f"{i:03d}.png").write_bytes((tmp_path / "many" / f"{i:03d}.png").read_bytes())
    config = {"name": "diffusion-loss", "k": 4, "noise_sets": 1, "classes": False}
    model = load_noise_model(job.DEFAULT_MODEL)
    scorer = job.build_scorer(config, model)
    names = scorer.feature_names(model)
    det = ReconstructionDetector().fit(rng.lognormal(size=(40, len(names))), np.repeat([0, 1], 20))
    saved = det.save(tmp_path / "det.json", {"model": job.DEFAULT_MODEL, "scorer": scorer.config(),
                                             "feature_names": names})  # fmt: skip
    peaks = {}
    for folder in ("few", "many"):
        tracemalloc.start()
        job.detect([str(tmp_path / folder)], tmp_path / f"out-{folder}", detector_file=saved)
        peaks[folder] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # holding the 60 decoded images would take 60 x 0.79 MB = 47 MB more than the 6
    assert peaks["many"] < peaks["few"] + 10e6, {k: f"{v / 1e6:.0f} MB" for k, v in peaks.items()}
    with (tmp_path / "out-many" / "detections.csv").open(encoding="utf-8") as fh:
        assert len(fh.read().splitlines()) == 61


# ---- 6. messages -------------------------------------------------------------------------------------------


def _jpeg_with_truncated_exif(path: Path) -> Path:
    """A JPEG whose EXIF block promises more bytes than it has: Pillow warns 'Truncated File Read'."""
    import io
    import struct

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(buf, "JPEG")
    entries = struct.pack("<HHII", 0x010F, 2, 50, 1000) + struct.pack("<HHII", 0x0112, 3, 1, 1)
    tiff = b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 2) + entries + b"\x00\x00\x00\x00"
    app1 = b"\xff\xe1" + struct.pack(">H", len(tiff) + 8) + b"Exif\x00\x00" + tiff
    data = buf.getvalue()
    return write(path, data[:2] + app1 + data[2:])


def test_third_party_warnings_reach_the_user_only_with_debug(tmp_path: Path) -> None:
    import subprocess
    import sys

    _jpeg_with_truncated_exif(tmp_path / "data" / "exif.jpg")

    def run(*flags: str) -> subprocess.CompletedProcess[str]:
        args = [*flags, "audit", str(tmp_path / "data"), "--backend", "opencv-haar", "--out", str(tmp_path / "o")]
        command = [sys.executable, "-m", "audit.cli", "-q", *args]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)

    quiet = run()
    assert quiet.returncode == 0 and "Warning" not in quiet.stderr, quiet.stderr
    import shutil

    shutil.rmtree(tmp_path / "o")
    debug = run("--debug")
    assert debug.returncode == 0 and "UserWarning: Truncated File Read" in debug.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["audit", "--datasheet-answers", "{bad}"], "bad.yaml: not valid YAML"),
        (["audit", "--backend", "nope"], "unknown face detector 'nope'"),
        (["audit", "{dir}", "--backend", "insightface:/no/pack", "--workers", "2"], "/no/pack has no .onnx files"),
        (["audit", "{dir}", "--face-records", "{faces}"], "give a dataset or --face-records, not both"),
        (["detect", "{dir}", "--detector", "{bad}"], "cannot read detector"),
        (["publish", "{dir}", "--out", "{dir}/site"], "no genaudit results JSON could be published"),
    ],
)
def test_errors_are_one_line_naming_what_is_at_fault(
    tmp_path: Path, argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path / "bad.yaml", b"Motivation: [unclosed\n  - x: {\n")
    faces = write(tmp_path / "faces.csv", b"image,class,age,gender\na.jpg,c,30,male\n")
    write(tmp_path / "img.png", _image())  # work for the workers
    values = {"{bad}": str(bad), "{dir}": str(tmp_path), "{faces}": str(faces), "{dir}/site": str(tmp_path / "s")}
    out = [] if argv[0] == "publish" else ["--out", str(tmp_path / "out")]  # never the default ./genaudit-audit
    code = main(["-q", *[values.get(a, a) for a in argv], *out])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("genaudit: error: ") and expected in err, err
