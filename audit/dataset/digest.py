"""One streaming pass over an audit's records, keeping only what its statistics need (docs/audit-memory.md).

An audit of millions of images cannot hold its records: a record in memory is about 2 kB. What the
statistics, the datasheet's measured composition and the card's thumbnails need is much less:

- counters (images, faces and refusals per class and reason, formats, EXIF, GPS, NSFW labels);
- per face, its position, class, perceived age, probability of male and gender confidence: 36 bytes
  (:class:`audit.dataset.demographics.FaceColumns`);
- per readable image, its position, sha256, difference hash and size: 58 bytes, for the exact and
  near duplicates and the size quantiles;
- per class, the :data:`audit.dataset.thumbs.PER_CLASS` first images with faces and without (the
  thumbnail candidates), and the refused files (they are listed in the results);
- per captioned image, its position, class and caption score (20 bytes); per class, the offensive terms
  its captions hold (counts); the :data:`LEAST_COHERENT_KEPT` lowest-scoring showable captions and the
  :data:`TERM_EXAMPLES` first captions with terms (:mod:`audit.dataset.captions`, :mod:`audit.dataset.terms`);
- the positions of the images the NSFW check flagged (for the cross-tables, :mod:`audit.dataset.crosstabs`).

An image with a face perceived as under 18, or flagged NSFW, or whose caption holds an offensive term,
is never a thumbnail candidate, blurred or not; nor is any image of a class whose name holds one.

Records may arrive in any order (a store merged from shards holds them in the order the shards
finished): every choice is made by source position, so the result is the same as over the records
sorted by position. The few names the datasheet prints (duplicate examples) are looked up afterwards by
position (:meth:`RecordDigest.composition`'s ``lookup``), in one more pass over the store.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

NO_HASH = np.uint64(0)  # a record without a difference hash (``has_dhash`` says which)
LEAST_COHERENT_KEPT = 64  # lowest-scoring showable captions kept (the card shows the first 16 still showable)
TERM_EXAMPLES = 20  # captions with offensive terms named in the results (all are counted)


class RecordDigest:
    """Feed records with :meth:`add` (any order, each once); then ask for :meth:`stats`,
    :meth:`composition`, :meth:`thumbnail_choice` and :attr:`known`."""

    def __init__(self, known_images: Iterable[str] = (), terms: Any = None) -> None:
        """``terms``: an :class:`audit.dataset.terms.TermChecker` for captions (None: captions unchecked)."""
        from audit.dataset.thumbs import PER_CLASS

        self.per_class = PER_CLASS
        self.instances = 0
        self.labels: dict[str, int] = {}
        self.images: Counter[str] = Counter()
        self.with_faces: Counter[str] = Counter()
        self.face_position, self.face_label, self.face_age = array("q"), array("i"), array("d")
        self.face_p_male, self.face_confidence = array("d"), array("d")
        self.scales: set[float] = set()
        self.refused: list[tuple[int, str, str, Any]] = []
        self.position, self.sha, self.has_sha = array("q"), bytearray(), bytearray()
        self.dhash, self.has_dhash = array("Q"), bytearray()
        self.width, self.height = array("i"), array("i")
        self.formats: Counter[str] = Counter()
        self.exif = self.gps = self.images_with_faces = 0
        self.nsfw_checked = self.nsfw_flagged = 0
        self.nsfw_by_class: Counter[str] = Counter()
        self.nsfw_by_label: Counter[str] = Counter()
        self.shown: Counter[str] = Counter()
        self._candidates: dict[tuple[str, bool], list[tuple[int, int, dict[str, Any]]]] = {}
        self._known_images = set(known_images)
        self._known: list[tuple[int, dict[str, Any]]] = []
        self.terms = terms
        self.captioned: Counter[str] = Counter()
        self.caption_position, self.caption_label, self.caption_score = array("q"), array("i"), array("d")
        self.captions_with_terms: Counter[str] = Counter()
        self.term_counts: dict[str, Counter[str]] = {}
        self._term_examples: list[tuple[int, int, dict[str, Any]]] = []
        self._least_coherent: list[tuple[float, int, dict[str, Any]]] = []
        self.nsfw_positions = array("q")

    # ------------------------------------------------------------------------------------------- input

    def add(self, record: dict[str, Any], position: int) -> None:
        """Take in one record; ``position`` is its place in the source (its ``index``)."""
        self.instances += 1
        caption_terms = self._add_caption(record, position)
        if record["status"] != "ok":
            self.refused.append((position, record["image"], record["status"], record.get("message")))
            return
        label, faces = record["class"], record.get("faces") or []
        code = self.labels.setdefault(label, len(self.labels))
        self.images[label] += 1
        self.with_faces[label] += bool(faces)
        self.images_with_faces += bool(faces)
        nan = math.nan
        for f in faces:
            p, conf, age = f.get("p_male"), f.get("gender_confidence"), f.get("age")
            self.face_position.append(position)
            self.face_label.append(code)
            self.face_age.append(nan if age is None else age)
            self.face_p_male.append(nan if p is None else p)
            self.face_confidence.append(conf if conf is not None else (nan if p is None else max(p, 1.0 - p)))
            if "detect_scale" in f:
                self.scales.add(f["detect_scale"])
        self.position.append(position)
        sha = record.get("sha256")
        self.sha += _sha_key(sha) if sha else bytes(32)
        self.has_sha.append(bool(sha))
        hashed = record.get("dhash")
        self.dhash.append(int(hashed, 16) if hashed else 0)
        self.has_dhash.append(bool(hashed))
        self.width.append(int(record.get("width") or 0))
        self.height.append(int(record.get("height") or 0))
        self.formats[record.get("format") or "in memory"] += 1
        self.exif += bool(record.get("exif"))
        self.gps += bool(record.get("gps"))
        self._add_nsfw(record, label, position)
        if not caption_terms:
            self._add_candidate(record, label, position)
        if record["image"] in self._known_images:
            self._known.append((position, record))

    def _add_caption(self, record: dict[str, Any], position: int) -> list[str]:
        """Count a record's caption, its score and its offensive terms; return the terms."""
        caption = record.get("caption")
        if caption is None:
            return []
        label = record["class"]
        self.captioned[label] += 1
        score = record.get("caption_score")
        if score is not None:
            self.caption_position.append(position)
            self.caption_label.append(self.labels.setdefault(label, len(self.labels)))
            self.caption_score.append(float(score))
        found = self.terms.find(caption) if self.terms is not None else []
        if found:
            self.captions_with_terms[label] += 1
            self.term_counts.setdefault(label, Counter()).update(found)
            example = {"index": position, "image": record["image"], "class": label, "terms": found}
            _keep_smallest(self._term_examples, (position, self.instances, example), TERM_EXAMPLES)
        elif score is not None and record["status"] == "ok" and _showable(record):
            keep = {k: record[k] for k in ("index", "image", "class", "sha256", "faces", "caption", "caption_score")
                    if k in record}  # fmt: skip
            _keep_smallest(self._least_coherent, (float(score), position, keep), LEAST_COHERENT_KEPT)
        return found

    def _add_nsfw(self, record: dict[str, Any], label: str, position: int) -> None:
        if "nsfw" in record:
            self.nsfw_checked += 1
            explicit = record["nsfw"]["explicit"]
            if explicit:
                self.nsfw_positions.append(position)
                self.nsfw_flagged += 1
                self.nsfw_by_class[label] += 1
                self.nsfw_by_label.update(explicit)

    def _add_candidate(self, record: dict[str, Any], label: str, position: int) -> None:
        """Count the record as showable and keep it if it is among its class's first (flagged, or with a
        face perceived under 18: never)."""
        if not _showable(record):
            return
        self.shown[label] += 1
        heap = self._candidates.setdefault((label, bool(record.get("faces"))), [])
        keep = {k: record[k] for k in ("index", "image", "class", "sha256", "faces") if k in record}
        item = (-position, self.instances, keep)  # the count breaks ties: dicts do not compare
        if len(heap) < self.per_class:
            heapq.heappush(heap, item)
        elif item[0] > heap[0][0]:  # earlier in the source than the latest kept
            heapq.heapreplace(heap, item)

    # ------------------------------------------------------------------------------------------ output

    @property
    def known(self) -> list[dict[str, Any]]:
        """The records of the images named at construction (documented faces), in source order."""
        return [record for _, record in sorted(self._known, key=lambda kv: kv[0])]

    def face_columns(self) -> Any:
        """The faces in source order (the order records arrived in must not move a float's last bit)."""
        from audit.dataset.demographics import FaceColumns

        order = np.argsort(np.frombuffer(self.face_position, dtype=np.int64), kind="stable")
        return FaceColumns(
            label=np.frombuffer(self.face_label, dtype=np.int32)[order],
            age=np.frombuffer(self.face_age, dtype=np.float64)[order],
            p_male=np.frombuffer(self.face_p_male, dtype=np.float64)[order],
            confidence=np.frombuffer(self.face_confidence, dtype=np.float64)[order],
        )

    def stats(self, abstain_below: float) -> dict[str, Any]:
        """The audit's statistics: per-class and overall (:func:`audit.dataset.demographics.aggregate_columns`),
        unreadable files by reason, and the detection resolutions used."""
        from audit.dataset.demographics import aggregate_columns

        labels = sorted(self.labels, key=self.labels.__getitem__)  # code order: labels[code]
        stats = aggregate_columns(
            self.face_columns(), labels, dict(self.images), {k: self.with_faces[k] for k in self.images},
            abstain_below=abstain_below,
        )  # fmt: skip
        refused = sorted(self.refused)
        stats["unreadable"] = {
            "count": len(refused),
            "by_reason": dict(Counter(status for _, _, status, _ in refused)),
            "files": [{"image": image, "reason": status, "message": message} for _, image, status, message in refused],
        }
        stats["detection_scales"] = sorted(self.scales)
        return stats

    def duplicates(self) -> tuple[list[list[int]], np.ndarray]:
        """Exact duplicate groups (positions, each group in source order, groups by first position) and
        the positions of the unique images (one per group: the first)."""
        pos = np.frombuffer(self.position, dtype=np.int64)
        sha = np.frombuffer(bytes(self.sha), dtype="S32")
        has = np.frombuffer(bytes(self.has_sha), dtype=bool)
        order = np.lexsort((pos, sha))
        groups: list[list[int]] = []
        repeated = np.zeros(len(pos), dtype=bool)
        if len(order) > 1:
            same = (sha[order][1:] == sha[order][:-1]) & has[order][1:] & has[order][:-1]
            starts = np.flatnonzero(np.diff(np.concatenate([[0], same.astype(np.int8), [0]])) == 1)
            ends = np.flatnonzero(np.diff(np.concatenate([[0], same.astype(np.int8), [0]])) == -1)
            for s, e in zip(starts, ends, strict=True):
                members = order[s : e + 1]
                groups.append(pos[members].tolist())
                repeated[members[1:]] = True
        groups.sort(key=lambda g: g[0])
        return groups, ~repeated

    def composition(self, lookup: Callable[[set[int]], dict[int, str]]) -> dict[str, Any]:
        """The datasheet's measured Composition section (:func:`audit.dataset.datasheet.composition`).
        ``lookup(positions)`` -> their image names, for the examples printed."""
        from audit.dataset.datasheet import EXAMPLE_MEMBERS, NEAR_DUPLICATE_BITS
        from audit.dataset.near_duplicates import near_duplicates

        ok = int(sum(self.images.values()))
        counts = [n for _, n in sorted(self.images.items())]
        entropy = -sum(c / ok * math.log(c / ok) for c in counts) if ok else 0.0
        groups, unique = self.duplicates()
        pos = np.frombuffer(self.position, dtype=np.int64)
        hashed = unique & np.frombuffer(bytes(self.has_dhash), dtype=bool)
        in_order = np.argsort(pos[hashed], kind="stable")
        hashed_pos = pos[hashed][in_order]
        near = near_duplicates(np.frombuffer(self.dhash, dtype=np.uint64)[hashed][in_order], NEAR_DUPLICATE_BITS)
        near_examples = [[int(hashed_pos[i]) for i in c[:EXAMPLE_MEMBERS]] for c in near.clusters[:20]]
        names = lookup({p for g in groups for p in g} | {p for c in near_examples for p in c})
        exact = [sorted(names[p] for p in g) for g in groups]
        widths, heights = np.frombuffer(self.width, dtype=np.int32), np.frombuffer(self.height, dtype=np.int32)
        return {
            "instances": self.instances,
            "readable": ok,
            "classes": dict(sorted(self.images.items())),
            "class_balance": {
                "largest_to_smallest": max(counts) / min(counts) if counts else None,
                "normalized_entropy": entropy / math.log(len(counts)) if len(counts) > 1 else None,
            },
            "exact_duplicates": {
                "groups": len(exact),
                "extra_copies": sum(len(g) - 1 for g in exact),
                "examples": exact[:20],
            },
            "near_duplicates": {
                "pairs": near.pairs,
                "clusters": len(near.clusters),
                "images_in_clusters": sum(len(c) for c in near.clusters),
                "max_bits": NEAR_DUPLICATE_BITS,
                "examples": [
                    {"size": len(c), "images": [names[p] for p in members]}
                    for c, members in zip(near.clusters, near_examples, strict=False)
                ],
            },
            "unreadable": dict(Counter(status for _, _, status, _ in sorted(self.refused))),
            "sizes": {
                "width_min_median_max": _min_median_max(widths),
                "height_min_median_max": _min_median_max(heights),
            },
            "formats": dict(sorted(self.formats.items())),
            "exif_present": self.exif,
            "gps_tagged": self.gps,
            "images_with_faces": self.images_with_faces,
            "nsfw": self.nsfw(),
        }

    def nsfw(self) -> dict[str, Any] | str:
        """:func:`audit.dataset.nsfw.nsfw_composition` of the records taken in."""
        from audit.dataset.demographics import wilson_interval
        from audit.dataset.nsfw import LICENCE

        if not self.nsfw_checked:
            return "not checked (the nsfw backend is an optional extra and was off)"
        return {
            "checked": self.nsfw_checked,
            "flagged": self.nsfw_flagged,
            "flagged_share_ci": list(wilson_interval(self.nsfw_flagged, self.nsfw_checked)),
            "flagged_by_class": dict(sorted(self.nsfw_by_class.items())),
            "by_label": dict(sorted(self.nsfw_by_label.items())),
            "model": "NudeNet 320n.onnx, " + LICENCE,
        }

    def thumbnail_choice(self, hidden_classes: Iterable[str] = ()) -> dict[str, list[dict[str, Any]]]:
        """Per class (the :data:`audit.dataset.thumbs.MAX_CLASSES` with the most showable images, ties by
        name; never one of ``hidden_classes``), up to ``PER_CLASS`` records: those with faces first, each
        kind in source order."""
        from audit.dataset.thumbs import MAX_CLASSES

        hidden = set(hidden_classes)
        shown = [(label, n) for label, n in self.shown.items() if label not in hidden]
        largest = sorted(shown, key=lambda kv: (-kv[1], kv[0]))[:MAX_CLASSES]
        chosen = {}
        for label, _ in largest:
            ranked = [
                record
                for has_faces in (True, False)
                for _, _, record in sorted(self._candidates.get((label, has_faces), []), key=lambda kv: -kv[0])
            ]
            chosen[label] = ranked[: self.per_class]
        return chosen

    def least_coherent(self, hidden_classes: Iterable[str] = ()) -> list[dict[str, Any]]:
        """The lowest-scoring showable captioned records (lowest first, ties by position), outside
        ``hidden_classes``."""
        hidden = set(hidden_classes)
        ranked = sorted(self._least_coherent, key=lambda t: (-t[0], -t[1]))  # heap entries hold negated keys
        return [r for _, _, r in ranked if r["class"] not in hidden]

    def term_examples(self) -> list[dict[str, Any]]:
        """The first :data:`TERM_EXAMPLES` captions with offensive terms, in source order."""
        return [e for _, _, e in sorted(self._term_examples, key=lambda t: (-t[0], -t[1]))]

    def caption_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """(class code, caption score) of every scored caption, in source order."""
        order = np.argsort(np.frombuffer(self.caption_position, dtype=np.int64), kind="stable")
        return (np.frombuffer(self.caption_label, dtype=np.int32)[order],
                np.frombuffer(self.caption_score, dtype=np.float64)[order])  # fmt: skip

    def crosstabs(self, abstain_below: float) -> dict[str, Any]:
        """:func:`audit.dataset.crosstabs.crosstabs` of the faces taken in."""
        from audit.dataset.crosstabs import crosstabs

        positions = np.sort(np.frombuffer(self.face_position, dtype=np.int64), kind="stable")
        flagged = np.frombuffer(self.nsfw_positions, dtype=np.int64)
        return crosstabs(self.face_columns(), positions, self.label_names(), abstain_below, flagged, self.nsfw_checked)

    def label_names(self) -> list[str]:
        """Class names by code (``labels[code]``)."""
        return sorted(self.labels, key=self.labels.__getitem__)


def _showable(record: dict[str, Any]) -> bool:
    """Whether an image may ever be a thumbnail: not flagged NSFW, no face perceived as under 18."""
    from audit.dataset.demographics import CHILD_AGE
    from audit.dataset.nsfw import is_flagged

    if is_flagged(record):
        return False
    return not any(f.get("age") is not None and f["age"] < CHILD_AGE for f in record.get("faces") or [])


def _keep_smallest(heap: list[Any], item: tuple[Any, ...], size: int) -> None:
    """Keep the ``size`` smallest items (by their first two fields) in a max-heap of negated keys."""
    neg = (-item[0], -item[1], item[2])
    if len(heap) < size:
        heapq.heappush(heap, neg)
    elif neg[:2] > heap[0][:2]:
        heapq.heapreplace(heap, neg)


def _sha_key(sha: str) -> bytes:
    """32 bytes standing for a record's sha256: its own bytes when it is 64 hex digits (always, for
    records genaudit wrote), else a hash of the text (a hand-written records file), so equal texts stay
    equal."""
    if len(sha) == 64:
        try:
            return bytes.fromhex(sha)
        except ValueError:
            pass
    import hashlib

    return hashlib.sha256(b"text:" + sha.encode("utf-8", "surrogatepass")).digest()


def _min_median_max(values: np.ndarray) -> list[int] | None:
    return [int(values.min()), int(np.median(values)), int(values.max())] if len(values) else None


def digest_list(
    records: Iterable[dict[str, Any]], known_images: Iterable[str] = (), terms: Any = None
) -> tuple[RecordDigest, Any]:
    """A digest of records in memory (position = place in the list) and its name lookup."""
    records = list(records)
    digest = RecordDigest(known_images, terms)
    for i, record in enumerate(records):
        digest.add(record, record.get("index", i))
    by_position = {r.get("index", i): r["image"] for i, r in enumerate(records)}
    return digest, lambda wanted: {p: by_position[p] for p in wanted}


def digest_store(path: Path, known_images: Iterable[str] = (), terms: Any = None) -> tuple[RecordDigest, Any]:
    """A digest of the records stored at ``path`` (read once, a record at a time) and its name lookup
    (one more pass, asked only for the positions it names)."""
    from audit.dataset.record_store import iter_records

    digest = RecordDigest(known_images, terms)
    for i, record in enumerate(iter_records(path)):
        digest.add(record, record.get("index", i))

    def lookup(wanted: set[int]) -> dict[int, str]:
        if not wanted:
            return {}
        found = {}
        for i, record in enumerate(iter_records(path)):
            if (position := record.get("index", i)) in wanted:
                found[position] = record["image"]
        return found

    return digest, lookup
