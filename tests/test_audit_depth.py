"""The audit in depth: captions and their CLIP-score, offensive terms, cross-tables, the human review and
the release with faces blurred (docs/captions.md, docs/review.md)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audit.errors import InputError
from tests.caption_fixtures import BAD_CLASS, MISMATCHED, TERM_FOUND, write_captioned_set

BACKEND = "opencv-haar"  # fast, and finds no face in a digit: the caption checks alone


@pytest.fixture(scope="module")
def captioned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    """The captioned set, audited once: (manifest, what was planted, the audit's folder)."""
    from audit.dataset.job import run_audit

    root = tmp_path_factory.mktemp("captioned")
    manifest, planted = write_captioned_set(root / "data")
    out = root / "out"
    run_audit(str(manifest), out, backend=BACKEND, workers=1, progress=False)
    return manifest, planted, out


def _data(out: Path) -> dict:
    return json.loads((out / "audit-results.json").read_text(encoding="utf-8"))["data"]


def _records(out: Path) -> list[dict]:
    return sorted((json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()), key=lambda r: r["index"])


# ------------------------------------------------------------------------------------------------ terms


def test_terms_match_whole_words_phrases_and_dodged_spellings_only() -> None:
    from audit.dataset.terms import term_checker

    check = term_checker()
    assert check.find("a photo of a b1tch dog") == ["bitch"]
    assert check.find("$hit happens") == ["shit"]
    assert check.find("ＦＵＣＫ in full-width letters") == ["fuck"]  # NFKC folding
    assert check.find("doggy-style, then doggy style") == ["doggy style"]  # one phrase, however written
    assert check.find("Scunthorpe and Essex, assistant, class of 2024") == []  # never inside a word
    assert check.find("a handwritten digit seven") == []
    assert check.find(None) == [] and check.find("") == []
    assert check.sources[0]["source"].startswith("better-profanity") and "MIT" in check.sources[0]["licence"]
    assert len(check.terms) > 800


def test_users_extend_the_list_and_a_changed_list_is_refused_later(tmp_path) -> None:
    from audit.dataset.terms import checker_of, term_checker

    extra = tmp_path / "terms.txt"
    extra.write_text("# our own\nhate group\nZorblax\n", encoding="utf-8")
    check = term_checker([extra])
    assert check.find("members of a Hate  Group met zorblax") == ["hate group", "Zorblax"]
    assert checker_of(check.describe()).find("zorblax") == ["Zorblax"]  # rebuilt from the results
    extra.write_text("something else\n", encoding="utf-8")
    with pytest.raises(InputError, match="gone or changed"):
        checker_of(check.describe())
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        term_checker([tmp_path / "latin1.txt"])
    with pytest.raises(InputError, match="offensive-terms file not found"):
        term_checker([tmp_path / "missing.txt"])


# --------------------------------------------------------------------------------------------- captions


def test_caption_score_is_the_clip_score_of_the_image_and_its_own_caption(captioned) -> None:
    from PIL import Image

    from audit.features.embedded import EmbeddedDigitsExtractor
    from audit.metrics import clip_score

    manifest, _, out = captioned
    extractor = EmbeddedDigitsExtractor()
    for record in _records(out)[::17]:
        image = np.asarray(Image.open(manifest.parent / record["image"]).convert("RGB"))
        expected = clip_score(extractor(image[None])["clip"], extractor.encode_texts([record["caption"]]))
        assert record["caption_score"] == pytest.approx(expected, abs=1e-4)


def test_planted_mismatched_captions_and_terms_are_found(captioned) -> None:
    _, planted, out = captioned
    data = _data(out)
    caps = data["captions"]
    assert caps["threshold"] == 25.0 and caps["model"]["caption_model"] == "embedded"
    assert caps["overall"]["captions"] == caps["overall"]["scored"] == 124
    records = _records(out)
    below = {r["image"] for r in records if r["caption_score"] < caps["threshold"]}
    assert set(planted["mismatched"]) <= below  # every planted mismatch is found
    assert below - set(planted["mismatched"]) <= set(planted["terms"])  # the rest: captions with planted terms
    assert caps["overall"]["below_threshold"] == len(below)
    lo, hi = caps["overall"]["below_share_ci"]
    assert lo < len(below) / 124 < hi
    shown = [r["image"] for r in caps["least_coherent"]]
    assert set(shown[: len(MISMATCHED)]) == set(planted["mismatched"])  # lowest first, terms never shown
    assert not set(shown) & set(planted["terms"])
    terms = data["offensive_terms"]
    assert terms["classes_flagged"] == [{"class": BAD_CLASS, "terms": ["slut"]}]
    assert {e["image"]: e["terms"] for e in terms["examples"]} == {k: [v] for k, v in planted["terms"].items()}
    assert terms["captions_with_terms"] == len(TERM_FOUND) and terms["captions_checked"] == 124
    assert BAD_CLASS not in {g["class"] for g in data["thumbnails"]["grids"]}  # a flagged class is never shown
    assert data["thumbnails"]["changed_since_recorded"] == []
    assert "offensive-term list" in data["datasheet"]["measured_composition"]["offensive_terms"]


def test_a_dataset_without_captions_says_so_and_loads_no_caption_model(tmp_path) -> None:
    from audit.dataset.run import analyze_item, dataset_items

    class Boom:
        def score(self, image, caption):  # pragma: no cover - must never be called
            raise AssertionError("scored an image without a caption")

    from audit.dataset.backends import get_analyzer

    item = next(iter(dataset_items("builtin:faces-demo")))
    record = analyze_item(item, get_analyzer(BACKEND), None, Boom())
    assert "caption" not in record and "caption_score" not in record


def test_open_clip_caption_model_through_its_loader_and_missing_weights_stop_the_run(tmp_path) -> None:
    """clip:ViT-B-32:FILE (random weights, open_clip's own loader): the record's score is the CLIP-score of
    open_clip's own embeddings; weights that are not there stop the audit with one error, never a run of
    per-image failures."""
    import open_clip
    import torch
    from PIL import Image

    from audit.dataset.job import run_audit
    from audit.metrics import clip_score
    from tests.feature_fixtures import save_random_open_clip

    weights = save_random_open_clip(tmp_path / "vit.safetensors")
    root = tmp_path / "data"
    (root / "x").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["path,label,caption"]
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(root / "x" / f"{i}.png")
        lines.append(f"x/{i}.png,x,a photo of thing {i}")
    (root / "m.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    run_audit(str(root / "m.csv"), out, backend=BACKEND, workers=1, progress=False,
              caption_model=f"clip:ViT-B-32:{weights}")  # fmt: skip
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=str(weights))
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    for record in _records(out):
        image = Image.open(root / record["image"]).convert("RGB")
        with torch.no_grad():
            img = model.encode_image(preprocess(image)[None]).double().numpy()
            txt = model.encode_text(tokenizer([record["caption"]])).double().numpy()
        assert record["caption_score"] == pytest.approx(clip_score(img, txt), abs=1e-3)
    assert _data(out)["captions"]["threshold"] == 28.0
    from audit.errors import WeightsError

    with pytest.raises(WeightsError, match="weights not found"):
        run_audit(str(root / "m.csv"), tmp_path / "out2", backend=BACKEND, workers=2, progress=False,
                  caption_model=f"clip:ViT-B-32:{tmp_path / 'missing.safetensors'}")  # fmt: skip


def test_unknown_caption_model_is_one_clear_error(tmp_path) -> None:
    from audit.dataset.job import run_audit

    with pytest.raises(InputError, match="unknown caption model"):
        run_audit("builtin:faces-demo", tmp_path / "o", backend=BACKEND, caption_model="clip:ViT-B-32")


def test_captions_survive_shards_and_parquet_records_as_one_process(captioned, tmp_path) -> None:
    """Two shard processes then the merge, and a Parquet record store: the same records and results."""
    from audit.dataset.job import run_audit

    manifest, _, out = captioned
    shared = tmp_path / "shared"
    args = [sys.executable, "-m", "audit.cli", "-q", "audit", str(manifest), "--backend", BACKEND, "--workers", "1",
            "--out", str(shared)]  # fmt: skip
    procs = [subprocess.Popen([*args, "--shard", f"{k}/2"], stderr=subprocess.PIPE, text=True) for k in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read() if p.stderr else ""
    merge = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert merge.returncode == 0, merge.stderr
    assert _records(shared) == _records(out)
    assert _data(shared) == _data(out)
    pq = tmp_path / "pq"
    run_audit(str(manifest), pq, backend=BACKEND, workers=1, progress=False, records_format="parquet")
    assert _data(pq)["captions"] == _data(out)["captions"]
    assert _data(pq)["offensive_terms"] == _data(out)["offensive_terms"]


# ------------------------------------------------------------------------------------------- cross-tables


def _face(age: float, p_male: float, box=(0, 0, 9, 9)) -> dict:
    confidence = max(p_male, 1 - p_male)
    return {"box": list(box), "det_score": 0.9, "age": age, "p_male": p_male, "gender_confidence": confidence}


def _record(i: int, label: str, faces: list[dict], nsfw: bool | None = None) -> dict:
    spread = (i * 0x9E3779B97F4A7C15) % 2**64  # hashes far apart: no near duplicate unless a test plants one
    record = {"index": i, "image": f"{label}/{i}.png", "class": label, "status": "ok", "sha256": f"{i:064x}",
              "dhash": f"{spread:016x}", "width": 10, "height": 10, "faces": faces}  # fmt: skip
    if nsfw is not None:
        record["nsfw"] = {"labels": {}, "explicit": ["BUTTOCKS_EXPOSED"] if nsfw else []}
    return record


def test_cross_tables_worked_by_hand() -> None:
    """Six images: NSFW x perceived minor and NSFW x gender counted by hand, one abstention (p 0.55)."""
    from audit.dataset.digest import digest_list

    records = [
        _record(0, "a", [_face(10, 0.9), _face(30, 0.1)], nsfw=True),  # flagged, with a minor
        _record(1, "a", [_face(1, 0.2)], nsfw=False),  # infant, not flagged
        _record(2, "a", [_face(40, 0.55)], nsfw=True),  # flagged, adult, gender abstained
        _record(3, "b", [], nsfw=True),  # flagged, no face
        _record(4, "b", [_face(25, 0.8), _face(26, 0.3)], nsfw=False),
        _record(5, "b", [], nsfw=False),
    ]
    digest, _ = digest_list(records)
    tabs = digest.crosstabs(0.6)
    assert tabs["classes_with_children"] == {"count": 1, "classes": ["a"], "under": 18}
    assert tabs["classes_with_infants"]["classes"] == ["a"]
    n = tabs["nsfw"]
    assert n["by_perceived_minor"]["flagged"] == {"with_perceived_minor": 1, "faces_all_adult_or_unaged": 1,
                                                  "no_face": 1, "images": 3}  # fmt: skip
    assert n["by_perceived_minor"]["not_flagged"] == {"with_perceived_minor": 1, "faces_all_adult_or_unaged": 1,
                                                      "no_face": 1, "images": 3}  # fmt: skip
    assert n["flagged_share_with_minor"] == 0.5
    g = n["faces_by_gender"]
    assert (g["flagged"]["female"], g["flagged"]["male"], g["flagged"]["abstained"]) == (1, 1, 1)
    assert (g["not_flagged"]["female"], g["not_flagged"]["male"], g["not_flagged"]["abstained"]) == (2, 1, 0)
    a = tabs["age_by_gender"]["classes"][0]
    assert a["class"] == "a" and a["bands"]["0-2"]["female"] == 1 and a["bands"]["10-19"]["male"] == 1
    assert a["bands"]["40-49"]["abstained"] == 1 and a["bands"]["30-39"]["female_share"] == 1.0
    overall = tabs["age_by_gender"]["overall"]["20-29"]
    assert overall["female_share"] == 0.5 and overall["female_share_ci"] == pytest.approx([0.0945, 0.9055], abs=1e-4)
    # no thumbnail candidate is a flagged image or one with a perceived minor, blurred or not
    chosen = {r["index"] for rs in digest.thumbnail_choice().values() for r in rs}
    assert chosen == {4, 5}


# --------------------------------------------------------------------------------------------- review


def _decide(sheet: Path, decisions: dict[str, str]) -> Path:
    with sheet.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["decision"] = decisions.get(row["id"], row["decision"])
    with sheet.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return sheet


def test_review_sheet_decisions_fold_into_the_card_and_survive_a_rewrite(captioned, tmp_path) -> None:
    import shutil

    from audit.dataset.job import run_audit
    from audit.dataset.review import write_review

    manifest, planted, source = captioned
    out = tmp_path / "out"
    shutil.copytree(source, out)
    page = write_review(out)
    assert json.loads(page.read_text())["kind"] == "audit-review"
    with (out / "review.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    kinds = {r["kind"] for r in rows}
    assert {"caption", "term", "class-term"} <= kinds
    caption_ids = [r["id"] for r in rows if r["kind"] == "caption"]
    mismatched = {r["id"] for r in rows if r["kind"] == "caption" and r["image"] in planted["mismatched"]}
    assert len(mismatched) == len(MISMATCHED)
    decisions = {i: "confirmed" for i in mismatched} | {i: "rejected" for i in caption_ids if i not in mismatched}
    _decide(out / "review.csv", decisions | {"class-term:class=" + BAD_CLASS: "Confirmed"})
    write_review(out)  # written again: every decision kept
    with (out / "review.csv").open(encoding="utf-8", newline="") as f:
        kept = {r["id"]: r["decision"] for r in csv.DictReader(f) if r["decision"]}
    assert kept == decisions | {"class-term:class=" + BAD_CLASS: "confirmed"}
    run_audit(str(manifest), out, backend=BACKEND, workers=1, progress=False, resume=True,
              reviewed=out / "review.csv")  # fmt: skip
    review = _data(out)["review"]
    assert review["kinds"]["caption"] == {"flagged": len(caption_ids), "confirmed": len(MISMATCHED),
                                          "rejected": len(caption_ids) - len(MISMATCHED), "unreviewed": 0}  # fmt: skip
    assert review["kinds"]["term"]["unreviewed"] == len(TERM_FOUND)
    assert review["kinds"]["class-term"]["confirmed"] == 1
    assert "confirmed 8" in (out / "datasheet.md").read_text()
    from reports.render import render_file

    html = render_file(out / "audit-results.json").read_text()
    assert "Human review" in html and "Cross-tables" in html and "Offensive terms" in html


def test_review_items_of_every_kind_worked_by_hand() -> None:
    """Synthetic records: each kind of item from the records alone, ids, order, and the per-class fold."""
    from audit.dataset.review import KINDS, fold_decisions, left_out, review_items
    from audit.dataset.terms import term_checker

    records = [
        _record(0, "a", [_face(12, 0.9), _face(40, 0.2)], nsfw=True),  # NSFW and a perceived minor
        _record(1, "a", [_face(30, 0.8)], nsfw=False),
        _record(2, "b", [], nsfw=False) | {"gps": True, "caption": "a dog", "caption_score": 3.0},
        _record(3, "b", [], nsfw=False) | {"caption": "a $hit dog", "caption_score": 40.0},
        _record(4, "b", [], nsfw=False) | {"dhash": "00000000000000ff"},
        _record(5, "b", [], nsfw=False) | {"dhash": "00000000000000fe"},  # 1 bit from 4: one cluster
        _record(6, "b", [], nsfw=False) | {"dhash": "00000000000000ff"},  # the same hash as 4
        {"index": 7, "image": "b/7.png", "class": "b", "status": "truncated", "faces": [], "gps": True},  # unread
    ]
    data = {
        "classes": [
            {"class": "a", "gender_skewness": -2.5, "gendered_faces": 30, "female_share": 0.13},
            {"class": "b", "gender_skewness": -2.5, "gendered_faces": 19, "female_share": 0.13},  # too few faces
        ],
        "captions": {"threshold": 25.0},
        "offensive_terms": {"classes_flagged": [{"class": "b", "terms": ["x"]}]},
    }
    items = review_items(lambda: iter([dict(r) for r in records]), data, term_checker())
    ids = [it["id"] for it in items]
    assert ids == ["nsfw:0", "minor:0", "skew:class=a", "caption:2", "term:3", "class-term:class=b", "gps:2",
                   "near-duplicate:4"]  # fmt: skip
    assert [it["kind"] for it in items] == sorted((it["kind"] for it in items), key=KINDS.index)
    near = items[-1]
    assert near["members"] == [4, 5, 6] and near["detail"].startswith("3 images: b/4.png, b/5.png, b/6.png")
    assert "ages 12" in items[1]["detail"] and "$hit" not in items[4]["detail"] and "shit" in items[4]["detail"]
    decisions = {"nsfw:0": {"decision": "confirmed"}, "minor:0": {"decision": "rejected"}}
    fold = fold_decisions(items, decisions, "sheet.csv")
    assert fold["kinds"]["nsfw"] == {"flagged": 1, "confirmed": 1, "rejected": 0, "unreviewed": 0}
    assert fold["kinds"]["minor"] == {"flagged": 1, "confirmed": 0, "rejected": 1, "unreviewed": 0}
    assert fold["classes"]["a"]["nsfw"]["confirmed"] == 1 and fold["classes"]["b"]["gps"]["unreviewed"] == 1
    positions, classes = left_out(items, ["nsfw", "minor", "near-duplicate", "class-term"], decisions)
    assert positions == {0: "nsfw:0 (confirmed)"} and classes == {}  # only what was confirmed
    positions, classes = left_out(items, ["near-duplicate", "class-term"], None)
    assert set(positions) == {5, 6} and classes == {"b": "class-term:class=b (flagged)"}
    with pytest.raises(InputError, match="unknown review kind"):
        left_out(items, ["nsfw", "nudity"], None)


def test_review_refuses_bad_decisions_and_sheets_of_another_audit(captioned, tmp_path) -> None:
    from audit.dataset.review import audit_items, fold_decisions, read_decisions

    _, _, out = captioned
    bad = tmp_path / "bad.csv"
    bad.write_text("id,decision\ncaption:3,maybe\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 2: decision 'maybe'"):
        read_decisions(bad)
    (tmp_path / "nocols.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="columns id and decision"):
        read_decisions(tmp_path / "nocols.csv")
    items, _ = audit_items(out)
    other = tmp_path / "other.csv"
    other.write_text("id,decision\ncaption:9999,confirmed\n", encoding="utf-8")
    with pytest.raises(InputError, match="another audit"):
        fold_decisions(items, read_decisions(other), "other.csv")


def test_hostile_captions_and_class_names_are_text_in_the_cards(captioned, tmp_path) -> None:
    """Captions and class names reach the card and the review page as escaped text, never as markup."""
    from reports.render import render_file

    _, _, out = captioned
    doc = json.loads((out / "audit-results.json").read_text(encoding="utf-8"))
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    doc["data"]["captions"]["least_coherent"][0]["caption"] = hostile
    doc["data"]["captions"]["classes"][0]["class"] = hostile
    doc["data"]["offensive_terms"]["classes_flagged"] = [{"class": hostile, "terms": ["slut"]}]
    (tmp_path / "a.json").write_text(json.dumps(doc), encoding="utf-8")
    html = render_file(tmp_path / "a.json").read_text(encoding="utf-8")
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert" in html


def test_review_csv_cells_cannot_run_as_spreadsheet_formulas(tmp_path) -> None:
    from audit.dataset.review import read_decisions, write_sheet

    items = [{"id": "class-term:class==HYPERLINK(1)", "kind": "class-term", "class": "=HYPERLINK(1)", "image": "",
              "detail": "@SUM(A1)"}]  # fmt: skip
    write_sheet(tmp_path, items)
    with (tmp_path / "review.csv").open(encoding="utf-8", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["class"] == "'=HYPERLINK(1)" and row["detail"] == "'@SUM(A1)" and row["id"] == items[0]["id"]
    assert read_decisions(tmp_path / "review.csv") == {}


# --------------------------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def faces_audit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from audit.dataset.job import run_audit

    out = tmp_path_factory.mktemp("faces") / "out"
    run_audit("builtin:faces-demo", out, workers=1, progress=False)
    return out


def test_export_blurs_every_detected_face_and_nothing_else(faces_audit, tmp_path) -> None:
    from PIL import Image

    from audit.dataset.builtin import faces_demo
    from audit.dataset.export import export_blurred

    dest = tmp_path / "release"
    summary = json.loads(export_blurred(faces_audit, dest, progress=False).read_text())
    records = {r["image"]: r for r in _records(faces_audit)}
    with (dest / "manifest.csv").open(encoding="utf-8", newline="") as f:
        manifest = list(csv.DictReader(f))
    assert summary["written"] == len(manifest) == len(records) == 49
    assert summary["faces_blurred"] == sum(len(r["faces"]) for r in records.values()) == 35
    assert any("camera.png" in note for note in summary["limitations"])  # a documented face the detector missed
    originals = {b.relpath: b.load() for b in faces_demo()}
    checked = 0
    for row in manifest:
        name = row["path"].removeprefix("images/")
        out = np.asarray(Image.open(dest / row["path"]).convert("RGB"))
        faces = records[name]["faces"]
        assert int(row["faces_blurred"]) == len(faces)
        if not name.endswith(".png"):
            continue  # a JPEG is re-encoded: compared pixel for pixel only where lossless
        src = originals[name]
        outside = np.ones(src.shape[:2], bool)
        for left, top, right, bottom in (f["box"] for f in faces):
            w, h = right - left + 1, bottom - top + 1
            grown_rows = slice(max(0, top - h // 5 - 1), bottom + h // 5 + 2)
            outside[grown_rows, max(0, left - w // 5 - 1) : right + w // 5 + 2] = False
            inside = (slice(top + h // 4, bottom - h // 4), slice(left + w // 4, right - w // 4))
            assert np.abs(out[inside].astype(int) - src[inside].astype(int)).mean() > 2  # the face changed
        assert np.array_equal(out[outside], src[outside])  # the rest did not
        checked += 1
    assert checked >= 10
    # the release audited again: the blurred faces are no longer found
    from audit.dataset.job import run_audit

    again = run_audit(str(dest / "images"), tmp_path / "again", workers=1, progress=False)
    assert json.loads(again.read_text())["data"]["overall"]["faces"] == 0


def test_export_leaves_out_confirmed_items_and_resumes(captioned, tmp_path) -> None:
    import shutil

    from audit.dataset.export import PROGRESS, export_blurred
    from audit.dataset.review import write_review

    _, planted, source = captioned
    out = tmp_path / "out"
    shutil.copytree(source, out)
    write_review(out)
    sheet = out / "review.csv"
    with sheet.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    confirm = {r["id"]: "confirmed" for r in rows if r["kind"] == "caption" and r["image"] in planted["mismatched"][:3]}
    _decide(sheet, confirm | {"class-term:class=" + BAD_CLASS: "confirmed"})
    dest = tmp_path / "release"
    first = json.loads(export_blurred(out, dest, leave_out=["caption", "class-term"], reviewed=sheet,
                                      progress=False).read_text())  # fmt: skip
    left = {r["image"] for r in first["left_out_images"]}
    assert left == set(planted["mismatched"][:3]) | {f"bad/one-{i}.png" for i in range(4)}
    assert first["written"] == 124 - 3 - 4
    manifest = (dest / "manifest.csv").read_bytes()
    # an interrupted export: half its progress lost, the manifest not yet written; the rerun does the rest
    lines = (dest / PROGRESS).read_text().splitlines()
    (dest / PROGRESS).write_text("\n".join(lines[:60]) + "\n" + lines[60][:20])
    (dest / "manifest.csv").unlink()
    export_blurred(out, dest, leave_out=["caption", "class-term"], reviewed=sheet, progress=False)
    assert (dest / "manifest.csv").read_bytes() == manifest
    with pytest.raises(InputError, match="other inputs or settings"):
        export_blurred(out, dest, progress=False)  # the same folder for a different export


def test_export_in_shards_then_the_merge_equals_one_process(faces_audit, tmp_path) -> None:
    from audit.dataset.export import export_blurred
    from audit.scale.shards import Shard

    whole = json.loads(export_blurred(faces_audit, tmp_path / "whole", progress=False).read_text())
    shared = tmp_path / "shared"
    for k in (0, 1):  # shard 2 of 3 never ran: the merge does it
        part = export_blurred(faces_audit, shared, progress=False, shard=Shard(k, 3))
        assert len(part.read_text().splitlines()) == len(Shard(k, 3).range(49))
        assert not (shared / "manifest.csv").exists()
    merged = json.loads(export_blurred(faces_audit, shared, progress=False).read_text())
    assert (shared / "manifest.csv").read_bytes() == (tmp_path / "whole" / "manifest.csv").read_bytes()
    assert {k: v for k, v in merged.items() if k != "provenance"} == {
        k: v for k, v in whole.items() if k != "provenance"
    }


def test_export_refuses_unsafe_destinations_and_names(faces_audit, tmp_path) -> None:
    from audit.dataset.export import export_blurred, release_name

    with pytest.raises(InputError, match="overlaps"):
        export_blurred(faces_audit, faces_audit / "release", progress=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "precious.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        export_blurred(faces_audit, busy, progress=False)
    for bad in ("../etc/passwd", "/abs.png", "a//b.png", "a/./b.png"):
        with pytest.raises(InputError):
            release_name(bad)
    assert release_name("cls/photo.JPG") == ("cls/photo.JPG", "JPEG")
    assert release_name("cls/scan.raw") == ("cls/scan.raw.png", "PNG")
    with pytest.raises(InputError, match="no finished audit"):
        export_blurred(tmp_path, tmp_path / "r", progress=False)


def test_cli_review_and_export_are_one_line_errors_without_their_folder(capsys) -> None:
    from audit.cli import main

    assert main(["audit", "review"]) == 2
    assert "needs the audit's folder" in capsys.readouterr().err
    assert main(["audit", "export-blurred", "somewhere"]) == 2
    assert "needs --dest" in capsys.readouterr().err
    assert main(["audit", "builtin:faces-demo", "--dest", "x"]) == 2
    assert "export-blurred" in capsys.readouterr().err
