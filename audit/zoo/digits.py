"""The embedded world's data: scikit-learn's handwritten digits, with one fixed split.

``sklearn.datasets.load_digits()`` ships 1,797 greyscale 8x8 images whose pixels take the 17 integer
levels 0..16. The split is fixed and documented so every figure in the zoo's model cards can be
reproduced: the first 1,500 images train, the last 297 are held out (never seen in training).

Pixels are stored as uint8 with ``level * 255 / 16`` rounded, so a PNG of a real digit and a PNG of a
generated one (quantised to the same 17 levels, see :func:`quantize_to_levels`) are indistinguishable
by format, size or grey-level count.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np

N_TRAIN = 1500
N_HELDOUT = 297
N_LEVELS = 17  # pixel values 0..16 in load_digits
IMAGE_SIZE = 8
NUM_CLASSES = 10
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

Split = Literal["train", "heldout", "all"]


def levels_to_uint8(levels: np.ndarray) -> np.ndarray:
    """Map digit levels 0..16 to uint8 grey values 0..255 (``round(level * 255 / 16)``)."""
    levels = np.asarray(levels, dtype=np.float64)
    return np.clip(np.rint(levels * 255.0 / (N_LEVELS - 1)), 0, 255).astype(np.uint8)


def uint8_to_levels(grey: np.ndarray) -> np.ndarray:
    """Inverse of :func:`levels_to_uint8`: nearest level 0..16 for each uint8 grey value."""
    grey = np.asarray(grey, dtype=np.float64)
    return np.clip(np.rint(grey * (N_LEVELS - 1) / 255.0), 0, N_LEVELS - 1).astype(np.uint8)


def quantize_to_levels(unit: np.ndarray) -> np.ndarray:
    """Quantise images in [0, 1] to the 17 digit levels and return them as uint8 grey values."""
    unit = np.clip(np.asarray(unit, dtype=np.float64), 0.0, 1.0)
    return levels_to_uint8(np.rint(unit * (N_LEVELS - 1)))


DIGITS_CSV_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"  # scikit-learn 1.9.1


def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    """(levels (1797, 8, 8) float64, labels (1797,)): ``load_digits()``'s images and target.

    The file ``load_digits()`` reads (``sklearn/datasets/data/digits.csv.gz``) is read directly when its
    sha256 is the known one, the same ``np.loadtxt`` call on the same bytes, because importing scikit-learn
    costs 1.6 s on the development machine, paid by every process that needs a digit (each bench shard
    and Ray actor, the merge); any other file goes through ``load_digits()`` itself."""
    import gzip
    import hashlib
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        try:
            packed = path.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(packed).hexdigest() == DIGITS_CSV_SHA256:
            data = np.loadtxt(io.StringIO(gzip.decompress(packed).decode("utf-8")), delimiter=",")
            return data[:, :-1].reshape(-1, IMAGE_SIZE, IMAGE_SIZE), data[:, -1].astype(int)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def load_split(split: Split = "all") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)`` of a split: uint8 grey images (N, 8, 8) and int64 labels (N,)."""
    levels, target = _digits_table()
    images = levels_to_uint8(levels)
    labels = target.astype(np.int64)
    if len(images) != N_TRAIN + N_HELDOUT:
        raise RuntimeError(f"load_digits() returned {len(images)} images, expected {N_TRAIN + N_HELDOUT}")
    if split == "train":
        return images[:N_TRAIN], labels[:N_TRAIN]
    if split == "heldout":
        return images[N_TRAIN:], labels[N_TRAIN:]
    if split == "all":
        return images, labels
    raise ValueError(f"unknown split {split!r}: expected 'train', 'heldout' or 'all'")


def to_unit_grey(images: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Bring uint8 images (N, H, W) or (N, H, W, C) to float32 grey in [0, 1] at 8x8.

    This is the embedded models' one preprocessing step: RGB is averaged to grey (the channels are
    equal for digit PNGs), and any other size is resized to 8x8 with PIL's antialiasing box filter. A list
    of images of several sizes (:func:`audit.io.images.image_batch`) is brought over one image at a time,
    each from its own size, with the same result as each alone.
    """
    if isinstance(images, list | tuple) and len({np.shape(im) for im in images}) > 1:
        return np.concatenate([to_unit_grey(np.asarray(im)[None]) for im in images])
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise TypeError(f"expected uint8 images, got {arr.dtype}")
    if arr.ndim == 4:
        arr = arr.mean(axis=-1)
    elif arr.ndim != 3:
        raise ValueError(f"expected images shaped (N, H, W) or (N, H, W, C), got {arr.shape}")
    arr = arr.astype(np.float32)
    if arr.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        from PIL import Image

        arr = np.stack(
            [
                np.asarray(
                    Image.fromarray(a, mode="F").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX),
                    dtype=np.float32,
                )
                for a in arr
            ]
        )
    return arr / 255.0
