"""``genaudit audit``: a dataset (or precomputed face records) in; ``audit.json``, the datasheet (Markdown),
the results document and its card out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from audit.atomic import write_json_atomic
from audit.dataset.demographics import DEFAULT_ABSTAIN_BELOW, aggregate
from audit.errors import InputError
from audit.out_lock import holds_out

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.json"
RESULTS_FILE = "audit-results.json"
DATASHEET_FILE = "datasheet.md"
CLASSES_FILE = "classes.csv"
CLASS_COLUMNS = (
    "class", "images", "images_with_faces", "faces", "faces_per_image", "mean_age", "std_age", "mean_age_female",
    "mean_age_male", "gendered_faces", "abstentions", "female_share", "female_share_ci_low", "female_share_ci_high",
    "gender_skewness", "children",
)  # fmt: skip


@holds_out
def run_audit(
    spec: str | None,
    out: str | Path,
    *,
    face_records: str | Path | None = None,
    backend: str = "dlib-agegender",
    workers: int | None = None,
    resume: bool = False,
    abstain_below: float = DEFAULT_ABSTAIN_BELOW,
    datasheet_answers: str | Path | None = None,
    compare: str | None = None,
    show_faces: bool = False,
    nsfw: bool = False,
    records_format: str = "jsonl",
    progress: bool = True,
    shard: Any = None,
    columns: Any = None,
    executor: str | None = None,
    caption_model: str = "embedded",
    caption_threshold: float | None = None,
    offensive_terms: tuple[str | Path, ...] | list[str | Path] = (),
    reviewed: str | Path | None = None,
) -> Path | None:
    """Audit ``spec`` (default ``builtin:faces-demo``) or aggregate ``face_records``; return the results path.

    ``shard`` (:class:`audit.scale.shards.Shard`): record only that shard's images (and ``compare``'s) and
    return None; the same call without it merges every shard's records and finishes the audit.
    ``executor`` ``"ray"`` or ``"ray:ADDRESS"`` records the shards on Ray workers first.

    ``caption_model`` scores captioned images (docs/captions.md); ``offensive_terms``: files of terms
    added to the default list; ``reviewed``: a review sheet with the owner's decisions (docs/review.md).
    Another process writing ``out`` is one clear error (:func:`audit.out_lock.holds_out`)."""
    from audit.dataset.captions import check_model, default_threshold
    from audit.dataset.datasheet import read_answers
    from audit.dataset.results import build_audit_results
    from audit.dataset.review import read_decisions
    from audit.dataset.terms import term_checker
    from audit.results import write_results

    out = Path(out)
    answers = read_answers(datasheet_answers) if datasheet_answers else {}  # checked before any image is read
    check_model(caption_model)
    threshold = default_threshold(caption_model) if caption_threshold is None else caption_threshold
    terms = term_checker(offensive_terms)
    decisions = read_decisions(reviewed) if reviewed else None
    digest: Any = None  # the records' streamed digest (audit.dataset.digest), when images were analysed
    lookup: Any = None  # the digest's name lookup
    comparison: dict[str, Any] | None = None
    if compare and face_records is not None:
        raise InputError("--compare runs a second backend on images: it does not apply to --face-records")
    if compare == backend:
        raise InputError(f"--compare needs a backend other than --backend ({backend})")
    if face_records is not None:
        from audit.dataset.face_records import read_face_records
        from audit.hashing import sha256_file

        rec = read_face_records(face_records)
        stats = aggregate(rec.faces, rec.images_per_class, rec.images_with_faces_per_class, abstain_below=abstain_below)
        stats.update(unreadable={"count": 0, "by_reason": {}, "files": []}, detection_scales=[])
        spec = f"face-records:{Path(face_records).name}"
        info = {"backend": "face-records", "model": "precomputed face records", "sha256": sha256_file(face_records)}
    else:
        from audit.dataset.backends import get_analyzer
        from audit.dataset.builtin import KNOWN_GENDERS
        from audit.dataset.digest import digest_store
        from audit.dataset.run import run_records

        spec = spec or "builtin:faces-demo"
        from audit.dataset.run import RECORDS_FORMATS

        if records_format not in RECORDS_FORMATS:
            raise InputError(f"unknown records format {records_format!r}; available: {', '.join(RECORDS_FORMATS)}")
        name = RECORDS_FORMATS[records_format]
        compare_name = f"records-{_slug(compare)}{Path(name).suffix}" if compare else None
        if shard is not None:
            for job_backend, job_name in ((backend, name), (compare, compare_name)):
                if job_backend:
                    run_records(spec, out, backend=job_backend, workers=workers, nsfw=nsfw and job_name == name,
                                records_name=job_name, progress=progress, shard=shard, columns=columns,
                                caption_model=caption_model if job_name == name else None)  # fmt: skip
            log.info("audit shard %s done in %s; run the command without --shard to merge every shard", shard, out)
            return None
        if executor:
            from audit.scale.ray_executor import record_on_ray

            for job_backend, job_name in ((backend, name), (compare, compare_name)):
                if job_backend:
                    record_on_ray(executor, spec, out, backend=job_backend, nsfw=nsfw and job_name == name,
                                  records_name=job_name, columns=columns, progress=progress,
                                  caption_model=caption_model if job_name == name else None)  # fmt: skip
        path = run_records(
            spec, out, backend=backend, workers=workers, resume=resume, nsfw=nsfw,
            records_name=name, progress=progress, columns=columns, caption_model=caption_model,
        )  # fmt: skip
        digest, lookup = digest_store(path, KNOWN_GENDERS if spec == "builtin:faces-demo" else (), terms)
        stats = digest.stats(abstain_below)
        if not stats["overall"]["images"] and not stats["unreadable"]["count"]:  # a wrong path, glob or column
            raise InputError(f"no images found in {spec}")
        info = get_analyzer(backend).describe()
        if nsfw:
            from audit.dataset.nsfw import NudeNetChecker

            info["nsfw"] = NudeNetChecker().describe()
            info["sha256"] = {**info["sha256"], **info["nsfw"]["sha256"]}
            info["licences"] = [*info["licences"], info["nsfw"]["licence"]]
        if compare:
            comparison = _compare(spec, out, compare, path, workers, resume, abstain_below, compare_name, progress,
                                  columns)  # fmt: skip
    from audit.atomic import write_text_atomic
    from audit.dataset.datasheet import build_datasheet, to_markdown

    doc = build_audit_results(spec, stats, info, digest.known if digest is not None else None)
    measured = digest.composition(lookup) if digest is not None else None
    hidden = _add_depth(doc, digest, stats, terms, caption_model, threshold)
    doc["data"]["datasheet"] = build_datasheet(None, answers, measured=measured)
    doc["data"]["comparison"] = comparison
    if comparison:
        from audit.dataset.results import licence_limitations

        notes = doc["data"]["limitations"]
        notes += [n for n in licence_limitations(comparison["analyzer"]) if n not in notes]
    if digest is not None:
        from audit.dataset.thumbs import thumbnail_grids

        chosen = digest.thumbnail_choice(hidden)
        from audit.dataset.caption_stats import LEAST_COHERENT_SHOWN

        has_captions = isinstance(doc["data"]["captions"], dict)
        coherent = digest.least_coherent(hidden)[:LEAST_COHERENT_SHOWN] if has_captions else []
        if coherent:
            chosen[LEAST_COHERENT_GRID] = coherent
        grids, changed = thumbnail_grids(spec, chosen, show_faces, columns)
        if changed:
            log.warning(
                "%d image(s) changed or became unreadable since they were recorded, left out of the thumbnails "
                "(audit again with a fresh --out to re-record them): %s",
                len(changed), ", ".join(changed[:5]),
            )  # fmt: skip
        least = [g for g in grids if g["class"] == LEAST_COHERENT_GRID and coherent]
        doc["data"]["thumbnails"] = {"faces_blurred": not show_faces, "grids": [g for g in grids if g not in least],
                                     "changed_since_recorded": changed}  # fmt: skip
        if least:
            doc["data"]["captions"]["least_coherent_png"] = least[0]["png"]
    if decisions is not None:
        _fold_review(doc, path if digest is not None else None, terms, decisions, str(reviewed))
    if measured is not None:
        measured.update(_measured_depth(doc["data"]))
    write_text_atomic(out / DATASHEET_FILE, to_markdown(spec, doc["data"]["datasheet"]))
    write_classes_csv(out / CLASSES_FILE, [*stats["classes"], stats["overall"]])
    write_json_atomic(out / AUDIT_FILE, {"dataset": spec, "classes": stats["classes"], "overall": stats["overall"],
                                         "provenance": doc["provenance"]})  # fmt: skip
    return write_results(out / RESULTS_FILE, doc)


LEAST_COHERENT_GRID = "\x00least coherent captions"  # a grid key no class can collide with (NUL is no label)


def _add_depth(
    doc: dict[str, Any], digest: Any, stats: dict[str, Any], terms: Any, caption_model: str, threshold: float
) -> list[str]:
    """Captions, offensive terms and cross-tables into ``doc``; returns the classes whose names hold an
    offensive term (never shown as thumbnails)."""
    from audit.dataset.caption_stats import caption_results, flagged_classes, term_results

    data = doc["data"]
    labels = [c["class"] for c in stats["classes"]]
    if digest is None:  # --face-records: no images, no captions; class names are still checked
        data["captions"] = "no captions (--face-records)"
        data["offensive_terms"] = {"list": terms.describe(), "classes_flagged": [
            {"class": c, "terms": t} for c, t in flagged_classes(labels, terms).items()],
            "captions_checked": 0, "captions_with_terms": 0, "by_class": [], "examples": []}  # fmt: skip
        data["crosstabs"] = None
    else:
        model = None
        if sum(digest.captioned.values()):
            from audit.dataset.captions import CaptionScorer

            model = CaptionScorer(caption_model).describe()
        data["captions"] = caption_results(digest, threshold, model)
        data["offensive_terms"] = term_results(digest, labels)
        data["crosstabs"] = digest.crosstabs(stats["abstain_below"])
    flagged = [c["class"] for c in data["offensive_terms"]["classes_flagged"]]
    data["flags"] += [
        f"class {c['class']!r}: its name holds {', '.join(repr(t) for t in c['terms'])} (offensive-term list); its "
        "images are not shown"
        for c in data["offensive_terms"]["classes_flagged"]
    ]
    with_terms = [c for c in data["offensive_terms"]["by_class"] if c["captions_with_terms"]]
    data["flags"] += [f"class {c['class']!r}: {c['captions_with_terms']} caption(s) hold offensive terms "
                      f"({', '.join(list(c['terms'])[:5])})" for c in with_terms]  # fmt: skip
    config = doc["provenance"]["config"]
    config.update(caption_model=caption_model, caption_threshold=threshold, offensive_terms=terms.describe())
    if isinstance(data["captions"], dict):
        doc["provenance"]["models"] += [{"id": m["id"], "sha256": m.get("sha256")} for m in data["captions"]["model"]
                                        ["models"]]  # fmt: skip
    if data["crosstabs"]:
        kids = data["crosstabs"]["classes_with_children"]
        doc["headline"].append({"label": "classes with perceived children", "value": kids["count"], "format": "int"})
    return flagged


def _fold_review(doc: dict[str, Any], records: Path | None, terms: Any, decisions: dict[str, Any], source: str) -> None:
    """The owner's decisions beside the model's counts (docs/review.md)."""
    from audit.dataset.record_store import iter_records
    from audit.dataset.review import fold_decisions, review_items

    if records is None:
        raise InputError("--reviewed folds a review of an image audit: it does not apply to --face-records")
    items = review_items(lambda: iter_records(records), doc["data"], terms)
    doc["data"]["review"] = fold_decisions(items, decisions, Path(source).name)


def _measured_depth(data: dict[str, Any]) -> dict[str, Any]:
    """The datasheet's measured answers from the captions, terms, cross-tables and review."""
    out: dict[str, Any] = {}
    caps = data["captions"]
    if isinstance(caps, dict):
        o = caps["overall"]
        out["captions"] = (f"{o['captions']} captioned, {o['below_threshold']} below CLIP-score {caps['threshold']:g} "
                           f"({caps['model']['caption_model']})")  # fmt: skip
    terms = data["offensive_terms"]
    out["offensive_terms"] = (
        f"{len(terms['classes_flagged'])} class name(s) and {terms['captions_with_terms']} of "
        f"{terms['captions_checked']} caption(s) hold terms of the offensive-term list"
    )
    tabs = data.get("crosstabs")
    if tabs:
        out["classes_with_children"] = (
            f"{tabs['classes_with_children']['count']} class(es) with a face perceived under 18, "
            f"{tabs['classes_with_infants']['count']} with one perceived 0-2 years old"
        )
    review = data.get("review")
    if review:
        out["human_review"] = {
            kind: f"model {c['flagged']}, confirmed {c['confirmed']}, rejected {c['rejected']}, unreviewed "
            f"{c['unreviewed']}"
            for kind, c in review["kinds"].items()
            if c["flagged"]
        }
    return out


def _compare(
    spec: str,
    out: Path,
    backend: str,
    records: Path,
    workers: int | None,
    resume: bool,
    abstain_below: float,
    name: str,
    progress: bool,
    columns: Any = None,
) -> dict[str, Any]:
    """The same images (``records``: the first backend's record store) through a second backend: its
    statistics and the disagreement with the first."""
    from audit.dataset.backends import get_analyzer
    from audit.dataset.compare import disagreement
    from audit.dataset.digest import digest_store
    from audit.dataset.record_store import iter_records
    from audit.dataset.run import run_records

    path = run_records(spec, out, backend=backend, workers=workers, resume=resume, records_name=name,
                       progress=progress, columns=columns, caption_model=None)  # fmt: skip
    stats = digest_store(path)[0].stats(abstain_below)
    return {
        "backend": backend,
        "analyzer": get_analyzer(backend).describe(),
        "classes": stats["classes"],
        "overall": stats["overall"],
        "disagreement": disagreement(iter_records(records), iter_records(path), abstain_below),
    }


def _slug(backend: str) -> str:
    """A backend spec as a file-name part (the compared backend's records file)."""
    return "".join(ch if ch.isalnum() or ch in "-+" else "_" for ch in backend)[:80]


def write_classes_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Every class's statistics (and the overall row last) as CSV: the full table a card may summarise. A
    class name that a spreadsheet would run as a formula gets a quote in front (audit/io/names.py)."""
    from audit.atomic import write_csv_atomic

    def flat(c: dict[str, Any]) -> dict[str, Any]:
        ci = c.get("female_share_ci") or [None, None]
        return {**c, "female_share_ci_low": ci[0], "female_share_ci_high": ci[1]}

    return write_csv_atomic(path, CLASS_COLUMNS, (flat(c) for c in rows), text_columns=("class",))
