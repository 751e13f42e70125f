"""``genaudit audit export-blurred OUT --dest DIR``: the audited dataset as a release with faces blurred
(docs/review.md, "A release with faces blurred").

Every image the audit read is decoded again through the one loader, checked against the sha256 its
record holds (a file changed since the audit is not written: its boxes would be stale), and every face
the audit detected is blurred at full resolution (:func:`audit.dataset.thumbs.blur_faces`: a Gaussian
blur of radius a quarter of the face's shorter side over the box grown by 20%). The result is written
to ``DIR/images/<the image's name in the dataset>``, re-encoded in the format its name says (JPEG at
quality 95; PNG, WebP, TIFF, BMP, GIF as such; any other name gets ``.png`` appended), RGB, with no
metadata: EXIF, and so GPS, is dropped. ``DIR/manifest.csv`` lists every written image (name, class,
caption, faces blurred, the sha256 of the source and of the release file); ``DIR/export.json``
records what was blurred, what was left out and why, and the limitations: a face the detector missed is
not blurred.

With ``--leave-out KIND,...`` the images the review flags under those kinds are not written (with
``--reviewed FILE``, only the items confirmed there). The export resumes: ``DIR/export-log.jsonl``
holds a row per image done, written as each is; a rerun does the rest.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from audit.errors import InputError

log = logging.getLogger(__name__)

IMAGES = "images"
MANIFEST = "manifest.csv"
EXPORT_FILE = "export.json"
PROGRESS = "export-log.jsonl"
SHARDS = ".export-shards"  # one row file per --shard process
IDENTITY = ".export.run.json"
FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".gif": "GIF",
}
MANIFEST_COLUMNS = ("path", "class", "caption", "faces_blurred", "source_sha256", "sha256")
LEFT_OUT_LISTED = 1_000


def release_name(relpath: str) -> tuple[str, str]:
    """(the release's relative path, its PIL format) for a dataset image's name: the name's own parts, none
    of them empty, ``.`` or ``..`` (such a name is refused); ``.png`` appended when the suffix is not a
    format written here."""
    parts = relpath.replace("\\", "/").split("/")
    if relpath.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InputError(f"image name {relpath!r} cannot be a path inside the release")
    name = "/".join(parts)
    fmt = FORMATS.get(Path(name).suffix.lower())
    return (name, fmt) if fmt else (name + ".png", "PNG")


def _audit_inputs(out: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """The audit's results data, its records identity and its records store, or one error."""
    from audit.dataset.job import RESULTS_FILE
    from audit.dataset.run import RECORDS_FORMATS

    results = out / RESULTS_FILE
    stores = [out / name for name in RECORDS_FORMATS.values() if (out / name).exists()]
    identity = out / "records.run.json"
    if not results.is_file() or not stores or not identity.is_file():
        raise InputError(
            f"{out} holds no finished audit (audit-results.json, records, records.run.json): run "
            "genaudit audit --out there first"
        )
    return json.loads(results.read_text(encoding="utf-8"))["data"], json.loads(identity.read_text("utf-8")), stores[0]


def _check_dest(dest: Path, out: Path, dataset: str | None, identity: dict[str, Any]) -> None:
    """The release folder is new or this export's own: never the audit's folder, never inside the dataset
    (nor the dataset inside it), never a folder of other files."""
    real = Path(os.path.realpath(dest))
    for other, what in ((out, "the audit's --out"), *(((Path(dataset), "the dataset"),) if dataset else ())):
        other_real = Path(os.path.realpath(other))
        if real == other_real or other_real in real.parents or (what == "the dataset" and real in other_real.parents):
            raise InputError(f"--dest {dest} overlaps {what} ({other}): give a separate folder")
    if dest.exists() and not dest.is_dir():
        raise InputError(f"--dest {dest} is a file")
    marker = dest / IDENTITY
    if marker.is_file():
        from audit.run_identity import check_identity

        check_identity(marker, identity, what="an export")
    elif dest.is_dir() and any(dest.iterdir()):
        raise InputError(f"--dest {dest} is not empty and holds no export: give a new folder")
    else:
        from audit.atomic import write_json_atomic

        write_json_atomic(marker, identity)


def _recorded(records: Iterable[dict[str, Any]]) -> dict[int, tuple[str | None, str, list[list[int]]]]:
    """Position -> (sha256, status, face boxes) of every record: what the export needs, nothing more."""
    return {
        int(r.get("index", i)): (r.get("sha256"), r["status"], [f["box"] for f in r.get("faces") or []])
        for i, r in enumerate(records)
    }


def _write_image(path: Path, image: Any, fmt: str) -> str:
    """Encode ``image`` (RGB uint8) as ``fmt`` at ``path`` atomically, without metadata; its sha256."""
    import hashlib
    import io

    from PIL import Image

    from audit.atomic import write_atomic

    buf = io.BytesIO()
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(image).save(buf, format=fmt, **options)
    data = buf.getvalue()
    write_atomic(path, lambda fh: fh.write(data), fsync=False)
    return hashlib.sha256(data).hexdigest()


def export_blurred(
    out: str | Path,
    dest: str | Path,
    *,
    leave_out: Iterable[str] = (),
    reviewed: str | Path | None = None,
    progress: bool = True,
    shard: Any = None,
) -> Path:
    """Write the release (see the module docstring); returns ``DIR/export.json``.

    ``shard`` (:class:`audit.scale.shards.Shard`, K of N): write only that shard's images, its rows to
    ``DIR/.export-shards/K-of-N.jsonl``, and return that file; N processes may share ``DIR``. The same call
    without it takes in every shard's rows, does what is missing and writes the manifest."""
    from tqdm.auto import tqdm

    from audit.atomic import write_csv_atomic, write_json_atomic
    from audit.dataset.record_store import JsonlRecords, iter_records
    from audit.dataset.review import fold_decisions, left_out, read_decisions, review_items
    from audit.dataset.run import dataset_items
    from audit.dataset.terms import checker_of
    from audit.dataset.thumbs import blur_faces
    from audit.hashing import sha256_file
    from audit.io.archives import Columns

    out, dest = Path(out), Path(dest)
    data, identity, store = _audit_inputs(out)
    spec = identity["dataset"].get("path") or identity["dataset"]["spec"]
    columns = Columns(**identity["columns"]) if identity.get("columns") else None
    kinds = sorted({k.strip() for k in leave_out if k.strip()})
    decisions = read_decisions(reviewed) if reviewed else None
    export_identity = {
        "job": "export-blurred",
        "audit": os.path.realpath(out),
        "records": identity,
        "leave_out": kinds,
        "reviewed": sha256_file(reviewed) if reviewed else None,
    }
    positions: dict[int, str] = {}
    classes: dict[str, str] = {}
    if kinds:
        terms = data["offensive_terms"].get("list") if isinstance(data.get("offensive_terms"), dict) else None
        items = review_items(lambda: iter_records(store), data, checker_of(terms) if terms else None)
        if decisions is not None:
            fold_decisions(items, decisions, str(reviewed))  # a sheet of another audit is refused here
        positions, classes = left_out(items, kinds, decisions)
    elif decisions is not None:
        raise InputError("--reviewed with export-blurred says which flagged images to leave out: add --leave-out KINDS")
    _check_dest(dest, out, identity["dataset"].get("path"), export_identity)
    recorded = _recorded(iter_records(store))
    stop = None
    if shard is not None:
        from audit.dataset.run import count_items

        indices = shard.range(count_items(spec, columns))
        journal = JsonlRecords(dest / SHARDS / f"{shard.name}.jsonl")
        journal.path.parent.mkdir(parents=True, exist_ok=True)
        start, stop, total = indices.start, indices.stop, len(indices)
    else:
        journal, start, total = JsonlRecords(dest / PROGRESS), 0, len(recorded)
    done = {int(r["index"]) for r in journal.iter()}
    if shard is None:
        _merge_shard_rows(dest, journal, done)
    bar = tqdm(desc="export-blurred", unit="img", initial=len(done), total=total, disable=not progress)
    try:
        for item in dataset_items(spec, columns, start=start):
            if stop is not None and item.index >= stop:
                break
            if item.index in done:
                continue
            journal.append(_export_one(item, recorded.get(item.index), positions, classes, dest, blur_faces))
            bar.update(1)
    finally:
        journal.close()
        bar.close()
    if shard is not None:
        return journal.path
    write_csv_atomic(dest / MANIFEST, MANIFEST_COLUMNS, (r for r in _in_order(journal) if r["status"] == "written"))
    return write_json_atomic(dest / EXPORT_FILE, _summary(_in_order(journal), data, kinds, reviewed, out))


def _merge_shard_rows(dest: Path, journal: Any, done: set[int]) -> None:
    """Append to ``journal`` every row the shard processes wrote that it lacks (a row at a time)."""
    from audit.dataset.record_store import JsonlRecords

    for part in sorted((dest / SHARDS).glob("*-of-*.jsonl")) if (dest / SHARDS).is_dir() else []:
        for row in JsonlRecords(part).iter(repair=False):
            if int(row["index"]) not in done:
                journal.append(row)
                done.add(int(row["index"]))
    journal.close()


def _in_order(journal: Any) -> Iterator[dict[str, Any]]:
    """The journal's rows by source position: streamed when they are in order already (a run in one
    process, or shards merged in order), else sorted in memory."""
    last = -1
    for row in journal.iter(repair=False):
        if row["index"] < last:
            yield from sorted(journal.iter(repair=False), key=lambda r: r["index"])
            return
        last = row["index"]
    yield from journal.iter(repair=False)


def _export_one(
    item: Any,
    record: tuple[str | None, str, list[list[int]]] | None,
    positions: dict[int, str],
    classes: dict[str, str],
    dest: Path,
    blur: Any,
) -> dict[str, Any]:
    """One image's row: written (faces blurred), left out (why) or not written (why)."""
    row: dict[str, Any] = {"index": item.index, "image": item.relpath, "class": item.label, "caption": item.caption}
    if record is None:
        return {**row, "status": "not written", "why": "no audit record (the dataset grew since the audit)"}
    sha, status, boxes = record
    if status != "ok":
        return {**row, "status": "not written", "why": f"unreadable in the audit: {status}"}
    why = positions.get(item.index) or classes.get(item.label)
    if why:
        return {**row, "status": "left out", "why": why}
    if item.path is not None:
        result = item.load()
        if not result.ok or result.sha256 != sha:
            return {**row, "status": "not written", "why": "changed or unreadable since the audit: audit again"}
        image = result.image
    else:
        image = item.pixels
    name, fmt = release_name(item.relpath)
    digest = _write_image(dest / IMAGES / name, blur(image, boxes) if boxes else image, fmt)
    return {
        **row,
        "status": "written",
        "path": f"{IMAGES}/{name}",
        "faces_blurred": len(boxes),
        "boxes": boxes,
        "source_sha256": sha,
        "sha256": digest,
    }


def _summary(
    rows: Iterable[dict[str, Any]],
    data: dict[str, Any],
    kinds: list[str],
    reviewed: Any,
    out: Path,
) -> dict[str, Any]:
    from audit.provenance import provenance

    known = data.get("known_faces") or {}
    missed = [
        f"{r['image']}: {r['missed']} documented face(s) not detected, so not blurred"
        for r in known.get("images", [])
        if r["missed"]
    ]
    written = faces = unblurred = 0
    reasons: Counter[str] = Counter()
    listed: list[dict[str, Any]] = []
    for r in rows:  # a row at a time: a release of millions is never held
        if r["status"] == "written":
            written += 1
            faces += r["faces_blurred"]
            unblurred += not r["faces_blurred"]
            continue
        reasons[r["status"] + ": " + r["why"].split(":")[0]] += 1
        if len(listed) < LEFT_OUT_LISTED:
            listed.append({k: r[k] for k in ("index", "image", "class", "status", "why")})
    return {
        "dataset": data["dataset"],
        "audit": str(out),
        "written": written,
        "faces_blurred": faces,
        "images_with_faces_blurred": written - unblurred,
        "left_out": dict(sorted(reasons.items())),
        "left_out_images": listed,
        "leave_out": kinds,
        "reviewed": str(reviewed) if reviewed else None,
        "blur": "Gaussian, radius max(2, shorter box side / 4), over the detected box grown by 20% per side, at "
        "full resolution; images re-encoded RGB without metadata (EXIF and GPS dropped)",
        "detector": data["analyzer"].get("model", data["analyzer"].get("backend")),
        "limitations": [
            "Only faces the audit's detector found are blurred: a face it missed (small, profile, occluded, "
            f"low light, drawn) is left as it is. {unblurred} written image(s) had no detected face and are "
            "unchanged apart from re-encoding: look at them before publishing.",
            "Blurring hides a face from a viewer, not necessarily from a recognition model; hair, tattoos, "
            "clothes, text and places still identify people.",
            *missed,
        ],
        "provenance": provenance(command="genaudit audit export-blurred", config={"leave_out": kinds}),
    }
