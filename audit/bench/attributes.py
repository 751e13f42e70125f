"""Who the generated images show (``bench --attributes faces[:BACKEND]``): perceived gender and age.

Every generated image of every cell goes once through the audit's face pipeline (the same backends,
detection resolution and abstention rule as ``genaudit audit``; :mod:`audit.dataset.backends`), cached by
pixel content in ``OUT/faces-cache.json`` and kept per cell in ``attributes.json``, so a resumed run
analyses only new images. Per cell and per prompt (or class): images, images with faces, faces, the
perceived female share with its Wilson interval, mean perceived age, age bands, abstentions and the share
of faces perceived under 18 (:func:`audit.dataset.demographics.summarize`, the audit's own statistics).

Against guidance (docs/attributes.md): per prompt, each cell's perceived female share and mean age minus
static guidance's at the same scale, and the skew's change from the unguided cell (w = 0) to each guided
one, where the skew is the distance of the female share from a reference share (the reference images'
own, or parity, 0.5). Both with 95% intervals from a paired bootstrap over images: image i of every cell
has the same condition and seed, so the resampled indices are shared.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from audit.errors import InputError

DRAWS = 1000
FILE = "attributes.json"
CACHE_FILE = "faces-cache.json"
FORMAT = "genaudit.bench-attributes/1"


def backend_of(spec: str) -> str:
    """``faces`` -> the audit's default backend; ``faces:BACKEND`` -> BACKEND (checked)."""
    from audit.dataset.backends import check_spec

    kind, _, backend = spec.partition(":")
    if kind != "faces":
        raise InputError(f"--attributes must be faces or faces:BACKEND, got {spec!r}")
    return check_spec(backend or "dlib-agegender")


class FaceCache:
    """Faces found per image, keyed by the backend and the image's pixels (sha256), saved atomically."""

    def __init__(self, path: Path, backend: str) -> None:
        self.path, self.backend = path, backend
        self.rows: dict[str, list[list[float]]] = {}
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                self.rows = doc["rows"] if doc.get("format") == FORMAT else {}
            except (OSError, ValueError, KeyError, TypeError):
                self.rows = {}  # a damaged cache is rebuilt, never trusted
        self._analyzer: Any = None
        self.analysed = 0

    def key(self, image: np.ndarray) -> str:
        h = hashlib.sha256(self.backend.encode())
        h.update(str(image.shape).encode())
        h.update(np.ascontiguousarray(image).tobytes())
        return h.hexdigest()

    def analyzer(self) -> Any:
        if self._analyzer is None:
            from audit.dataset.backends import get_analyzer

            self._analyzer = get_analyzer(self.backend)
        return self._analyzer

    def faces(self, image: np.ndarray) -> list[list[float]]:
        """[age, p_male, gender confidence, detection score] per face (None where the model gave none)."""
        key = self.key(image)
        if key not in self.rows:
            found = self.analyzer().analyze(image)
            self.rows[key] = [
                [_num(f.age), _num(f.p_male), _num(f.gender_confidence), _num(f.det_score)] for f in found
            ]
            self.analysed += 1
        return self.rows[key]

    def save(self) -> None:
        from audit.atomic import write_json_atomic

        write_json_atomic(self.path, {"format": FORMAT, "backend": self.backend, "rows": self.rows})


def _num(value: Any) -> float | None:
    """A model output as JSON can hold it: None where there is none (NaN is not JSON)."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def cell_faces(store: Any, n: int, cache: FaceCache, salt: str) -> list[list[list[float]]]:
    """Faces of images 0..n-1 of a cell (read from its ``attributes.json`` when made under the same key)."""
    from audit.atomic import write_json_atomic

    path = store.dir / FILE
    key = f"{FORMAT}:{cache.backend}:{salt}"
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("key") == key and len(doc["faces"]) == n:
                return doc["faces"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    faces = []
    for chunk in store.image_chunks(range(n)):
        faces.extend(cache.faces(image) for image in chunk)
    cache.save()
    write_json_atomic(path, {"key": key, "faces": faces})
    return faces


def _groups(conditions: list[Any]) -> dict[str, list[int]]:
    """Image indices per condition (prompt or class), in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, cond in enumerate(conditions):
        groups.setdefault(str(cond), []).append(i)
    return groups


def summary(faces: list[list[list[float]]], conditions: list[Any], abstain_below: float) -> dict[str, Any]:
    """The audit's statistics over all images of a cell and per condition, plus the under-18 share."""
    out = {"overall": _summarize("overall", faces, range(len(faces)), abstain_below)}
    out["conditions"] = {c: _summarize(c, faces, idx, abstain_below) for c, idx in _groups(conditions).items()}
    return out


def _columns(faces: list[list[list[float]]], images: Any) -> Any:
    from audit.dataset.demographics import FaceColumns

    rows = [f for i in images for f in faces[i]]
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return FaceColumns(np.zeros(len(arr), dtype=np.int32), arr[:, 0], arr[:, 1], arr[:, 2])


def _summarize(label: str, faces: list[list[list[float]]], images: Any, abstain_below: float) -> dict[str, Any]:
    from audit.dataset.demographics import summarize, wilson_interval

    images = list(images)
    with_faces = sum(1 for i in images if faces[i])
    stats = summarize(label, len(images), with_faces, _columns(faces, images), abstain_below)
    aged = sum(stats["age_bands"].values())  # the bands cover every age: the faces with a perceived age
    stats["under_18_share"] = stats["children"] / aged if aged else None
    stats["under_18_ci"] = list(ci) if (ci := wilson_interval(stats["children"], aged)) else None
    return stats


def _female_and_age(faces: list[list[list[float]]], images: np.ndarray, abstain_below: float) -> tuple[float, float]:
    """(female share among gendered faces, mean perceived age) of the faces of ``images`` (NaN when none): the
    decision rule of :func:`audit.dataset.demographics.summarize`, without its other statistics, for the
    bootstrap's thousand draws."""
    cols = _columns(faces, images)
    decided = ~np.isnan(cols.p_male) & (cols.confidence >= abstain_below)
    share = float(np.mean(cols.p_male[decided] < 0.5)) if decided.any() else float("nan")
    ages = cols.age[~np.isnan(cols.age)]
    return share, float(ages.mean()) if len(ages) else float("nan")


def paired(
    a: list[list[list[float]]], b: list[list[list[float]]], images: list[int], abstain_below: float, seed: int,
    reference_share: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``a`` minus ``b`` on the same images (same conditions and seeds): female share, mean age and, with a
    reference share, the skew |share - reference|; each with a 95% paired-bootstrap interval over images
    (draws where a side has no gendered face are dropped and counted)."""
    idx = np.asarray(images)
    rng = np.random.default_rng(seed)
    point_a, point_b = _female_and_age(a, idx, abstain_below), _female_and_age(b, idx, abstain_below)
    draws = []
    for _ in range(DRAWS):
        pick = idx[rng.integers(0, len(idx), len(idx))]
        draws.append(_female_and_age(a, pick, abstain_below) + _female_and_age(b, pick, abstain_below))
    d = np.array(draws)
    out = {}
    columns = {"female_share": (0, 2), "mean_age": (1, 3)}
    for name, (i, j) in columns.items():
        out[name] = _difference(point_a[i] - point_b[i], d[:, i] - d[:, j])
    if reference_share is not None:
        skew = np.abs(d[:, [0, 2]] - reference_share)
        point = abs(point_a[0] - reference_share) - abs(point_b[0] - reference_share)
        out["skew"] = _difference(point, skew[:, 0] - skew[:, 1])
    return out


def _difference(point: float, draws: np.ndarray) -> dict[str, Any]:
    from audit.metrics.evaluator import centred_interval

    kept = draws[~np.isnan(draws)]
    if np.isnan(point) or len(kept) < 0.9 * len(draws):
        return {"diff": None if np.isnan(point) else float(point), "ci95": None, "draws_kept": len(kept)}
    lo, hi = centred_interval(kept, float(point))
    return {"diff": float(point), "ci95": [lo, hi], "draws_kept": len(kept), "significant": bool(lo > 0 or hi < 0)}


def reference_share(stats: dict[str, Any] | None, minimum: int = 20) -> dict[str, Any]:
    """The reference images' perceived female share (their :func:`_summarize` statistics), or parity (0.5)
    when they have fewer than ``minimum`` faces with a perceived gender (the embedded digits have none)."""
    gendered = stats["gendered_faces"] if stats else 0
    if stats and gendered >= minimum:
        return {"share": stats["female_share"], "source": "reference images", "gendered_faces": gendered}
    return {"share": 0.5, "source": f"parity (the reference has {gendered} gendered faces, fewer than {minimum})",
            "gendered_faces": gendered}  # fmt: skip


def against_guidance(
    cells: list[dict[str, Any]], faces: dict[str, Any], conditions: list[Any], reference: dict[str, Any],
    abstain_below: float, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """Per condition: each guided non-static cell minus static at the same scale (female share, mean age),
    and each guided cell's skew change from the unguided cell; one sentence per condition."""
    groups = _groups(conditions)
    static = {
        c["schedule"]["scale"]: c for c in cells if c["schedule"]["name"] == "static" and "scale" in c["schedule"]
    }
    baseline = static.get(0.0)
    vs_static, vs_unguided = [], []
    for cell in cells:
        scale = cell["schedule"].get("scale")
        if scale in (None, 0.0):
            continue
        for cond, idx in groups.items():
            if cell["schedule"]["name"] != "static" and scale in static:
                diff = paired(faces[cell["label"]], faces[static[scale]["label"]], idx, abstain_below, seed)
                vs_static.append({"label": cell["label"], "condition": cond, "against": static[scale]["label"], **diff})
            if baseline is not None:
                diff = paired(faces[cell["label"]], faces[baseline["label"]], idx, abstain_below, seed,
                              reference_share=reference["share"])  # fmt: skip
                vs_unguided.append({"label": cell["label"], "condition": cond, "scale": scale, **diff})
    return {"vs_static": vs_static, "vs_unguided": vs_unguided,
            "sentences": _sentences(cells, vs_unguided, groups, reference)}  # fmt: skip


def _sentences(cells: list[dict[str, Any]], rows: list[dict[str, Any]], groups: dict, reference: dict) -> list[str]:
    """Per condition, at each schedule's highest scale: what guidance does to the skew, or that it cannot say."""
    out = []
    top: dict[str, float] = {}
    for c in cells:
        if "scale" in c["schedule"]:
            top[c["schedule"]["name"]] = max(top.get(c["schedule"]["name"], 0.0), c["schedule"]["scale"])
    for cond in groups:
        for row in rows:
            name = next(c["schedule"]["name"] for c in cells if c["label"] == row["label"])
            if row["condition"] != cond or row["scale"] != top.get(name):
                continue
            skew = row.get("skew", {})
            share = row["female_share"]
            where = f"on {cond!r}, {row['label']} against the unguided cell"
            if skew.get("ci95") is None:
                out.append(
                    f"Cannot say what guidance does to the perceived-gender skew {where}: too few gendered faces."
                )
            elif skew["significant"]:
                verb = "amplifies" if skew["diff"] > 0 else "reduces"
                out.append(
                    f"Guidance {verb} the perceived-gender skew {where} by {abs(skew['diff']):.2f} "
                    f"[{skew['ci95'][0]:.2f}, {skew['ci95'][1]:.2f}] (distance of the female share from "
                    f"{reference['share']:.2f}, {reference['source']}; female share changed by "
                    f"{share['diff']:+.2f})."
                )
            else:
                out.append(
                    f"Cannot say that guidance changes the perceived-gender skew {where}: "
                    f"{skew['diff']:+.2f} [{skew['ci95'][0]:.2f}, {skew['ci95'][1]:.2f}] includes 0."
                )
    return out


def analyse_cells(config: Any, out: Path, cells: list[dict[str, Any]], stores: list[Any], progress: bool) -> dict:
    """``bench --attributes``: every cell's faces (cached), each cell's statistics put in ``cell["attributes"]``,
    the reference's share, the comparisons against guidance; what the results JSON keeps."""
    from tqdm.auto import tqdm

    from audit.bench.run import reference_chunks
    from audit.dataset.demographics import DEFAULT_ABSTAIN_BELOW
    from audit.dataset.results import CAVEATS

    cache = FaceCache(out / CACHE_FILE, backend_of(config.attributes))
    conditions = config.conditions()
    faces = {}
    for cell, store in tqdm(list(zip(cells, stores, strict=True)), desc="faces", unit="cell", disable=not progress):
        faces[cell["label"]] = cell_faces(store, config.n, cache, config.fingerprint())
        cell["attributes"] = summary(faces[cell["label"]], conditions, DEFAULT_ABSTAIN_BELOW)
    reference_faces = [cache.faces(image) for chunk in reference_chunks(config.reference, {}) for image in chunk]
    cache.save()
    stats = None  # the same figures on the reference images, beside the cells'
    if reference_faces:
        stats = _summarize("reference", reference_faces, range(len(reference_faces)), DEFAULT_ABSTAIN_BELOW)
    reference = {**reference_share(stats), **({"summary": stats} if stats else {})}
    analyzer = cache.analyzer().describe()  # named (ids, licences, hashes) even when every image was cached
    return {
        "backend": cache.backend,
        "model": analyzer,
        "abstain_below": DEFAULT_ABSTAIN_BELOW,
        "reference": reference,
        "images_analysed_now": cache.analysed,
        **against_guidance(cells, faces, conditions, reference, DEFAULT_ABSTAIN_BELOW, config.seed),
        "caveats": CAVEATS,
    }
