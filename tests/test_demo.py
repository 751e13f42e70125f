"""`genaudit demo`: the main job publishes a card per embedded model and the guidance benchmark, each
re-renderable from its JSON."""

from __future__ import annotations

import json
from html import unescape
from pathlib import Path

import pytest

from audit.cli import main
from audit.io.encode import decode_png_base64
from audit.zoo import registry
from reports.budget import CARD_BUDGET_BYTES

pytestmark = pytest.mark.slow


BENCH = "guidance-bench-embedded-digits-ddpm"
AUDIT = "dataset-audit-builtin-faces-demo"
REVIEW = "audit-review-builtin-faces-demo"
DETECT = "detect-builtin-digits-mixed"


def test_demo_publishes_one_card_per_zoo_model_and_the_benchmark(demo_site: Path) -> None:
    cards = sorted(p.name for p in (demo_site / "cards").iterdir())
    ids = [f"zoo-{name}" for name in registry.ENTRIES] + [BENCH, AUDIT, REVIEW, DETECT]
    assert cards == sorted(f"{i}.{ext}" for i in ids for ext in ("html", "json"))
    index = (demo_site / "index.html").read_text(encoding="utf-8")
    for card_id in ids:
        assert f'href="cards/{card_id}.html"' in index
    for html in (demo_site / "cards").glob("*.html"):
        assert html.stat().st_size < CARD_BUDGET_BYTES


def test_results_carry_provenance_with_model_hashes(demo_site: Path) -> None:
    for name in registry.ENTRIES:
        doc = json.loads((demo_site / "cards" / f"zoo-{name}.json").read_text(encoding="utf-8"))
        prov = doc["provenance"]
        assert set(prov) >= {"command", "config", "seeds", "models", "packages", "preprocessing", "machine"}
        assert prov["models"][0] == {
            "id": f"embedded:{name}",
            "sha256": registry.read_card(name)["weights"]["sha256"],
            "card_metrics": registry.read_card(name)["metrics"],
        }
        assert "torch" in prov["packages"] and "numpy" in prov["packages"]


def test_generator_card_shows_a_sample_per_class_and_seed(demo_site: Path) -> None:
    doc = json.loads((demo_site / "cards" / "zoo-digits-ddpm.json").read_text(encoding="utf-8"))
    grid = decode_png_base64(doc["data"]["samples_grid"])
    # 10 rows (digits) x 10 columns (seeds) of 32 px cells with 2 px padding
    assert grid.shape == (10 * 34 + 2, 10 * 34 + 2, 3)
    assert doc["provenance"]["seeds"] == {"samples": 1234}


def test_report_rerenders_a_published_card_identically(demo_site: Path, tmp_path: Path) -> None:
    out = tmp_path / "card.html"
    assert main(["report", str(demo_site / "cards" / "zoo-digits-clip.json"), "--out", str(out)]) == 0
    published = (demo_site / "cards" / "zoo-digits-clip.html").read_text(encoding="utf-8")
    rerendered = out.read_text(encoding="utf-8")
    # the published card links back to the index; otherwise the pages are the same
    assert rerendered == published.replace('<a href="../index.html">&larr; all cards</a>', "")


def test_demo_benchmark_covers_every_heuristic_schedule_with_a_verdict(demo_site: Path) -> None:
    from audit.demo import DEMO_BENCH_N
    from audit.guidance import HEURISTICS

    data = json.loads((demo_site / "cards" / f"{BENCH}.json").read_text(encoding="utf-8"))["data"]
    assert {c["schedule"]["name"] for c in data["cells"]} == set(HEURISTICS)
    assert len(data["cells"]) == 1 + len(HEURISTICS) * 4 and data["n"] == DEMO_BENCH_N
    assert data["verdict"]["answer"] in ("yes", "mostly", "mixed", "no", "no difference")
    assert data["verdict"]["comparisons"] == 2 * 4  # linear and cosine at four scales
    html = (demo_site / "cards" / f"{BENCH}.html").read_text(encoding="utf-8")
    assert data["verdict"]["sentence"] in unescape(html)  # the sentence names static's curve: ' is escaped


def test_demo_benchmark_looks_for_near_copies_of_the_training_digits(demo_site: Path) -> None:
    from audit.dataset.demographics import wilson_interval

    data = json.loads((demo_site / "cards" / f"{BENCH}.json").read_text(encoding="utf-8"))["data"]
    assert data["memorization"]["training"]["spec"] == "builtin:digits-train"
    assert data["memorization"]["training"]["images"] == 1500
    for cell in data["cells"]:
        m = cell["memorization"]
        assert m["images"] == data["n"] and m["count"] == len(m["copies"]) <= 100
        assert m["ci95"] == pytest.approx(list(wilson_interval(m["count"], m["images"])))
        assert all(c["ratio"] < data["memorization"]["thresholds"]["ratio"] for c in m["copies"])
        assert m["pairs_png"]
    html = (demo_site / "cards" / f"{BENCH}.html").read_text(encoding="utf-8")
    assert "Memorization: near-copies of training images" in html
    assert "needs a generator of people" in html  # the attribute analysis is named, and why it is absent


def test_demo_audits_the_builtin_faces(demo_site: Path) -> None:
    data = json.loads((demo_site / "cards" / f"{AUDIT}.json").read_text(encoding="utf-8"))["data"]
    assert data["overall"]["images"] == 49 and data["known_faces"]["misgendered"] == 2
    tabs = data["crosstabs"]
    assert tabs["classes_with_children"]["count"] == 0
    bands = tabs["age_by_gender"]["overall"]
    assert sum(b["faces"] for b in bands.values()) == data["overall"]["faces"] == 35
    assert sum(b["female"] for b in bands.values()) == 8  # the audit's own female count, band by band
    review = json.loads((demo_site / "cards" / f"{REVIEW}.json").read_text(encoding="utf-8"))["data"]
    assert review["counts"]["skew"] == 1 and review["by_kind"]["skew"][0]["class"] == "lfw"  # the flagged class
    assert review["items"] == sum(review["counts"].values())
