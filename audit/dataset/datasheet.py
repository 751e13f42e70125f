"""A datasheet for the audited dataset (Gebru et al., "Datasheets for Datasets", CACM 2021).

Seven sections. Composition is answered from measurements of the audit's per-image records: counts,
classes and balance, exact duplicates (same bytes), near duplicates (64-bit difference hash within
:data:`NEAR_DUPLICATE_BITS`, reported as clusters: :mod:`audit.dataset.near_duplicates`), unreadable
files with reasons, sizes and formats, EXIF and GPS metadata (a privacy flag), images with detectable
faces. Every other question is answered by the dataset owner
in a YAML file (``genaudit audit init-datasheet`` writes the template); a question left empty is shown
as unanswered, never filled in by guesswork.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from audit.errors import InputError

NEAR_DUPLICATE_BITS = 4  # Hamming distance between 64-bit dHashes counted as a near duplicate
EXAMPLE_MEMBERS = 10  # images named per near-duplicate cluster example
MAX_ANSWERS_BYTES = 1_000_000  # a datasheet answers file; the template is about 3 kB
MAX_ANSWERS_NODES = 100_000  # values after alias expansion (the template has about 40)

QUESTIONS: dict[str, list[str]] = {
    "Motivation": [
        "For what purpose was the dataset created?",
        "Who created the dataset and on behalf of which entity?",
        "Who funded the creation of the dataset?",
    ],
    "Composition": [
        "What do the instances represent (people, photos, objects)?",
        "Is any information missing from individual instances? If so, why?",
        "Does the dataset contain data that might be considered confidential or offensive?",
        "Does the dataset identify any subpopulations (by age, gender, ...)? How?",
        "Is it possible to identify individuals, directly or indirectly?",
    ],
    "Collection process": [
        "How was the data associated with each instance acquired?",
        "Who was involved in the data collection process and how were they compensated?",
        "Over what timeframe was the data collected?",
        "Were the individuals in question notified about the data collection, and did they consent?",
        "Has an analysis of the potential impact on data subjects been conducted?",
    ],
    "Preprocessing, cleaning, labeling": [
        "Was any preprocessing, cleaning or labeling of the data done?",
        "Was the raw data saved in addition to the processed data?",
        "Is the software used to preprocess or label the instances available?",
    ],
    "Uses": [
        "Has the dataset been used for any tasks already?",
        "What other tasks could the dataset be used for?",
        "Is there anything about the composition or collection that might impact future uses?",
        "Are there tasks for which the dataset should not be used?",
    ],
    "Distribution": [
        "Will the dataset be distributed to third parties? How?",
        "Under what copyright or licence, and terms of use, is it distributed?",
        "Have any third parties imposed restrictions on the data?",
    ],
    "Maintenance": [
        "Who is supporting, hosting and maintaining the dataset?",
        "How can the owner or curator be contacted?",
        "Will the dataset be updated? How often, by whom, and how will updates be communicated?",
        "If the dataset relates to people, are there limits on retention of their data?",
    ],
}


def dhash(image: np.ndarray) -> str:
    """64-bit difference hash (hex): greyscale 9x8 (PIL box filter), bit = left pixel brighter than right."""
    from PIL import Image

    grey = np.asarray(Image.fromarray(image).convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (grey[:, :-1] > grey[:, 1:]).flatten()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def composition(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The measured answers of the Composition section (a streamed audit asks its digest directly:
    :meth:`audit.dataset.digest.RecordDigest.composition`)."""
    from audit.dataset.digest import digest_list

    digest, lookup = digest_list(records)
    return digest.composition(lookup)


def template_yaml() -> str:
    """The answers file ``init-datasheet`` writes: every question, empty."""
    lines = [
        "# Datasheet answers (Gebru et al., Datasheets for Datasets). Fill in what you know; questions left",
        "# empty are shown as unanswered. Composition is also measured by genaudit from the data itself.",
    ]
    for section, questions in QUESTIONS.items():
        lines.append(f"{section}:")
        for q in questions:
            lines.append(f"  {_yaml_key(q)}: ''")
    return "\n".join(lines) + "\n"


def _yaml_key(question: str) -> str:
    return "'" + question.replace("'", "''") + "'"


def _expanded_nodes(node: Any, memo: dict[int, int], open_: set[int]) -> int:
    """How many nodes ``node`` stands for once every alias is expanded (what a JSON dump would write):
    linear in the document's size however the aliases nest; a node that contains itself is an error."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in open_:
        raise ValueError("a recursive alias (a node that contains itself)")
    open_.add(key)
    children = node.value if isinstance(node.value, list) else []
    flat = [n for c in children for n in (c if isinstance(c, tuple) else (c,))]
    memo[key] = 1 + sum(_expanded_nodes(c, memo, open_) for c in flat)
    open_.discard(key)
    return memo[key]


def _load_yaml_bounded(path: Path) -> Any:
    """``yaml.safe_load`` of a file of at most :data:`MAX_ANSWERS_BYTES` whose aliases expand to at most
    :data:`MAX_ANSWERS_NODES` nodes: an alias bomb (a few hundred bytes standing for gigabytes) is
    refused before anything expands it."""
    import yaml

    size = path.stat().st_size
    if size > MAX_ANSWERS_BYTES:
        raise InputError(f"{path}: {size} bytes; datasheet answers are limited to {MAX_ANSWERS_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8-sig")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        nodes = _expanded_nodes(node, {}, set()) if node is not None else 0
        if nodes > MAX_ANSWERS_NODES:
            raise ValueError(f"its aliases expand to over {MAX_ANSWERS_NODES:,} values (an alias bomb?)")
        return yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{path}: refused: {exc or 'nested too deeply'}") from None


def read_answers(path: str | Path) -> dict[str, dict[str, str]]:
    """Answers by section and question; unknown sections or questions are an error (a typo would
    silently leave a question unanswered). Loaded safely and bounded (:func:`_load_yaml_bounded`)."""
    path = Path(path)
    from audit.io.images import require_file

    require_file(path, "datasheet answers file")
    data = _load_yaml_bounded(path) or {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected sections as a mapping (Section: {{question: answer}}), got a list or text")
    answers: dict[str, dict[str, str]] = {}
    for section, items in data.items():
        if section not in QUESTIONS:
            raise InputError(f"{path}: unknown section {section!r}; sections: {', '.join(QUESTIONS)}")
        if items is not None and not isinstance(items, dict):
            raise InputError(f"{path}: {section}: expected questions as a mapping ('question': answer)")
        for question, answer in (items or {}).items():
            if question not in QUESTIONS[section]:
                raise InputError(f"{path}: {section}: unknown question {question!r}")
            if isinstance(answer, (list, dict)):
                raise InputError(f"{path}: {section}: {question!r}: an answer is text, not a list or mapping")
            if answer not in (None, ""):
                answers.setdefault(section, {})[question] = str(answer)
    return answers


def build_datasheet(
    records: list[dict[str, Any]] | None, answers: dict[str, dict[str, str]], *, measured: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Sections with (question, answer or None) pairs, plus the measured composition (``measured``, or
    computed from ``records``)."""
    if measured is None and records is not None:
        measured = composition(records)
    return {
        "sections": {
            section: [{"question": q, "answer": answers.get(section, {}).get(q)} for q in questions]
            for section, questions in QUESTIONS.items()
        },
        "measured_composition": measured,
    }


def _md(text: Any) -> str:
    """Text for Markdown with HTML special characters escaped (a viewer must not render markup from data)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_markdown(title: str, sheet: dict[str, Any]) -> str:
    """The datasheet as Markdown (answers as given, HTML escaped; unanswered questions marked)."""
    out = [f"# Datasheet: {_md(title)}", ""]
    for section, items in sheet["sections"].items():
        out += [f"## {section}", ""]
        if section == "Composition" and sheet["measured_composition"]:
            out += ["Measured by genaudit:", ""]
            out += [f"- **{k.replace('_', ' ')}**: {_md(v)}" for k, v in sheet["measured_composition"].items()]
            out.append("")
        for item in items:
            out += [f"**{item['question']}**", "", _md(item["answer"]) if item["answer"] else "_Unanswered._", ""]
    return "\n".join(out)
