"""Cards and sites: escaping of hostile strings, self-containment, strictness, budget, re-rendering."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audit.cli import main
from audit.errors import InputError
from audit.io.encode import image_grid, png_base64
from audit.results import SCHEMA, read_results, write_results
from reports.budget import CardTooLargeError
from reports.publish import publish
from reports.render import environment, render_card
from tests.conftest import HOSTILE


def hostile_doc(doc_id: str = "card-1") -> dict[str, Any]:
    """A zoo-model results document with hostile strings in every free-text field."""
    digits = [str(d) for d in range(10)]
    confusion = (np.eye(10, dtype=int) * 29).tolist()
    return {
        "schema": SCHEMA,
        "kind": "zoo-model",
        "id": doc_id,
        "title": "title " + HOSTILE,
        "headline": [{"label": "label " + HOSTILE, "value": 0.973, "format": "pct"}, {"label": "n", "value": 297}],
        "provenance": {"command": "cmd " + HOSTILE, "config": {"k": HOSTILE}},
        "data": {
            "card": {
                "kind": "classifier",
                "summary": "summary " + HOSTILE,
                "parameters": 1234,
                "data": {"source": HOSTILE, "split": "split", "pixels": "pixels"},
                "recipe": {"seed": 0, HOSTILE: HOSTILE},
                "training": {"command": "train " + HOSTILE, "threads": 2, "seconds": 1.0, "machine": {"cpu_count": 2}},
                "weights": {"file": HOSTILE + ".safetensors", "bytes": 1000, "sha256": "ab" * 32},
                "metrics": {"heldout_accuracy": 0.973, "heldout_per_class_accuracy": dict.fromkeys(digits, 0.97)},
            },
            "confusion": confusion,
            "errors_grid": png_base64(image_grid([np.zeros((8, 8), np.uint8)], columns=1)),
            "errors_caption": "caption " + HOSTILE,
            "limitations": ["limitation " + HOSTILE],
        },
    }


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    return c


def assert_self_contained_and_safe(html: str) -> None:
    page = parse(html)
    for tag, attrs in page.tags:
        assert tag not in ("script", "iframe", "object", "embed", "link"), tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "href") and value:
                assert value.startswith("data:") or ("://" not in value and not value.startswith("//")), value
    assert "url(" not in html.split("</style>")[0].split("<style>")[1]


def test_hostile_strings_are_escaped_everywhere() -> None:
    html = render_card(hostile_doc())
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&#39;quotes&#39;" in html
    assert "\u4e2d\u6587 \U0001f600" in html  # unicode survives, unmangled
    assert_self_contained_and_safe(html)
    text = "".join(parse(html).text)
    for field in ("title ", "label ", "summary ", "caption ", "limitation ", "train "):
        assert field + HOSTILE in text  # shown to the reader as text, exactly


def test_templates_are_strict_and_autoescaped() -> None:
    import jinja2

    env = environment()
    assert env.from_string("{{ x }}").render(x="<b>\"'") == "&lt;b&gt;&#34;&#39;"
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing }}").render()
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ x.nope }}").render(x={})


def test_missing_fields_are_refused() -> None:
    doc = hostile_doc()
    del doc["provenance"]
    with pytest.raises(InputError, match="missing provenance"):
        render_card(doc)
    doc = hostile_doc()
    doc["schema"] = "genaudit.results/0"
    with pytest.raises(InputError, match="not supported"):
        render_card(doc)


def test_report_rerenders_from_json_alone_and_deterministically(tmp_path: Path) -> None:
    path = write_results(tmp_path / "r.json", hostile_doc())
    assert read_results(path) == hostile_doc()
    assert main(["report", str(path)]) == 0
    first = (tmp_path / "r.html").read_bytes()
    assert main(["report", str(path), "--out", str(tmp_path / "again.html")]) == 0
    assert (tmp_path / "again.html").read_bytes() == first
    assert first.decode("utf-8") == render_card(hostile_doc())


def test_an_oversized_card_is_refused_before_writing(tmp_path: Path) -> None:
    doc = hostile_doc()
    noise = np.random.default_rng(0).integers(0, 255, (1400, 1400, 3), dtype=np.uint8)
    doc["data"]["errors_grid"] = png_base64(noise)  # a raw full-size image, not a thumbnail
    path = write_results(tmp_path / "big.json", doc)
    with pytest.raises(CardTooLargeError, match=r"over the 2\.1 MB budget"):
        render_card(doc)
    assert main(["report", str(path)]) == 2
    assert not (tmp_path / "big.html").exists()


def test_publish_builds_an_index_with_a_tile_per_card(tmp_path: Path) -> None:
    src = tmp_path / "results"
    a, b = hostile_doc("same/id"), copy.deepcopy(hostile_doc("same/id"))
    b["title"] = "second"
    write_results(src / "a.json", a)
    write_results(src / "nested" / "b.json", b)
    (src / "not-ours.json").write_text('{"x": 1}', encoding="utf-8")
    index = publish([src], tmp_path / "site")
    html = index.read_text(encoding="utf-8")
    assert_self_contained_and_safe(html)
    hrefs = [attrs["href"] for tag, attrs in parse(html).tags if tag == "a"]
    assert hrefs == ["cards/same-id.html", "cards/same-id.json", "cards/same-id-2.html", "cards/same-id-2.json"]
    for href in hrefs:
        assert (tmp_path / "site" / href).is_file()
    assert json.loads((tmp_path / "site/cards/same-id.json").read_text(encoding="utf-8")) == a
    assert "97.3%" in html and HOSTILE not in html
    card = (tmp_path / "site/cards/same-id.html").read_text(encoding="utf-8")
    assert 'href="../index.html"' in card
    # publishing the site folder itself again finds the twins but not twice
    publish([src, tmp_path / "site"], tmp_path / "site")
    assert sorted(p.name for p in (tmp_path / "site/cards").iterdir()) == [
        "same-id-2.html",
        "same-id-2.json",
        "same-id.html",
        "same-id.json",
    ]


def test_publish_with_nothing_to_publish_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no genaudit results"):
        publish([tmp_path], tmp_path / "site")
