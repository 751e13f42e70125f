"""``genaudit audit``: a dataset (or precomputed face records) in; ``audit.json``, the datasheet (Markdown),
the results document and its card out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from audit.atomic import write_json_atomic
from audit.dataset.demographics import DEFAULT_ABSTAIN_BELOW, aggregate
from audit.errors import InputError

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
) -> Path | None:
    """Audit ``spec`` (default ``builtin:faces-demo``) or aggregate ``face_records``; return the results path.

    ``shard`` (:class:`audit.scale.shards.Shard`): record only that shard's images (and ``compare``'s) and
    return None; the same call without it merges every shard's records and finishes the audit.
    ``executor`` ``"ray"`` or ``"ray:ADDRESS"`` records the shards on Ray workers first."""
    from audit.dataset.datasheet import read_answers
    from audit.dataset.results import build_audit_results
    from audit.results import write_results

    out = Path(out)
    answers = read_answers(datasheet_answers) if datasheet_answers else {}  # checked before any image is read
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
                                records_name=job_name, progress=progress, shard=shard, columns=columns)  # fmt: skip
            log.info("audit shard %s done in %s; run the command without --shard to merge every shard", shard, out)
            return None
        if executor:
            from audit.scale.ray_executor import record_on_ray

            for job_backend, job_name in ((backend, name), (compare, compare_name)):
                if job_backend:
                    record_on_ray(executor, spec, out, backend=job_backend, nsfw=nsfw and job_name == name,
                                  records_name=job_name, columns=columns, progress=progress)  # fmt: skip
        path = run_records(
            spec, out, backend=backend, workers=workers, resume=resume, nsfw=nsfw,
            records_name=name, progress=progress, columns=columns,
        )  # fmt: skip
        digest, lookup = digest_store(path, KNOWN_GENDERS if spec == "builtin:faces-demo" else ())
        stats = digest.stats(abstain_below)
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
    doc["data"]["datasheet"] = build_datasheet(None, answers, measured=measured)
    doc["data"]["comparison"] = comparison
    if comparison:
        from audit.dataset.results import licence_limitations

        notes = doc["data"]["limitations"]
        notes += [n for n in licence_limitations(comparison["analyzer"]) if n not in notes]
    if digest is not None:
        from audit.dataset.thumbs import thumbnail_grids

        grids, changed = thumbnail_grids(spec, digest.thumbnail_choice(), show_faces, columns)
        if changed:
            log.warning(
                "%d image(s) changed or became unreadable since they were recorded, left out of the thumbnails "
                "(audit again with a fresh --out to re-record them): %s",
                len(changed), ", ".join(changed[:5]),
            )  # fmt: skip
        doc["data"]["thumbnails"] = {"faces_blurred": not show_faces, "grids": grids, "changed_since_recorded": changed}
    write_text_atomic(out / DATASHEET_FILE, to_markdown(spec, doc["data"]["datasheet"]))
    write_classes_csv(out / CLASSES_FILE, [*stats["classes"], stats["overall"]])
    write_json_atomic(out / AUDIT_FILE, {"dataset": spec, "classes": stats["classes"], "overall": stats["overall"],
                                         "provenance": doc["provenance"]})  # fmt: skip
    return write_results(out / RESULTS_FILE, doc)


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
                       progress=progress, columns=columns)  # fmt: skip
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
    """Every class's statistics (and the overall row last) as CSV: the full table a card may summarise."""
    from audit.atomic import write_csv_atomic

    def flat(c: dict[str, Any]) -> dict[str, Any]:
        ci = c.get("female_share_ci") or [None, None]
        return {**c, "female_share_ci_low": ci[0], "female_share_ci_high": ci[1]}

    return write_csv_atomic(path, CLASS_COLUMNS, (flat(c) for c in rows))
