"""Human review of what an audit's models flagged (docs/review.md).

``genaudit audit review OUT`` lists every item that needs a person, from the audit's records and results
in ``OUT``, one row each in ``OUT/review.csv`` (and a page):

=================  =======  ==================================================================
kind               unit     flagged when
=================  =======  ==================================================================
``nsfw``           image    NudeNet found an explicit part (the audit ran with ``--nsfw``)
``minor``          image    a face is perceived as younger than 18
``skew``           class    extreme perceived-gender skew (|xi| >= 2 at >= 20 gendered faces)
``caption``        image    caption score below the audit's threshold
``term``           image    the caption holds a term of the offensive-term list
``class-term``     class    the class name holds one
``gps``            image    the file carries GPS coordinates in its EXIF
``near-duplicate`` cluster  images within 4 bits of a 64-bit difference hash (a cluster each)
=================  =======  ==================================================================

The owner writes ``confirmed`` or ``rejected`` in the ``decision`` column (empty: not reviewed yet);
``genaudit audit ... --reviewed FILE`` folds the decisions into the card and datasheet as confirmed
counts beside the model's (:func:`fold_decisions`). An item's id is stable (kind and source position,
or kind and class name), so a sheet written again keeps every decision already made; a decision for an
item the audit no longer flags is moved to ``review-stale.csv``, never dropped.

The sheet names files and classes, never shows pixels: it is what the owner opens the files with.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from audit.errors import InputError

log = logging.getLogger(__name__)

KINDS = ("nsfw", "minor", "skew", "caption", "term", "class-term", "gps", "near-duplicate")
IMAGE_KINDS = ("nsfw", "minor", "caption", "term", "gps")
COLUMNS = ("id", "kind", "class", "image", "detail", "decision", "note")
DECISIONS = ("confirmed", "rejected")
REVIEW_CSV = "review.csv"
STALE_CSV = "review-stale.csv"
REVIEW_RESULTS = "review-results.json"
MAX_REVIEW_BYTES = 200_000_000
CLUSTER_NAMES = 10  # member names written per near-duplicate cluster


def _image_items(record: dict[str, Any], data: dict[str, Any], terms: Any) -> Iterator[dict[str, Any]]:
    """The image-level items of one record."""
    from audit.dataset.demographics import CHILD_AGE

    if record["status"] != "ok":
        return
    base = {"class": record["class"], "image": record["image"], "index": record["index"]}
    explicit = (record.get("nsfw") or {}).get("explicit")
    if explicit:
        yield {**base, "kind": "nsfw", "detail": "NudeNet: " + ", ".join(explicit)}
    ages = [f["age"] for f in record.get("faces") or [] if f.get("age") is not None and f["age"] < CHILD_AGE]
    if ages:
        listed = ", ".join(f"{a:.0f}" for a in ages)
        yield {**base, "kind": "minor", "detail": f"{len(ages)} face(s) perceived under {CHILD_AGE}: ages {listed}"}
    captions = data.get("captions")
    score = record.get("caption_score")
    if isinstance(captions, dict) and score is not None and score < captions["threshold"]:
        text = record.get("caption", "")[:200]
        yield {**base, "kind": "caption", "detail": f"caption score {score:.1f} < {captions['threshold']:g}: {text}"}
    found = terms.find(record.get("caption")) if terms is not None else []
    if found:
        yield {**base, "kind": "term", "detail": "caption holds: " + ", ".join(found)}
    if record.get("gps"):
        yield {**base, "kind": "gps", "detail": "GPS coordinates in EXIF"}


def _class_items(data: dict[str, Any]) -> list[dict[str, Any]]:
    from audit.dataset.results import EXTREME_MIN_FACES, EXTREME_SKEW

    items = []
    for c in data["classes"]:
        skew = c["gender_skewness"]
        if skew is not None and abs(skew) >= EXTREME_SKEW and c["gendered_faces"] >= EXTREME_MIN_FACES:
            items.append(
                {
                    "kind": "skew",
                    "class": c["class"],
                    "image": "",
                    "detail": f"skewness {skew:.2f}, perceived female share {c['female_share']:.2f} of "
                    f"{c['gendered_faces']} gendered faces",
                }
            )
    terms = data.get("offensive_terms")
    if isinstance(terms, dict):
        for c in terms["classes_flagged"]:
            items.append(
                {
                    "kind": "class-term",
                    "class": c["class"],
                    "image": "",
                    "detail": "class name holds: " + ", ".join(c["terms"]),
                }
            )
    return items


def _near_duplicate_items(positions: np.ndarray, hashes: np.ndarray, records: Any) -> list[dict[str, Any]]:
    """A cluster item per near-duplicate cluster, named by a second pass over the records."""
    from audit.dataset.datasheet import NEAR_DUPLICATE_BITS
    from audit.dataset.near_duplicates import near_duplicates

    order = np.argsort(positions, kind="stable")
    positions, hashes = positions[order], hashes[order]
    clusters = [[int(positions[i]) for i in c] for c in near_duplicates(hashes, NEAR_DUPLICATE_BITS).clusters]
    if not clusters:
        return []
    wanted = {p for c in clusters for p in sorted(c)[:CLUSTER_NAMES]}
    names: dict[int, tuple[str, str]] = {}
    for i, r in enumerate(records()):
        if (p := r.get("index", i)) in wanted:
            names[p] = (r["image"], r["class"])
    items = []
    for members in clusters:
        members = sorted(members)
        shown = [names[p][0] for p in members[:CLUSTER_NAMES]]
        more = f" and {len(members) - CLUSTER_NAMES} more" if len(members) > CLUSTER_NAMES else ""
        items.append(
            {
                "kind": "near-duplicate",
                "index": members[0],
                "image": shown[0],
                "class": names[members[0]][1],
                "members": members,
                "detail": f"{len(members)} images: " + ", ".join(shown) + more,
            }
        )
    return items


def review_items(records: Any, data: dict[str, Any], terms: Any = None) -> list[dict[str, Any]]:
    """Every item to review, in :data:`KINDS` order (then by source position or class name), each with its
    ``id``. ``records()`` gives the audit's records (any order; read twice at most); ``data`` is its
    results' ``data``; ``terms`` the audit's offensive-term checker."""
    by_kind: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    positions, hashes = [], []
    for i, record in enumerate(records()):
        record.setdefault("index", i)
        for item in _image_items(record, data, terms):
            by_kind[item["kind"]].append(item)
        if record["status"] == "ok" and record.get("dhash"):
            positions.append(record["index"])
            hashes.append(int(record["dhash"], 16))
    for item in _class_items(data):
        by_kind[item["kind"]].append(item)
    by_kind["near-duplicate"] = _near_duplicate_items(
        np.array(positions, dtype=np.int64), np.array(hashes, dtype=np.uint64), records
    )
    out = []
    for kind in KINDS:
        for item in sorted(by_kind[kind], key=lambda it: (it.get("index", -1), it["class"])):
            key = f"class={item['class']}" if "index" not in item else str(item["index"])
            out.append({"id": f"{kind}:{key}", **item})
    return out


def read_decisions(path: str | Path) -> dict[str, dict[str, str]]:
    """``id`` -> {decision, note} of a review sheet the owner filled in (only rows with a decision).
    Columns other than ``id``, ``decision`` and ``note`` are ignored, so a spreadsheet's extra columns do
    no harm; a decision other than confirmed or rejected is an error naming the row."""
    from audit.io.images import require_file

    path = Path(path)
    require_file(path, "review sheet")
    if path.stat().st_size > MAX_REVIEW_BYTES:
        raise InputError(f"{path}: over {MAX_REVIEW_BYTES:,} bytes; is this a review sheet?")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "id" not in reader.fieldnames or "decision" not in reader.fieldnames:
                raise InputError(f"{path}: a review sheet needs the columns id and decision (genaudit audit review)")
            decisions: dict[str, dict[str, str]] = {}
            for line, row in enumerate(reader, start=2):
                decision = (row.get("decision") or "").strip().lower()
                if not decision:
                    continue
                if decision not in DECISIONS:
                    raise InputError(
                        f"{path}, line {line}: decision {decision[:40]!r}; write confirmed, rejected or leave it empty"
                    )
                item = (row.get("id") or "").strip()
                if item in decisions and decisions[item]["decision"] != decision:
                    raise InputError(f"{path}, line {line}: {item!r} is both confirmed and rejected")
                decisions[item] = {"decision": decision, "note": (row.get("note") or "").strip()}
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8 CSV") from None
    except csv.Error as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None
    return decisions


def write_sheet(out: Path, items: list[dict[str, Any]]) -> tuple[Path, int, int]:
    """Write ``out/review.csv``, keeping the decisions of the sheet already there; a decision for an item
    no longer flagged goes to ``out/review-stale.csv``. Returns (path, decisions kept, decisions moved)."""
    from audit.atomic import write_csv_atomic
    from audit.io.names import spreadsheet_text

    path = out / REVIEW_CSV
    previous = read_decisions(path) if path.is_file() else {}
    ids = {it["id"] for it in items}
    # every cell a spreadsheet could run as a formula gets a quote (audit/io/names.py); ids never start
    # with one, so the owner's decisions still match
    rows = [
        {**{k: spreadsheet_text(it.get(k)) for k in COLUMNS}, "id": it["id"], **previous.get(it["id"], {})}
        for it in items
    ]
    stale = [{"id": i, **d} for i, d in previous.items() if i not in ids]
    if stale:
        old = read_decisions(out / STALE_CSV) if (out / STALE_CSV).is_file() else {}
        merged = {**{i: d for i, d in old.items()}, **{s["id"]: s for s in stale}}
        write_csv_atomic(out / STALE_CSV, ("id", "decision", "note"), ({"id": i, **d} for i, d in merged.items()))
        log.warning("%d decision(s) are for items this audit no longer flags: kept in %s", len(stale), out / STALE_CSV)
    write_csv_atomic(path, COLUMNS, rows)
    return path, len(previous) - len(stale), len(stale)


def fold_decisions(items: list[dict[str, Any]], decisions: dict[str, dict[str, str]], source: str) -> dict[str, Any]:
    """The model's counts and the owner's, per kind and per class: what the card and datasheet show.
    A decision for an item this audit does not flag is an error (a sheet from another audit)."""
    known = {it["id"]: it for it in items}
    unknown = [i for i in decisions if i not in known]
    if unknown:
        raise InputError(
            f"{source}: {len(unknown)} decision(s) for items this audit does not flag (e.g. {unknown[0][:80]!r}): the "
            "sheet was written for another audit or before the records changed; run genaudit audit review again"
        )
    kinds: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    classes: dict[str, dict[str, Counter[str]]] = {}
    for item in items:
        state = decisions.get(item["id"], {}).get("decision", "unreviewed")
        for counter in (kinds[item["kind"]], classes.setdefault(item["class"], {}).setdefault(item["kind"], Counter())):
            counter["flagged"] += 1
            counter[state] += 1
    as_row = lambda c: {k: int(c[k]) for k in ("flagged", "confirmed", "rejected", "unreviewed")}  # noqa: E731
    return {
        "source": source,
        "decisions": len(decisions),
        "kinds": {k: as_row(c) for k, c in kinds.items()},
        "classes": {label: {k: as_row(c) for k, c in sorted(per.items())} for label, per in sorted(classes.items())},
    }


def left_out(
    items: Iterable[dict[str, Any]], kinds: Iterable[str], decisions: dict[str, dict[str, str]] | None
) -> tuple[dict[int, str], dict[str, str]]:
    """What to leave out of a release: (source position -> why, class -> why). Image items of ``kinds``;
    for a near-duplicate cluster every member but its first; for a class item (``skew``, ``class-term``)
    every image of the class. With ``decisions``, only the items confirmed in them."""
    wanted = set(kinds)
    unknown = wanted - set(KINDS)
    if unknown:
        raise InputError(f"unknown review kind(s) {', '.join(sorted(unknown))}; kinds: {', '.join(KINDS)}")
    positions: dict[int, str] = {}
    classes: dict[str, str] = {}
    for item in items:
        if item["kind"] not in wanted:
            continue
        if decisions is not None and decisions.get(item["id"], {}).get("decision") != "confirmed":
            continue
        why = item["id"] + (" (confirmed)" if decisions is not None else " (flagged)")
        if item["kind"] == "near-duplicate":
            positions.update({int(p): why for p in item["members"][1:]})
        elif "index" in item:
            positions.setdefault(int(item["index"]), why)
        else:
            classes.setdefault(item["class"], why)
    return positions, classes


PAGE_ITEMS = 300  # items per kind listed on the review page (every item is in the CSV)


def audit_items(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The review items of the finished audit in ``out`` and its results' ``data``."""
    from audit.dataset.export import _audit_inputs
    from audit.dataset.record_store import iter_records
    from audit.dataset.terms import checker_of

    data, _identity, store = _audit_inputs(out)
    terms = data["offensive_terms"].get("list") if isinstance(data.get("offensive_terms"), dict) else None
    items = review_items(lambda: iter_records(store), data, checker_of(terms) if terms else None)
    return items, data


def write_review(out: str | Path) -> Path:
    """``genaudit audit review OUT``: ``OUT/review.csv`` (decisions already made kept) and the review
    page's results document ``OUT/review-results.json`` (kind ``audit-review``), whose path is returned."""
    from audit.provenance import provenance
    from audit.results import write_results

    out = Path(out)
    items, data = audit_items(out)
    path, kept, stale = write_sheet(out, items)
    counts = Counter(it["kind"] for it in items)
    slug = "".join(c if c.isalnum() else "-" for c in str(data["dataset"]).lower()).strip("-")[:60]
    doc = {
        "schema": "genaudit.results/1",
        "kind": "audit-review",
        "id": "audit-review-" + slug,
        "title": f"Review sheet: {data['dataset']}",
        "headline": [{"label": "items to review", "value": len(items), "format": "int"}],
        "provenance": provenance(command="genaudit audit review", config={"audit": str(out)}),
        "data": {
            "dataset": data["dataset"],
            "sheet": path.name,
            "items": len(items),
            "counts": {k: counts[k] for k in KINDS},
            "decisions_kept": kept,
            "decisions_stale": stale,
            "by_kind": {
                k: [{c: it.get(c, "") for c in ("id", "class", "image", "detail")} for it in items if it["kind"] == k][
                    :PAGE_ITEMS
                ]
                for k in KINDS
            },
            "page_items": PAGE_ITEMS,
        },
    }
    return write_results(out / REVIEW_RESULTS, doc)
