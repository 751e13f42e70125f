"""Near-copies of training images among a benchmark's generated images (``bench --training``).

Two copy-detection spaces and the two criteria the literature uses, each with its threshold stated in
every result (docs/memorization.md has the definitions and how the defaults were chosen):

* **pixels**: the image in grey, box-resized to side x side (:data:`PIXEL_SIDE`, or the smallest side of
  the first training images when that is smaller: 8 for the digits, so no image is compared at more
  detail than the training set has), mean-centred and scaled to unit length, so that distance ignores brightness and
  contrast; the Euclidean distance between two such vectors lies in [0, 2].
  Criterion ``ratio`` (Carlini et al., USENIX Security 2023): the distance to the nearest training image
  divided by the mean distance to the :data:`NEIGHBOURS` nearest ones; a generation is a near-copy when
  the ratio is below the threshold (their test with alpha = 0.5 is ratio < alpha * delta). A relative test:
  a digit that is merely typical has many training images about as close as its nearest one.
* **features**: the benchmark extractor's features, centred on the reference images' mean (the data's
  centre, known before the training images are read) and scaled to unit length. Criterion
  ``similarity`` (after Somepalli et al., CVPR 2023, who use SSCD copy-detection features and a cosine
  similarity of 0.5): the nearest training image's cosine similarity at or above the threshold. genaudit
  has no SSCD weights offline, so its default threshold is its own (documented).

The search is exact and streamed: every cell still to check is a set of query vectors (small: cells x n),
and the training images go by ONE chunk at a time, each query keeping its ``neighbours`` best; memory is
the queries, their neighbours and one block of distances, whatever the training set's size; time grows as
generated x training images (figures in docs/memorization.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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
TRAIN_BLOCK = 16_384  # training vectors merged at a time
EXACT_LIMIT = 2_000_000_000  # generated x training pairs searched exactly; above, an index over the queries
PROBES = 8  # lists of the query index each training vector is compared with
SMALL_PROBLEM = 200_000  # query x base pairs below which a merge is one numpy product
INDEX_BLOCK = 131_072  # training vectors merged at a time through the index: each list's share stays large


def pixel_vectors(images: np.ndarray | list[np.ndarray], side: int = PIXEL_SIDE, normalise: bool = True) -> np.ndarray:
    """(N, H, W[, C]) images, or a list of them in several sizes -> (N, side * side) float32: grey,
    box-resized from each image's own size, then (``normalise``) mean-centred and of unit length (a flat
    image stays the zero vector)."""
    from PIL import Image

    out = np.empty((len(images), side * side), dtype=np.float32)
    for i, image in enumerate(images):
        g = np.asarray(image, dtype=np.float32)
        g = g.mean(axis=-1) if g.ndim == 3 else g
        if g.shape != (side, side):
            g = np.asarray(Image.fromarray(g, mode="F").resize((side, side), Image.Resampling.BOX))
        out[i] = g.ravel()
    return _centred_unit(out) if normalise else out


def _centred_unit(x: np.ndarray) -> np.ndarray:
    return _unit(x - x.mean(axis=1, keepdims=True))


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class NearestStream:
    """The ``k`` nearest base vectors of each query (Euclidean), kept while base vectors stream by in
    chunks: memory is the queries, their ``k`` best and one block of distances, whatever the base's size.
    Base vectors carry ids (their position in the source), so names and images are looked up afterwards."""

    def __init__(self, queries: np.ndarray, k: int, lists: int = 0, probes: int = PROBES) -> None:
        self.queries = np.asarray(queries, dtype=np.float32)
        self.k = k
        self.d2 = np.full((len(self.queries), k), np.inf)
        self.ids = np.full((len(self.queries), k), -1, dtype=np.int64)
        self.seen = 0
        self._buffer: list[tuple[np.ndarray, np.ndarray]] = []
        self._buffered = 0
        self.index = QueryIndex(self.queries, lists, probes) if lists > 1 else None

    def update(self, base: np.ndarray, ids: np.ndarray) -> None:
        """Take in base vectors (a chunk as the source reads them) and their ids; they are buffered up to
        :data:`TRAIN_BLOCK` and merged a block at a time (a merge per small chunk costs more than its
        distances)."""
        self._buffer.append((np.asarray(base, dtype=np.float32), np.asarray(ids, dtype=np.int64)))
        self._buffered += len(base)
        self.seen += len(base)
        if self._buffered >= (TRAIN_BLOCK if self.index is None else INDEX_BLOCK):
            self._flush()

    def _flush(self) -> None:
        """Merge the buffered block: its own ``k`` nearest per query (scikit-learn's brute-force search, a
        compiled top-k over float32 distances), then the best ``k`` of those and the ones kept so far; with an
        index, each base vector only against the queries of the lists it probes."""
        if not self._buffer:
            return

        base = np.concatenate([b for b, _ in self._buffer])
        ids = np.concatenate([i for _, i in self._buffer])
        self._buffer, self._buffered = [], 0
        if self.index is None:
            self._merge(np.arange(len(self.queries)), base, ids)
            return
        for rows, members in self.index.pairs(base):  # each list's queries against the base vectors probing it
            self._merge(rows, base[members], ids[members])

    def _merge(self, rows: np.ndarray, base: np.ndarray, ids: np.ndarray) -> None:
        """Queries ``rows`` against ``base``: their k nearest there, merged with the k kept so far. A large
        problem goes to scikit-learn's compiled brute-force top-k; a small one (an index list's share of a
        block) is one numpy product, where scikit-learn's per-call overhead would cost more than the work."""
        queries = self.queries[rows]
        if len(rows) * len(base) >= SMALL_PROBLEM:
            from sklearn.neighbors import NearestNeighbors

            k = min(self.k, len(base))
            dist, local = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(base).kneighbors(queries)
            found_d2, found = dist.astype(np.float64) ** 2, ids[local]
        else:
            b64 = base.astype(np.float64)
            found_d2 = np.maximum(
                (queries.astype(np.float64) ** 2).sum(1)[:, None] + (b64**2).sum(1)[None, :]
                - 2.0 * (queries.astype(np.float64) @ b64.T), 0.0,
            )  # fmt: skip
            found = np.broadcast_to(ids, found_d2.shape)
        cand_d = np.concatenate([self.d2[rows], found_d2], axis=1)
        cand_i = np.concatenate([self.ids[rows], found], axis=1)
        keep = np.argpartition(cand_d, self.k - 1, axis=1)[:, : self.k]
        self.d2[rows] = np.take_along_axis(cand_d, keep, axis=1)
        self.ids[rows] = np.take_along_axis(cand_i, keep, axis=1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(distances ascending, ids), each (queries, min(k, vectors seen))."""
        self._flush()
        if not self.seen:
            raise InputError("the training set is empty: nothing to compare generated images with")
        width = min(self.k, self.seen)
        order = np.lexsort((self.ids, self.d2), axis=1)[:, :width]  # by distance, ties by id: deterministic
        return np.sqrt(np.take_along_axis(self.d2, order, axis=1)), np.take_along_axis(self.ids, order, axis=1)


class QueryIndex:
    """An inverted file over the QUERIES (Jegou et al.'s IVF, turned around so that the training images can
    still stream by once): k-means cuts the generated images' vectors into ``lists``; each training vector
    is compared only with the queries of the ``probes`` lists whose centres are nearest to it, not with all
    of them. A training image identical to a generated one always meets it (both are nearest to that
    query's own centre), so exact copies are never missed; other neighbours can be (recall measured in
    benchmarks/memorization_bench.py). Work per training vector: queries x probes / lists instead of all."""

    def __init__(self, queries: np.ndarray, lists: int, probes: int) -> None:
        from sklearn.cluster import MiniBatchKMeans

        lists = min(lists, len(queries))
        km = MiniBatchKMeans(n_clusters=lists, n_init=1, random_state=0, batch_size=4096).fit(queries)
        self.centres = km.cluster_centers_.astype(np.float32)
        self.members = [np.flatnonzero(km.labels_ == j) for j in range(lists)]
        self.probes = min(probes, lists)

    def pairs(self, base: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(query rows of a list, rows of ``base`` that probe it), for every list some base vector probes."""
        d2 = (base**2).sum(1)[:, None] + (self.centres**2).sum(1)[None, :] - 2.0 * base @ self.centres.T
        probe = np.argpartition(d2, self.probes - 1, axis=1)[:, : self.probes].ravel()
        base_rows = np.repeat(np.arange(len(base)), self.probes)
        order = np.argsort(probe, kind="stable")  # base rows grouped by the list they probe
        lists, starts = np.unique(probe[order], return_index=True)
        for j, start, stop in zip(lists, starts, [*starts[1:], len(order)], strict=True):
            if len(self.members[j]):
                yield self.members[j], base_rows[order[start:stop]]


def index_lists(queries: int, training: int) -> int:
    """How many lists to cut the queries into: none (exact) below :data:`EXACT_LIMIT` distance pairs, else
    about sqrt(queries), at least 16, so that probing 8 lists does about sqrt(queries) / 8 times less work."""
    if queries * training <= EXACT_LIMIT or queries < 1024:
        return 0
    return max(16, int(np.sqrt(queries)))


def nearest(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest rows of ``base`` for each row of ``queries`` (:class:`NearestStream` over one
    chunk): (distances ascending, row indices)."""
    stream = NearestStream(queries, k)
    stream.update(base, np.arange(len(base)))
    return stream.result()


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
        try:
            return cls(**(options or {}))
        except TypeError:
            known = ", ".join(cls.__dataclass_fields__)
            raise InputError(f"memorization options are {known}; got {sorted(options or {})}") from None

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
    pixel_nearest: tuple[np.ndarray, np.ndarray],
    feature_nearest: tuple[np.ndarray, np.ndarray] | None,
    criteria: Criteria,
    side: int,
) -> dict[str, Any]:
    """One cell's near-copies under both criteria, from its images' nearest training images (pixel space:
    the ``neighbours`` nearest; feature space: the nearest; distances between unit vectors, ids = source
    positions). ``share`` / ``ci95`` / ``count`` / ``copies`` (the first :data:`COPIES_LISTED`, closest first:
    image index in the cell, training position, pixel distance, ratio, similarity) follow
    ``criteria.criterion``; ``criteria`` holds both criteria's counts; ``nearest`` the cell's
    nearest-neighbour quantiles; ``closest`` the pairs the card draws. Training positions become names in
    :meth:`MemorizationCheck.finish`."""
    from audit.dataset.demographics import wilson_interval

    dist, idx = pixel_nearest
    d1 = dist[:, 0]
    mean_n = dist.mean(axis=1)
    ratio = np.where(mean_n > 0, d1 / np.where(mean_n > 0, mean_n, 1.0), 0.0)  # all neighbours identical: a copy
    flags = {"ratio": ratio < criteria.ratio}
    similarity, nearest_training = None, idx[:, 0]
    if feature_nearest is not None:
        fdist, fidx = feature_nearest
        if criteria.criterion == "similarity":
            nearest_training = fidx[:, 0]
        similarity = 1.0 - fdist[:, 0] ** 2 / 2.0  # unit vectors: |a - b|^2 = 2 - 2 cos
        flags["similarity"] = similarity >= criteria.similarity
    elif criteria.criterion == "similarity":
        raise InputError("the similarity criterion needs the extractor's features of the training images")
    n = len(d1)
    by_criterion = {}
    for name, flagged in flags.items():
        hits = int(flagged.sum())
        lo_hi = wilson_interval(hits, n)
        by_criterion[name] = {
            "criterion": criteria.describe(name, side),
            "count": hits,
            "share": hits / n,
            "ci95": list(lo_hi) if lo_hi else None,
        }
    chosen = flags[criteria.criterion]
    key = ratio if similarity is None or criteria.criterion == "ratio" else -similarity
    order = [int(i) for i in np.argsort(key, kind="stable") if chosen[i]]

    def row(i: int) -> dict[str, Any]:
        item = {"index": i, "training": int(nearest_training[i]), "distance": float(d1[i]), "ratio": float(ratio[i])}
        if similarity is not None:
            item["similarity"] = float(similarity[i])
        return item

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
        "closest": [row(int(i)) for i in np.argsort(key, kind="stable")[:PAIRS_SHOWN]],  # drawn, copies or not
    }


def _quantiles(values: np.ndarray) -> dict[str, float]:
    qs = np.quantile(values, [0.0, 0.05, 0.5, 0.95, 1.0])
    return dict(zip(("min", "q05", "median", "q95", "max"), (float(q) for q in qs), strict=True))


def training_records(spec: str, info: dict[str, Any]) -> Iterator[tuple[int, str, Any]]:
    """A training source as (position, name, loader) triples, nothing decoded until ``loader()`` is called
    (it returns the uint8 image or None when unreadable): ``builtin:digits-train`` (the embedded DDPM's
    1,500 training digits) or any source genaudit reads, through the one loader."""
    if spec == "builtin:digits-train":
        from audit.zoo import digits

        grey, _ = digits.load_split("train")
        info.update(spec=spec, source="sklearn load_digits(), first 1,500 images (the DDPM's training set)")
        for i, image in enumerate(grey):
            yield i, f"digits-train/{i:04d}", lambda image=image: np.repeat(image[..., None], 3, axis=-1)
        return
    from audit.io import open_source
    from audit.io.sources import load_record

    info["spec"] = spec

    def load(record: Any) -> np.ndarray | None:
        result = load_record(record)
        return result.image if result.ok else None

    for position, record in enumerate(open_source(spec)):
        yield position, record.relpath, lambda record=record: load(record)


def training_chunks(
    spec: str, info: dict[str, Any], chunk: int = 256, part: Any = None
) -> Iterator[tuple[np.ndarray, list]]:
    """(positions, images) chunks of the readable training images; ``info`` gets their count and the
    unreadable ones' count. ``part`` (:class:`audit.scale.shards.Shard` K of N): only positions p with
    p % N == K, the others skipped before they are decoded (a bench shard's share, docs/scale-out.md)."""
    positions: list[int] = []
    images: list[np.ndarray] = []
    readable = refused = 0
    for position, _, load in training_records(spec, info):
        if part is not None and position % part.n != part.k:
            continue
        image = load()
        if image is None:
            refused += 1
            continue
        positions.append(position)
        images.append(image)
        readable += 1
        if len(images) == chunk:
            yield np.asarray(positions), images
            positions, images = [], []
    if images:
        yield np.asarray(positions), images
    info.update(images=readable, refused=refused)


class MemorizationCheck:
    """``bench --training``: each cell's images are turned into query vectors as the run scores them
    (:meth:`tap`, :meth:`add`); :meth:`finish` then makes ONE streamed pass over the training images for
    every cell that has no result yet, and a second, decoding only the images it draws, for names and pairs.
    Each cell's result is kept in its folder (:data:`FILE`) under a key of the format, the run's config, the
    training source (its listing: names, sizes, modification times), the criteria and the extractor, so a
    resumed run reads the training set only when a cell is new."""

    FILE = "memorization.json"

    def __init__(
        self,
        spec: str,
        options: dict[str, Any] | None,
        extractor: Any,
        feature_mean: Any,
        salt: str,
        cache: Any = None,
    ) -> None:
        """``cache`` (a :class:`audit.metrics.evaluator.FeatureCache`): training features already extracted
        (by the bench's shards); the training pass sends only the images it lacks through ``extractor``."""
        import hashlib
        import json

        from audit.io.sources import listing_digest

        self.spec, self.criteria, self.extractor, self.info = spec, Criteria.from_options(options), extractor, {}
        self.cache = cache
        self.feature_mean = None if feature_mean is None else np.asarray(feature_mean, dtype=np.float32)
        first = next(training_chunks(spec, {}, chunk=64), None)
        if first is None:
            raise InputError(f"training set {spec}: no readable images")
        self.side = min(PIXEL_SIDE, *(min(im.shape[:2]) for im in first[1]))
        digest = hashlib.sha256(f"{FORMAT}\n{salt}\n{extractor.id}\n{self.side}".encode())
        digest.update(json.dumps(vars(self.criteria), sort_keys=True).encode())
        if spec == "builtin:digits-train":
            from audit.zoo.digits import N_TRAIN

            listing, self.listed = hashlib.sha256(spec.encode()).hexdigest(), N_TRAIN
        else:
            listing, self.listed = listing_digest(spec)
        digest.update(listing.encode())
        if self.feature_mean is not None:
            digest.update(self.feature_mean.tobytes())
        self.key = digest.hexdigest()
        self._pixels: list[np.ndarray] = []
        self.pending: list[tuple[Any, np.ndarray, np.ndarray | None]] = []  # (folder, pixels, features)
        self.done: dict[str, dict[str, Any]] = {}

    def pixel_vectors(self, images: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """Images in the pixel space: grey at 16 x 16, then (for smaller training images) at ``side``."""
        grey = pixel_vectors(images, PIXEL_SIDE, normalise=False)
        if self.side < PIXEL_SIDE:  # a box-resize of the 16 x 16 grey: the same as resizing the image
            grey = pixel_vectors(grey.reshape(-1, PIXEL_SIDE, PIXEL_SIDE), self.side, normalise=False)
        return _centred_unit(grey)

    def feature_vectors(self, raw: np.ndarray) -> np.ndarray:
        """Extractor features centred on the reference images' mean (the data distribution's centre, known
        before the training pass) and of unit length."""
        return _unit(np.asarray(raw, dtype=np.float32) - self.feature_mean)

    def tap(self, chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Pass a cell's image chunks through, keeping their pixel vectors for the next :meth:`add`."""
        self._pixels = []
        for chunk in chunks:
            self._pixels.append(self.pixel_vectors(chunk))
            yield chunk

    def stored(self, folder: Any) -> dict[str, Any] | None:
        """The cell's result from an earlier run with the same key, else None (and it is kept for the card)."""
        import json
        from pathlib import Path

        try:
            doc = json.loads((Path(folder) / self.FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("key") != self.key:
            return None
        self.done[str(folder)] = doc["result"]
        if not self.info.get("images"):
            self.info.update(doc.get("training") or {})  # what the training pass found, when it ran before
        return doc["result"]

    def add(self, folder: Any, features: np.ndarray | None) -> None:
        """The cell whose chunks were just tapped: queued for the training pass."""
        pixels = np.concatenate(self._pixels)
        self._pixels = []
        feats = None if features is None or self.feature_mean is None else self.feature_vectors(features)
        self.pending.append((folder, pixels, feats))

    def finish(self, progress: bool = False) -> dict[str, dict[str, Any]]:
        """Search the training set for every queued cell (one pass), write each cell's result, and return
        every cell's result by folder, with training names and the pairs' picture."""
        from pathlib import Path

        from tqdm.auto import tqdm

        from audit.atomic import write_json_atomic
        from audit.io.images import image_batch

        if self.pending:
            pixels = np.concatenate([p for _, p, _ in self.pending])
            with_features = all(f is not None for _, _, f in self.pending)
            lists = index_lists(len(pixels), self.listed)
            self.info["search"] = (
                f"inverted file over the generated images: {lists} lists, each training image against {PROBES}"
                if lists
                else "exact"
            )
            pix = NearestStream(pixels, self.criteria.neighbours, lists)
            feats = np.concatenate([f for _, _, f in self.pending]) if with_features else None
            feat = NearestStream(feats, 1, lists) if feats is not None else None
            for positions, images in tqdm(training_chunks(self.spec, self.info), desc="training images",
                                          unit="chunk", disable=not progress):  # fmt: skip
                batch = image_batch(images)  # several sizes: each image resized once, from its own size
                pix.update(self.pixel_vectors(batch), positions)
                if feat is not None:
                    raw = self.cache.extract(self.extractor, batch) if self.cache is not None else self.extractor(batch)
                    feat.update(self.feature_vectors(raw["features"]), positions)
            pd, pi = pix.result()
            fd, fi = feat.result() if feat is not None else (None, None)
            start = 0
            for folder, p, _ in self.pending:
                cut = slice(start, start + len(p))
                start += len(p)
                found = cell_memorization((pd[cut], pi[cut]), None if fd is None else (fd[cut], fi[cut]),
                                          self.criteria, self.side)  # fmt: skip
                self.done[str(folder)] = found
            self._name_and_draw([self.done[str(f)] for f, _, _ in self.pending], [f for f, _, _ in self.pending])
            for folder, _, _ in self.pending:
                doc = {"key": self.key, "training": self.info, "result": self.done[str(folder)]}
                write_json_atomic(Path(folder) / self.FILE, doc)
            self.pending = []
        return self.done

    def _name_and_draw(self, results: list[dict[str, Any]], folders: list[Any]) -> None:
        """Training positions -> names, and each cell's closest pairs (generated | training) as one PNG, by a
        second pass over the source that decodes only the images drawn."""
        from pathlib import Path

        from audit.bench.store import CellStore
        from audit.io import load_image
        from audit.io.encode import image_grid, png_base64

        named = {c["training"] for r in results for c in r["copies"] + r["closest"]}
        drawn = {c["training"] for r in results for c in r["closest"]}
        names: dict[int, str] = {}
        images: dict[int, np.ndarray] = {}
        for position, name, load in training_records(self.spec, {}):
            if position in named:
                names[position] = name
            if position in drawn:
                images[position] = load()
            if len(names) == len(named) and len(images) == len(drawn):
                break
        for result, folder in zip(results, folders, strict=True):
            pairs = []
            for item in result["closest"]:
                generated = load_image(Path(folder) / "images" / CellStore.image_name(item["index"])).image
                if images.get(item["training"]) is not None:
                    pairs += [generated, images[item["training"]]]
            if pairs:
                cell = 32 if pairs[0].shape[0] <= 32 else 64
                result["pairs_png"] = png_base64(image_grid(pairs, columns=2, cell=cell))
            for item in result["copies"] + result["closest"]:
                item["training"] = names.get(item["training"], f"#{item['training']}")

    def summary(self) -> dict[str, Any]:
        """What the results JSON says once for every cell: the training set and both criteria."""
        return {
            "training": {"spec": self.spec, **self.info},
            "criterion": self.criteria.criterion,
            "criteria": {name: self.criteria.describe(name, self.side) for name in CRITERIA},
            "thresholds": {"ratio": self.criteria.ratio, "similarity": self.criteria.similarity},
            "neighbours": self.criteria.neighbours,
            "pixel_side": self.side,
            "feature_space": self.feature_mean is not None,
        }
