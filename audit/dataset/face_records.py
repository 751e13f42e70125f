"""Precomputed face records (detections made elsewhere, or an earlier audit) read from CSV.

Columns: ``image``, ``class``, ``age``, ``gender`` (required), ``det_score``, ``gender_confidence``
(optional). One row per face; a row with empty ``age`` and ``gender`` stands for an image in which no
face was found (so it still counts as an image of its class). ``gender`` is ``female``/``male``,
``F``/``M`` (any case), or the probability of "male" in [0, 1]. A malformed row is an error that names
its line: aggregating a half-read file would publish wrong numbers.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from audit.dataset.demographics import Face
from audit.errors import InputError
from audit.io.sources import checked_csv_rows

REQUIRED = ("image", "class", "age", "gender")
MAX_AGE = 130.0
_GENDER_WORDS = {"female": 0.0, "f": 0.0, "woman": 0.0, "male": 1.0, "m": 1.0, "man": 1.0}


@dataclass
class FaceRecords:
    faces: list[Face]
    images_per_class: dict[str, int]
    images_with_faces_per_class: dict[str, int]


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: {what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: {what} must be finite, got {text!r}")
    return value


def parse_gender(text: str, where: str) -> float:
    """Probability of "male" from a word or a number in [0, 1]."""
    word = text.strip().lower()
    if word in _GENDER_WORDS:
        return _GENDER_WORDS[word]
    value = _number(word, "gender", where)
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{where}: gender as a number is the probability of male, in [0, 1]; got {text!r}")
    return value


def _text(path: Path) -> str:
    """The file as UTF-8 text (a BOM is dropped); bytes that are not UTF-8 are an error naming their line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start]
        raise InputError(f"{path}:{line}: not UTF-8 text (byte {byte:#04x}); save the file as UTF-8") from None


def read_face_records(path: str | Path) -> FaceRecords:
    """Every row checked (the whole file is read before anything is computed from it)."""
    path = Path(path)
    from audit.io.images import require_file

    require_file(path, "face records file")
    faces: list[Face] = []
    images: dict[str, set[str]] = {}
    with_faces: dict[str, set[str]] = {}
    reader = csv.DictReader(io.StringIO(_text(path), newline=""))
    try:
        fields = reader.fieldnames
    except csv.Error as exc:
        raise InputError(f"{path}:1: not a readable CSV header ({exc})") from None
    missing = [c for c in REQUIRED if c not in (fields or [])]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED)})")
    for line, row in checked_csv_rows(reader, path):
        where = f"{path}:{line}"
        if None in row:
            raise InputError(f"{where}: more cells than header columns")
        image, label = (row["image"] or "").strip(), (row["class"] or "").strip()
        if not image:
            raise InputError(f"{where}: empty image")
        images.setdefault(label, set()).add(image)
        age_text, gender_text = (row["age"] or "").strip(), (row["gender"] or "").strip()
        if not age_text and not gender_text:
            continue  # an image without faces
        age = _number(age_text, "age", where) if age_text else None
        if age is not None and not 0.0 <= age <= MAX_AGE:
            raise InputError(f"{where}: age must be between 0 and {MAX_AGE:g}, got {age_text!r}")
        optional = {}
        for key in ("det_score", "gender_confidence"):
            text = (row.get(key) or "").strip()
            optional[key] = _number(text, key, where) if text else None
        confidence = optional["gender_confidence"]
        if confidence is not None and not 0.0 <= confidence <= 1.0:
            raise InputError(f"{where}: gender_confidence is a probability, in [0, 1]; got {confidence!r}")
        faces.append(
            Face(
                image=image,
                label=label,
                age=age,
                p_male=parse_gender(gender_text, where) if gender_text else None,
                **optional,
            )
        )
        with_faces.setdefault(label, set()).add(image)
    if not images:
        raise InputError(f"{path}: no rows")
    return FaceRecords(
        faces=faces,
        images_per_class={k: len(v) for k, v in images.items()},
        images_with_faces_per_class={k: len(with_faces.get(k, ())) for k in images},
    )
