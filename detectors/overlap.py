"""Images that two labelled sets share, so that a contradictory labelling is refused before any scoring.

An image in both ``--real`` and ``--fake`` cannot be both; an image in both ``--training`` and ``--real``
is not held out, so the membership check (and the false-positive rate on real images) would count it on
both sides. Images are compared by their decoded pixels, not their bytes: the same picture saved as PNG
under two names, or re-saved losslessly, is still the same image. Lossy copies (JPEG re-encodes, resizes)
are not caught; that needs a near-duplicate search (the datasheet's difference hash), not this check. A
training image among ``--fake`` is not refused: generators are trained on generated images too. An image in
two ``--fake`` generators (a folder given under two names; or the same blank image two pipelines' safety
filters returned) would leave the evaluation on a generator left out calibrated on it, so it is refused too
(:func:`refuse_across_groups`), as an image in ``--real`` and ``--fake`` is. Repeats within one set are
left alone: real datasets hold duplicates, and a generator can repeat itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from audit.errors import InputError
from audit.hashing import sha256_bytes

SHOWN = 3  # example pairs quoted in the error


def pixel_key(image: np.ndarray) -> str:
    """sha256 of the decoded pixels with their shape and dtype (2x8 and 8x2, uint8 and uint16 never collide)."""
    return sha256_bytes(repr((image.shape, str(image.dtype))).encode() + np.ascontiguousarray(image).tobytes())


def _keys(images: Sequence[np.ndarray]) -> Iterable[str]:
    """Pixel keys: recorded ones for images kept as files (no decode), else computed one at a time."""
    recorded = getattr(images, "pixel_keys", None)
    return recorded if recorded is not None else (pixel_key(im) for im in images)


def shared_images(
    names_a: Sequence[str], images_a: Sequence[np.ndarray], names_b: Sequence[str], images_b: Sequence[np.ndarray]
) -> list[tuple[str, str]]:
    """(name in a, name in b) for every image of ``a`` whose pixels equal an image's of ``b`` (the first such
    image of ``b``), in ``a``'s order."""
    first_b: dict[str, str] = {}
    for name, key in zip(names_b, _keys(images_b), strict=True):
        first_b.setdefault(key, name)
    pairs = []
    for name, key in zip(names_a, _keys(images_a), strict=True):
        match = first_b.get(key)
        if match is not None:
            pairs.append((name, match))
    return pairs


def refuse_shared(
    names_a: Sequence[str], images_a: Sequence[np.ndarray], flag_a: str,
    names_b: Sequence[str], images_b: Sequence[np.ndarray], flag_b: str, why: str,
) -> None:  # fmt: skip
    """Raise :class:`InputError` naming the shared images (a few examples) when the two sets share any."""
    pairs = [(repr(a), repr(b)) for a, b in shared_images(names_a, images_a, names_b, images_b)]
    _refuse(pairs, f"in {flag_a} are also in {flag_b}", why)


def refuse_across_groups(
    names: Sequence[str], images: Sequence[np.ndarray], groups: Sequence[str], flag: str, why: str
) -> None:
    """Raise :class:`InputError` when an image of one group (a ``--fake`` generator) has the pixels of an image
    of another group, naming a few such pairs; images repeated within one group are allowed."""
    first: dict[str, tuple[str, str]] = {}  # pixel key -> (group, name) where it was first seen
    pairs = []
    for name, key, group in zip(names, _keys(images), groups, strict=True):
        seen = first.setdefault(key, (group, name))
        if seen[0] != group:
            pairs.append((f"{seen[0]}: {seen[1]!r}", f"{group}: {name!r}"))
    _refuse(pairs, f"are in two {flag} generators", why)


def _refuse(pairs: list[tuple[str, str]], where: str, why: str) -> None:
    """Raise :class:`InputError` for ``pairs`` of images with identical pixels (quoted as given), when any:
    their count, ``where`` they are, a few examples, and ``why`` that is refused."""
    if pairs:
        examples = "; ".join(f"{a} = {b}" for a, b in pairs[:SHOWN])
        more = f" and {len(pairs) - SHOWN} more" if len(pairs) > SHOWN else ""
        raise InputError(f"{len(pairs)} image(s) {where} (identical pixels): {examples}{more}. {why}")
