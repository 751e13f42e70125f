"""Near-copies of training images among a benchmark's generated images (``bench --training``).

Two copy-detection spaces and the two criteria the literature uses, each with its threshold stated in
every result (docs/memorization.md has the definitions and how the defaults were chosen):

* **pixels**: the image in grey, box-resized to side x side (:data:`PIXEL_SIDE`, or the training images'
  smallest side when that is smaller: 8 for the digits, so no image is compared at more detail than the
  training set has), mean-centred and scaled to unit length, so that distance ignores brightness and
  contrast; the Euclidean distance between two such vectors lies in [0, 2].
  Criterion ``ratio`` (Carlini et al., USENIX Security 2023): the distance to the nearest training image
  divided by the mean distance to the :data:`NEIGHBOURS` nearest ones; a generation is a near-copy when
  the ratio is below the threshold (their test with alpha = 0.5 is ratio < alpha * delta). A relative test:
  a digit that is merely typical has many training images about as close as its nearest one.
* **features**: the benchmark extractor's features, centred on the training images' mean and scaled to
  unit length. Criterion ``similarity`` (after Somepalli et al., CVPR 2023, who use SSCD copy-detection
  features and a cosine similarity of 0.5): the nearest training image's cosine similarity at or above
  the threshold. genaudit has no SSCD weights offline, so its default threshold is its own (documented).

The search is exact and blocked: queries against the training vectors a block at a time, the
``NEIGHBOURS`` best kept per query, so memory is one block of distances whatever the training set's size
(time grows as generated x training images; see docs/memorization.md for the figures).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.errors import InputError

PIXEL_SIDE = 16
NEIGHBOURS = 50
RATIO_THRESHOLD = 0.25  # pixel-space ratio below which a generation is a near-copy (docs/memorization.md)
SIMILARITY_THRESHOLD = 0.999  # feature-space cosine similarity at or above which it is one
CRITERIA = ("ratio", "similarity")
FORMAT = "genaudit.memorization/1"  # part of each cell file's key: a result of another format is recomputed
COPIES_LISTED = 100  # near-copies listed per cell (the count and share cover all of them)
PAIRS_SHOWN = 8  # closest (generated | training) pairs drawn per cell
QUERY_BLOCK = 1024
TRAIN_BLOCK = 16_384


def pixel_vectors(images: np.ndarray, side: int = PIXEL_SIDE, normalise: bool = True) -> np.ndarray:
    """(N, H, W[, C]) images -> (N, side * side) float32: grey, box-resized, then (``normalise``)
    mean-centred and of unit length (a flat image stays the zero vector)."""
    from PIL import Image

    images = np.asarray(images)
    grey = images.astype(np.float32).mean(axis=-1) if images.ndim == 4 else images.astype(np.float32)
    out = np.empty((len(grey), side * side), dtype=np.float32)
    for i, g in enumerate(grey):
        if g.shape != (side, side):
            g = np.asarray(Image.fromarray(g, mode="F").resize((side, side), Image.Resampling.BOX))
        out[i] = g.ravel()
    return _centred_unit(out) if normalise else out


def _centred_unit(x: np.ndarray) -> np.ndarray:
    return _unit(x - x.mean(axis=1, keepdims=True))


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def nearest(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest rows of ``base`` for each row of ``queries`` (Euclidean), blocked over both:
    (distances ascending, indices), each (len(queries), min(k, len(base)))."""
    k = min(k, len(base))
    if k < 1:
        raise InputError("the training set is empty: nothing to compare generated images with")
    base_sq = np.einsum("ij,ij->i", base, base, dtype=np.float64)
    dists = np.empty((len(queries), k))
    index = np.empty((len(queries), k), dtype=np.int64)
    for q0 in range(0, len(queries), QUERY_BLOCK):
        q = queries[q0 : q0 + QUERY_BLOCK]
        q_sq = np.einsum("ij,ij->i", q, q, dtype=np.float64)[:, None]
        best_d = np.full((len(q), 0), np.inf)
        best_i = np.zeros((len(q), 0), dtype=np.int64)
        for t0 in range(0, len(base), TRAIN_BLOCK):
            t = base[t0 : t0 + TRAIN_BLOCK]
            d2 = np.maximum(q_sq + base_sq[t0 : t0 + len(t)][None, :] - 2.0 * (q.astype(np.float64) @ t.T), 0.0)
            cand_d = np.concatenate([best_d, d2], axis=1)
            cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(t0, t0 + len(t)), d2.shape)], axis=1)
            keep = np.argpartition(cand_d, k - 1, axis=1)[:, :k] if cand_d.shape[1] > k else None
            if keep is not None:
                cand_d = np.take_along_axis(cand_d, keep, axis=1)
                cand_i = np.take_along_axis(cand_i, keep, axis=1)
            best_d, best_i = cand_d, cand_i
        order = np.lexsort((best_i, best_d), axis=1)  # by distance, ties by training index: deterministic
        dists[q0 : q0 + len(q)] = np.sqrt(np.take_along_axis(best_d, order, axis=1))
        index[q0 : q0 + len(q)] = np.take_along_axis(best_i, order, axis=1)
    return dists, index


@dataclass
class TrainingIndex:
    """The training images in both copy-detection spaces, with their names (``names[j]`` is how the results
    refer to training image j) and the description of the source."""

    names: list[str]
    pixels: np.ndarray
    side: int = PIXEL_SIDE
    features: np.ndarray | None = None
    feature_mean: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, chunks: Iterable[tuple[list[str], np.ndarray]], features: Any = None) -> TrainingIndex:
        """From (names, images) chunks; ``features(images)`` (the benchmark extractor through its cache)
        gives the feature space, or None for pixels only."""
        names: list[str] = []
        grey, feats = [], []
        side = PIXEL_SIDE
        for chunk_names, images in chunks:
            names.extend(chunk_names)
            side = min(side, *images.shape[1:3])
            grey.append(pixel_vectors(images, PIXEL_SIDE, normalise=False))
            if features is not None:
                feats.append(np.asarray(features(images), dtype=np.float32))
        if not names:
            raise InputError("the training set has no readable images")
        pixels = np.concatenate(grey)
        if side < PIXEL_SIDE:  # a second box-resize of the 16 x 16 greys: the same as resizing the images
            pixels = pixel_vectors(pixels.reshape(-1, PIXEL_SIDE, PIXEL_SIDE), side, normalise=False)
        index = cls(names=names, pixels=_centred_unit(pixels), side=side)
        if feats:
            raw = np.concatenate(feats)
            index.feature_mean = raw.mean(axis=0)
            index.features = _unit(raw - index.feature_mean)
        return index

    def pixel_vectors(self, images: np.ndarray) -> np.ndarray:
        """Generated images in this index's pixel space (the same two resizes as the training images)."""
        grey = pixel_vectors(images, PIXEL_SIDE, normalise=False)
        if self.side < PIXEL_SIDE:
            grey = pixel_vectors(grey.reshape(-1, PIXEL_SIDE, PIXEL_SIDE), self.side, normalise=False)
        return _centred_unit(grey)

    def feature_vectors(self, raw: np.ndarray) -> np.ndarray:
        """Generated images' extractor features in this index's feature space."""
        return _unit(np.asarray(raw, dtype=np.float32) - self.feature_mean)


@dataclass(frozen=True)
class Criteria:
    """The thresholds and neighbour count of both criteria, and which one decides ``share``."""

    criterion: str = "ratio"
    ratio: float = RATIO_THRESHOLD
    similarity: float = SIMILARITY_THRESHOLD
    neighbours: int = NEIGHBOURS

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise InputError(f"memorization criterion must be one of {', '.join(CRITERIA)}, got {self.criterion!r}")
        if not 0.0 < self.ratio <= 1.0 or not -1.0 <= self.similarity <= 1.0 or self.neighbours < 2:
            raise InputError("memorization thresholds: ratio in (0, 1], similarity in [-1, 1], neighbours >= 2")

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> Criteria:
        return cls(**(options or {}))

    def describe(self, name: str, side: int = PIXEL_SIDE) -> str:
        if name == "ratio":
            return (
                f"ratio: pixel distance ({side}x{side} grey, centred, unit length) to the nearest training "
                f"image / mean distance to the {self.neighbours} nearest < {self.ratio:g} (Carlini et al. 2023)"
            )
        return (
            f"similarity: cosine similarity of the extractor's features (centred on the training mean) to the "
            f"nearest training image >= {self.similarity:g} (after Somepalli et al. 2023; not SSCD features)"
        )


def cell_memorization(
    index: TrainingIndex, pixels: np.ndarray, features: np.ndarray | None, criteria: Criteria
) -> dict[str, Any]:
    """One cell's near-copies under both criteria: ``share`` / ``ci95`` / ``count`` / ``copies`` (the first
    :data:`COPIES_LISTED`, closest first: image index in the cell, training image name, pixel distance,
    ratio, similarity) follow ``criteria.criterion``; ``criteria`` holds both criteria's counts;
    ``nearest`` the cell's nearest-neighbour quantiles; ``closest`` the pairs the card draws."""
    from audit.dataset.demographics import wilson_interval

    dist, idx = nearest(pixels, index.pixels, criteria.neighbours)
    d1 = dist[:, 0]
    mean_n = dist.mean(axis=1)
    ratio = np.where(mean_n > 0, d1 / np.where(mean_n > 0, mean_n, 1.0), 0.0)  # all neighbours identical: a copy
    flags = {"ratio": ratio < criteria.ratio}
    similarity, nearest_training = None, idx[:, 0]
    if features is not None and index.features is not None:
        fdist, fidx = nearest(features, index.features, 1)
        if criteria.criterion == "similarity":
            nearest_training = fidx[:, 0]
        similarity = 1.0 - fdist[:, 0] ** 2 / 2.0  # unit vectors: |a - b|^2 = 2 - 2 cos
        flags["similarity"] = similarity >= criteria.similarity
    elif criteria.criterion == "similarity":
        raise InputError("the similarity criterion needs the extractor's features of the training images")
    n = len(pixels)
    by_criterion = {}
    for name, flagged in flags.items():
        hits = int(flagged.sum())
        lo_hi = wilson_interval(hits, n)
        by_criterion[name] = {
            "criterion": criteria.describe(name, index.side),
            "count": hits,
            "share": hits / n,
            "ci95": list(lo_hi) if lo_hi else None,
        }
    chosen = flags[criteria.criterion]
    key = ratio if criteria.criterion == "ratio" else -similarity  # type: ignore[operator]
    order = [int(i) for i in np.argsort(key, kind="stable") if chosen[i]]

    def row(i: int) -> dict[str, Any]:
        training = index.names[int(nearest_training[i])]
        item = {"index": i, "training": training, "distance": float(d1[i]), "ratio": float(ratio[i])}
        if similarity is not None:
            item["similarity"] = float(similarity[i])
        return item

    closest = [int(i) for i in np.argsort(key, kind="stable")[:PAIRS_SHOWN]]
    return {
        **by_criterion[criteria.criterion],
        "images": n,
        "copies": [row(i) for i in order[:COPIES_LISTED]],
        "criteria": by_criterion,
        "nearest": {
            "ratio_quantiles": _quantiles(ratio),
            "distance_quantiles": _quantiles(d1),
            **({"similarity_quantiles": _quantiles(similarity)} if similarity is not None else {}),
        },
        "closest": [row(i) for i in closest],  # the pairs the card draws, copies or not
        "_closest_training": [int(nearest_training[i]) for i in closest],
    }


def _quantiles(values: np.ndarray) -> dict[str, float]:
    qs = np.quantile(values, [0.0, 0.05, 0.5, 0.95, 1.0])
    return dict(zip(("min", "q05", "median", "q95", "max"), (float(q) for q in qs), strict=True))


def named_chunks(spec: str, info: dict[str, Any], chunk: int = 256) -> Iterator[tuple[list[str], np.ndarray]]:
    """A training source as (names, images) chunks: ``builtin:digits-train`` (the embedded DDPM's 1,500
    training digits) or any source genaudit reads, through the one loader; unreadable files are counted in
    ``info["refused"]``; images must share one size (they are compared after resizing, but one source of one
    size is what a training set is)."""
    if spec == "builtin:digits-train":
        from audit.zoo import digits

        grey, _ = digits.load_split("train")
        info.update(spec=spec, n=len(grey), source="sklearn load_digits(), first 1,500 images (the DDPM's training)")
        for start in range(0, len(grey), chunk):
            part = grey[start : start + chunk]
            yield [f"digits-train/{start + i:04d}" for i in range(len(part))], np.repeat(part[..., None], 3, axis=-1)
        return
    from audit.io import open_source
    from audit.io.sources import load_record

    info["spec"] = spec
    names: list[str] = []
    images: list[np.ndarray] = []
    refused = 0
    total = 0
    for record in open_source(spec):
        result = load_record(record)
        if not result.ok:
            refused += 1
            continue
        names.append(record.relpath)
        images.append(result.image)
        total += 1
        if len(images) == chunk:
            yield names, _stack(images, spec)
            names, images = [], []
    if images:
        yield names, _stack(images, spec)
    info.update(n=total, refused=refused)


def _stack(images: list[np.ndarray], spec: str) -> np.ndarray:
    """Images of one chunk as one array when they share a size, else each resized to the first's (pixel
    vectors are resized anyway; the extractor takes one array)."""
    shape = images[0].shape
    if all(im.shape == shape for im in images):
        return np.stack(images)
    from PIL import Image

    h, w = shape[:2]
    return np.stack([im if im.shape == shape else np.asarray(Image.fromarray(im).resize((w, h))) for im in images])


def training_images(spec: str, wanted: set[int]) -> dict[int, np.ndarray]:
    """The training images at positions ``wanted`` (for the card's pairs), by a second pass over the source."""
    found: dict[int, np.ndarray] = {}
    position = 0
    for _, images in named_chunks(spec, {}):
        for im in images:
            if position in wanted:
                found[position] = im
            position += 1
        if len(found) == len(wanted):
            break
    return found


class MemorizationCheck:
    """``bench --training``: the training index built once per run; each cell checked once, its result kept
    in the cell's folder (:data:`FILE`) under a key of the training images' content and the criteria, so a
    resumed run checks only what is new."""

    FILE = "memorization.json"

    def __init__(self, spec: str, options: dict[str, Any] | None, features: Any, salt: str = "") -> None:
        import hashlib
        import json

        self.spec, self.criteria, self.info = spec, Criteria.from_options(options), {}
        self.index = TrainingIndex.build(named_chunks(spec, self.info), features)
        digest = hashlib.sha256(f"{FORMAT}\n{salt}".encode())  # salt: the run's config fingerprint (its images)
        digest.update(self.index.pixels.tobytes())
        digest.update(json.dumps([self.index.names, vars(self.criteria), self.index.side]).encode())
        if self.index.features is not None:
            digest.update(self.index.features.tobytes())
        self.key = digest.hexdigest()
        self._pixels: list[np.ndarray] = []

    def tap(self, chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Pass image chunks through, keeping their pixel vectors for the next :meth:`check`."""
        self._pixels = []
        for chunk in chunks:
            self._pixels.append(self.index.pixel_vectors(chunk))
            yield chunk

    def stored(self, folder: Any) -> dict[str, Any] | None:
        """The cell's result from an earlier run with the same training images and criteria, else None."""
        import json
        from pathlib import Path

        path = Path(folder) / self.FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return doc.get("result") if isinstance(doc, dict) and doc.get("key") == self.key else None

    def check(self, folder: Any, features: np.ndarray | None) -> dict[str, Any]:
        """The cell whose chunks were just tapped: its near-copies, written atomically to its folder."""
        from pathlib import Path

        from audit.atomic import write_json_atomic

        pixels = np.concatenate(self._pixels)
        self._pixels = []
        feats = None if features is None or self.index.features is None else self.index.feature_vectors(features)
        result = cell_memorization(self.index, pixels, feats, self.criteria)
        write_json_atomic(Path(folder) / self.FILE, {"key": self.key, "result": result})
        return result

    def summary(self) -> dict[str, Any]:
        """What the results JSON says once for every cell: the training set and both criteria."""
        return {
            "training": {**self.info, "images": len(self.index.names)},
            "criterion": self.criteria.criterion,
            "criteria": {name: self.criteria.describe(name, self.index.side) for name in CRITERIA},
            "thresholds": {"ratio": self.criteria.ratio, "similarity": self.criteria.similarity},
            "neighbours": self.criteria.neighbours,
            "pixel_side": self.index.side,
            "feature_space": self.index.features is not None,
        }

    def draw_pairs(self, cells: list[tuple[Any, dict[str, Any]]]) -> None:
        """Give each cell's result its closest (generated | training) pairs as one PNG (``pairs_png``), with
        one more pass over the training source for the images drawn."""
        from audit.io import load_image
        from audit.io.encode import image_grid, png_base64

        wanted = {j for _, result in cells for j in result.get("_closest_training", [])}
        training = training_images(self.spec, wanted) if wanted else {}
        for store, result in cells:
            pairs = []
            for item, j in zip(result["closest"], result.pop("_closest_training", []), strict=True):
                generated = load_image(store.images_dir / store.image_name(item["index"])).image
                if j in training:
                    pairs += [generated, training[j]]
            if pairs:
                result["pairs_png"] = png_base64(
                    image_grid(pairs, columns=2, cell=32 if pairs[0].shape[0] <= 32 else 64)
                )
