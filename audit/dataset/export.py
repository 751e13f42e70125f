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
``--reviewed FILE``, only the items confirmed there). The export resumes: ``DIR/.export-progress.jsonl``
holds a row per image done, written as each is; a rerun does the rest.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audit.errors import InputError

log = logging.getLogger(__name__)

IMAGES = "images"
MANIFEST = "manifest.csv"
EXPORT_FILE = "export.json"
PROGRESS = ".export-progress.jsonl"
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
) -> Path:
    """Write the release (see the module docstring); returns ``DIR/export.json``."""
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
    journal = JsonlRecords(dest / PROGRESS)
    done = {int(r["index"]) for r in journal.iter()}
    bar = tqdm(desc="export-blurred", unit="img", initial=len(done), total=len(recorded), disable=not progress)
    try:
        for item in dataset_items(spec, columns):
            if item.index in done:
                continue
            journal.append(_export_one(item, recorded.get(item.index), positions, classes, dest, blur_faces))
            bar.update(1)
    finally:
        journal.close()
        bar.close()
    rows = sorted(journal.iter(), key=lambda r: r["index"])
    written = [r for r in rows if r["status"] == "written"]
    write_csv_atomic(dest / MANIFEST, MANIFEST_COLUMNS, written)
    return write_json_atomic(dest / EXPORT_FILE, _summary(rows, written, data, kinds, reviewed, out))


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
    rows: list[dict[str, Any]],
    written: list[dict[str, Any]],
    data: dict[str, Any],
    kinds: list[str],
    reviewed: Any,
    out: Path,
) -> dict[str, Any]:
    from collections import Counter

    from audit.provenance import provenance

    known = data.get("known_faces") or {}
    missed = [
        f"{r['image']}: {r['missed']} documented face(s) not detected, so not blurred"
        for r in known.get("images", [])
        if r["missed"]
    ]
    unblurred = sum(1 for r in written if not r["faces_blurred"])
    left = [r for r in rows if r["status"] != "written"]
    return {
        "dataset": data["dataset"],
        "audit": str(out),
        "written": len(written),
        "faces_blurred": sum(r["faces_blurred"] for r in written),
        "images_with_faces_blurred": len(written) - unblurred,
        "left_out": dict(Counter(r["status"] + ": " + r["why"].split(":")[0] for r in left)),
        "left_out_images": [
            {k: r[k] for k in ("index", "image", "class", "status", "why")} for r in left[:LEFT_OUT_LISTED]
        ],
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
