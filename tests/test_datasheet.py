"""The datasheet: measured composition, the answers template, Markdown."""

from __future__ import annotations

import numpy as np
import pytest

from audit.dataset.datasheet import (
    QUESTIONS,
    build_datasheet,
    composition,
    dhash,
    read_answers,
    template_yaml,
    to_markdown,
)
from audit.errors import InputError
from tests.conftest import HOSTILE


def record(image, label, sha, dh, faces=0, status="ok", **extra):
    return {"image": image, "class": label, "status": status, "sha256": sha, "dhash": dh, "width": 100,
            "height": 80, "faces": [{}] * faces, **extra}  # fmt: skip


def test_dhash_is_stable_under_small_changes_and_differs_between_images() -> None:
    from skimage import data

    a = data.astronaut()
    brighter = np.clip(a.astype(int) + 3, 0, 255).astype(np.uint8)
    bits = lambda x, y: bin(int(dhash(x), 16) ^ int(dhash(y), 16)).count("1")  # noqa: E731
    assert bits(a, brighter) <= 2 and bits(a, data.coffee()) > 16
    assert dhash(np.zeros((8, 9, 3), np.uint8)) == "0" * 16


def test_composition_counts_duplicates_balance_and_privacy_flags() -> None:
    records = [
        record("a/1.png", "a", "s1", "ffff0000ffff0000", faces=2, format="PNG", exif=True, gps=True),
        record("a/2.png", "a", "s1", "ffff0000ffff0000", format="PNG"),  # exact copy of a/1
        record("a/3.png", "a", "s3", "ffff0000ffff0003", format="JPEG"),  # 2 bits from a/1: near duplicate
        record("b/1.png", "b", "s4", "0123456789abcdef", format="JPEG", exif=True),
        record("b/2.png", "b", None, None, status="truncated"),
    ]
    comp = composition(records)
    assert (comp["instances"], comp["readable"], comp["classes"]) == (5, 4, {"a": 3, "b": 1})
    assert comp["class_balance"]["largest_to_smallest"] == 3.0
    h = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25)) / np.log(2)
    assert comp["class_balance"]["normalized_entropy"] == pytest.approx(h)
    assert comp["exact_duplicates"] == {"groups": 1, "extra_copies": 1, "examples": [["a/1.png", "a/2.png"]]}
    near = comp["near_duplicates"]
    assert (near["pairs"], near["clusters"], near["images_in_clusters"]) == (1, 1, 2)
    assert near["examples"] == [{"size": 2, "images": ["a/1.png", "a/3.png"]}]
    assert (comp["exif_present"], comp["gps_tagged"], comp["images_with_faces"]) == (2, 1, 1)
    assert comp["unreadable"] == {"truncated": 1} and comp["formats"] == {"PNG": 2, "JPEG": 2}


def test_answers_template_round_trip_and_unanswered_questions(tmp_path) -> None:
    path = tmp_path / "answers.yaml"
    text = template_yaml().replace(
        "'For what purpose was the dataset created?': ''",
        f"'For what purpose was the dataset created?': '{HOSTILE.replace(chr(39), chr(39) * 2)}'",
    )
    path.write_text(text, encoding="utf-8")
    answers = read_answers(path)
    assert answers == {"Motivation": {"For what purpose was the dataset created?": HOSTILE}}
    sheet = build_datasheet([record("a/1.png", "a", "s1", "00")], answers)
    assert list(sheet["sections"]) == list(QUESTIONS) and len(QUESTIONS) == 7
    unanswered = sum(item["answer"] is None for items in sheet["sections"].values() for item in items)
    assert unanswered == sum(len(q) for q in QUESTIONS.values()) - 1
    md = to_markdown("demo", sheet)
    assert md.count("_Unanswered._") == unanswered and "<script>" not in md and "&lt;" in md
    path.write_text("Motivation:\n  'Why?': yes\n", encoding="utf-8")
    with pytest.raises(InputError, match="unknown question"):
        read_answers(path)
    path.write_text("Motivations: {}\n", encoding="utf-8")
    with pytest.raises(InputError, match="unknown section"):
        read_answers(path)
