"""``genaudit audit``: the builtin demo's known faces, face records, unreadable files, resume, the card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audit.cli import main
from audit.dataset.record_store import read_records
from audit.dataset.run import RECORDS_FILE
from tests.conftest import HOSTILE


@pytest.fixture(scope="module")
def demo_audit(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("audit") / "demo"
    assert main(["-q", "audit", "--out", str(out)]) == 0
    return out


def test_builtin_demo_figures(demo_audit: Path) -> None:
    audit = json.loads((demo_audit / "audit.json").read_text())
    classes = {c["class"]: c for c in audit["classes"]}
    assert set(classes) == {"group", "portrait", "lfw", "no-people"}
    assert (classes["group"]["images"], classes["group"]["faces"]) == (1, 6)  # t1.jpg: six people
    assert classes["no-people"]["faces"] == 0 and classes["no-people"]["gender_skewness"] is None
    assert classes["lfw"]["images"] == 30 and classes["lfw"]["images_with_faces"] >= 25
    overall = audit["overall"]
    assert overall["images"] == 49 and overall["faces"] == sum(c["faces"] for c in classes.values())
    lo, hi = overall["female_share_ci"]
    assert lo < overall["female_share"] < hi
    records = read_records(demo_audit / RECORDS_FILE)
    assert len(records) == 49 and all("crop" not in json.dumps(r) for r in records)  # boxes, not pixels


def test_card_carries_the_observed_misgendering(demo_audit: Path) -> None:
    doc = json.loads((demo_audit / "audit-results.json").read_text())
    known = doc["data"]["known_faces"]
    assert known["misgendered"] == 2  # one man in t1.jpg and Grace Hopper
    html = (demo_audit / "audit-results.html").read_text()
    assert "portrait/grace_hopper.jpg" in html and "perceived" in html and "not facts" in html
    assert doc["provenance"]["config"]["sha256"]["age-v1.onnx"]  # model file hashes in the provenance


def test_face_records_give_the_hand_worked_skewness(tmp_path: Path) -> None:
    path = tmp_path / "faces.csv"
    rows = ["image,class,age,gender"] + [f"m{i}.jpg,{HOSTILE},40,male" for i in range(690)]
    rows += [f"f{i}.jpg,{HOSTILE},30,F" for i in range(104)] + ["empty.jpg,other,,"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert main(["-q", "audit", "--face-records", str(path), "--out", str(tmp_path / "out")]) == 0
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    cls = next(c for c in audit["classes"] if c["class"] == HOSTILE)
    assert round(cls["gender_skewness"], 4) == -2.1875 and cls["faces"] == 794
    assert next(c for c in audit["classes"] if c["class"] == "other")["faces_per_image"] == 0.0
    html = (tmp_path / "out" / "audit-results.html").read_text()
    assert HOSTILE not in html  # escaped, never markup


def test_unreadable_files_are_counted_and_an_interrupted_audit_resumes(tmp_path: Path) -> None:
    from PIL import Image
    from skimage import data

    from audit.dataset.job import run_audit

    root = tmp_path / "ds"
    (root / "people").mkdir(parents=True)
    (root / "things").mkdir()
    Image.fromarray(data.astronaut()).save(root / "people" / "a.png")
    Image.fromarray(data.coffee()).save(root / "things" / "coffee.jpg")
    (root / "things" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "people" / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    first = run_audit(str(root), out, workers=1, progress=False)
    records = read_records(out / RECORDS_FILE)
    assert [(r["image"], r["status"]) for r in records] == [
        ("people/a.png", "ok"),
        ("people/empty.png", "empty"),
        ("things/broken.jpg", "truncated"),
        ("things/coffee.jpg", "ok"),
    ]
    baseline = json.loads(first.read_text())["data"]
    assert baseline["unreadable"]["count"] == 2 and baseline["overall"]["images"] == 2
    # a kill mid-write: the last line torn, one image never recorded
    lines = (out / RECORDS_FILE).read_bytes().splitlines(keepends=True)
    (out / RECORDS_FILE).write_bytes(b"".join(lines[:2]) + lines[2][:10])
    with pytest.raises(Exception, match="--resume"):
        run_audit(str(root), out, workers=1, progress=False)
    again = run_audit(str(root), out, workers=2, resume=True, progress=False)
    assert len(read_records(out / RECORDS_FILE)) == 4
    resumed = json.loads(again.read_text())["data"]
    assert resumed["classes"] == baseline["classes"] and resumed["overall"] == baseline["overall"]
    assert np.isclose(resumed["overall"]["faces"], 1)  # the astronaut


def test_datasheet_measures_composition_and_takes_the_owners_answers(demo_audit: Path, tmp_path: Path) -> None:
    doc = json.loads((demo_audit / "audit-results.json").read_text())
    comp = doc["data"]["datasheet"]["measured_composition"]
    assert (comp["instances"], comp["readable"]) == (49, 49)
    assert comp["classes"] == {"group": 1, "lfw": 30, "no-people": 14, "portrait": 4}
    assert comp["images_with_faces"] == doc["data"]["overall"]["images_with_faces"]
    assert comp["exact_duplicates"]["groups"] == 0 and comp["gps_tagged"] == 0
    assert "_Unanswered._" in (demo_audit / "datasheet.md").read_text()

    answers = tmp_path / "answers.yaml"
    assert main(["audit", "init-datasheet", "--out", str(answers)]) == 0
    assert main(["audit", "init-datasheet", "--out", str(answers)]) == 2  # never overwrites answers
    text = answers.read_text().replace(
        "'Who funded the creation of the dataset?': ''", "'Who funded the creation of the dataset?': 'Nobody'"
    )
    answers.write_text(text)
    faces = tmp_path / "faces.csv"
    faces.write_text("image,class,age,gender\na.jpg,x,30,f\nb.jpg,x,40,m\n")
    out = tmp_path / "out"
    assert (
        main(["-q", "audit", "--face-records", str(faces), "--datasheet-answers", str(answers), "--out", str(out)]) == 0
    )
    md = (out / "datasheet.md").read_text()
    assert "**Who funded the creation of the dataset?**\n\nNobody" in md
    assert "1 of 27 questions answered" in (out / "audit-results.html").read_text()


def test_two_backends_side_by_side_with_their_disagreement(tmp_path: Path) -> None:
    import shutil

    from audit.dataset.package_images import insightface_image

    root = tmp_path / "ds"
    (root / "people").mkdir(parents=True)
    shutil.copy(insightface_image("t1.jpg"), root / "people" / "t1.jpg")
    out = tmp_path / "out"
    assert main(["-q", "audit", str(root), "--compare", "opencv-haar", "--workers", "1", "--out", str(out)]) == 0
    data = json.loads((out / "audit-results.json").read_text())["data"]
    d = data["comparison"]["disagreement"]
    assert data["overall"]["faces"] == 6 and data["comparison"]["overall"]["faces"] == 4  # dlib 6, Haar 4
    assert d["faces_matched"] + d["faces_only_first"] == 6 and d["faces_matched"] + d["faces_only_second"] == 4
    found = d["faces_matched"] + d["faces_only_first"] + d["faces_only_second"]
    assert d["detection_disagreement"] == pytest.approx((d["faces_only_first"] + d["faces_only_second"]) / found)
    assert (out / "records-opencv-haar.jsonl").is_file()
    assert "Two backends on the same images" in (out / "audit-results.html").read_text()
    assert main(["audit", "--compare", "dlib-agegender", "--out", str(tmp_path / "x")]) == 2


def test_card_samples_are_blurred_by_default(demo_audit: Path) -> None:
    from audit.io.encode import decode_png_base64

    thumbs = json.loads((demo_audit / "audit-results.json").read_text())["data"]["thumbnails"]
    assert thumbs["faces_blurred"] is True
    assert [g["class"] for g in thumbs["grids"]] == ["group", "lfw", "no-people", "portrait"]
    grid = decode_png_base64(thumbs["grids"][0]["png"])
    assert grid.shape == (96 + 4, 8 * 98 + 2, 3)  # one row of up to eight 96 px cells
    assert "Every detected face is blurred" in (demo_audit / "audit-results.html").read_text()
