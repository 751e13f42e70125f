"""The optional NSFW check (NudeNet): labels on known photos, flag counting, and what the card hides."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from audit.dataset.nsfw import EXPLICIT, explicit_labels, nsfw_composition
from audit.errors import InputError, WeightsError


def test_explicit_labels_use_the_threshold_and_ignore_covered_parts() -> None:
    labels = {"FEMALE_BREAST_EXPOSED": 0.5, "BUTTOCKS_EXPOSED": 0.49, "FEMALE_BREAST_COVERED": 0.99, "FACE_MALE": 0.9}
    assert explicit_labels(labels) == ["FEMALE_BREAST_EXPOSED"]
    assert explicit_labels(labels, min_score=0.45) == ["BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED"]
    assert "FEET_EXPOSED" not in EXPLICIT and "BELLY_EXPOSED" not in EXPLICIT


def test_nudenet_on_known_photos_flags_nothing() -> None:
    from skimage import data

    from audit.dataset.nsfw import NudeNetChecker

    checker = NudeNetChecker()
    astronaut = checker.check(data.astronaut())
    assert astronaut["explicit"] == [] and astronaut["labels"]["FACE_FEMALE"] > 0.5
    assert checker.check(data.coffee())["explicit"] == []
    assert "AGPL-3.0" in checker.describe()["licence"]


def test_composition_counts_flagged_images_with_a_wilson_interval() -> None:
    def record(label: str, explicit: list[str]) -> dict:
        return {
            "image": f"{label}/{len(explicit)}",
            "class": label,
            "status": "ok",
            "nsfw": {"labels": {}, "explicit": explicit},
        }

    records = [record("a", ["ANUS_EXPOSED"]), record("b", ["FEMALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED"])]
    records += [record("a", []) for _ in range(8)] + [{"image": "x", "class": "a", "status": "corrupt"}]
    comp = nsfw_composition(records)
    assert (comp["checked"], comp["flagged"]) == (10, 2)
    # Wilson, 2 of 10, z = 1.96: centre (0.2 + 0.19207) / 1.38415 = 0.28326, half-width 0.22657
    assert comp["flagged_share_ci"] == pytest.approx([0.05668, 0.50984], abs=1e-5)
    assert comp["flagged_by_class"] == {"a": 1, "b": 1} and comp["by_label"]["BUTTOCKS_EXPOSED"] == 1
    assert nsfw_composition([{"image": "y", "class": "a", "status": "ok"}]).startswith("not checked")


def test_flagged_images_never_reach_the_card_thumbnails(tmp_path) -> None:
    from PIL import Image

    from audit.dataset.thumbs import class_grids
    from audit.hashing import sha256_file

    for label in ("kept", "hidden"):
        (tmp_path / label).mkdir()
        Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(tmp_path / label / "img.png")
    records = [
        {"index": i, "image": f"{label}/img.png", "class": label, "status": "ok", "faces": [],
         "sha256": sha256_file(tmp_path / label / "img.png"),
         "nsfw": {"labels": {}, "explicit": ["ANUS_EXPOSED"] if label == "hidden" else []}}
        for i, label in enumerate(("hidden", "kept"))
    ]  # fmt: skip
    grids, changed = class_grids(str(tmp_path), records)
    assert [g["class"] for g in grids] == ["kept"]
    assert changed == []


def test_audit_with_nsfw_records_labels_and_refuses_a_mixed_resume(tmp_path) -> None:
    from audit.dataset.job import run_audit
    from audit.dataset.package_images import insightface_image

    data = tmp_path / "data" / "group"
    data.mkdir(parents=True)
    shutil.copy(insightface_image("t1.jpg"), data / "t1.jpg")
    results = run_audit(str(tmp_path / "data"), tmp_path / "out", workers=1, nsfw=True, progress=False)
    doc = json.loads(results.read_text())
    assert doc["data"]["datasheet"]["measured_composition"]["nsfw"]["checked"] == 1
    assert "nudenet/320n.onnx" in doc["provenance"]["config"]["sha256"]
    (record,) = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert record["nsfw"]["explicit"] == [] and {"FACE_FEMALE", "FACE_MALE"} <= set(record["nsfw"]["labels"])
    with pytest.raises(InputError, match=r"started with other inputs or settings \(nsfw: True -> False\)"):
        run_audit(str(tmp_path / "data"), tmp_path / "out", workers=1, resume=True, progress=False)


def test_missing_nudenet_says_how_to_install_it(monkeypatch) -> None:
    from audit.dataset.nsfw import NudeNetChecker

    monkeypatch.setitem(sys.modules, "nudenet", None)
    with pytest.raises(WeightsError, match=r'pip install "genaudit\[nsfw\]".*AGPL-3\.0'):
        NudeNetChecker()
