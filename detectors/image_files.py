"""Images a detector scores, kept as files and decoded when used: memory does not grow with their number.

``detect``, ``detect calibrate`` and ``detect evaluate`` list every input once through genaudit's loader
(each file is decoded to check it and to record its sha256, pixel key, format and size, then its pixels
are dropped) and decode it again only where its pixels are needed: a chunk at a time for the features
(:func:`chunks`), one at a time for a thumbnail or a face. A file that changed between the two reads is
an error, never a silently different image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from audit.errors import InputError

CHUNK_IMAGES = 32  # images decoded at once for scoring (at most)
CHUNK_PIXELS = 32_000_000  # and at most this many pixels (about 96 MB of RGB), whichever comes first


@dataclass(frozen=True, slots=True)
class ImageFile:
    path: str
    sha256: str
    pixel_key: str
    # (group, listing position // CHUNK_IMAGES): images are scored in batches that never cross a block, so a
    # shard that scores whole blocks batches every image exactly as one process does (float32 convolutions
    # give batch-size-dependent last bits), see docs/scale-out.md
    block: tuple[int, int] | None = None
    span: Any = None  # (offset, size) of the image's bytes in ``path`` (a tar member), or an archives.TableRow


@dataclass
class LazyImages(Sequence[np.ndarray]):
    """A sequence of RGB uint8 images decoded from their files on access (checked by sha256)."""

    files: list[ImageFile] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: slice) -> LazyImages: ...
    def __getitem__(self, index: int | slice) -> np.ndarray | LazyImages:
        if isinstance(index, slice):
            return LazyImages(self.files[index])
        return decode_checked(self.files[index])

    def __add__(self, other: LazyImages) -> LazyImages:
        return LazyImages(self.files + other.files)

    @property
    def blocks(self) -> list[tuple[int, int] | None]:
        return [f.block for f in self.files]

    @property
    def pixel_keys(self) -> list[str]:
        """Each image's pixel key, recorded when it was listed (no decode)."""
        return [f.pixel_key for f in self.files]


def decode_checked(file: ImageFile) -> np.ndarray:
    from audit.io.archives import load_at

    result = load_at(file.path, file.span)
    if not result.ok or result.sha256 != file.sha256:
        raise InputError(f"{file.path} changed or became unreadable while it was being scored: run again")
    return result.image


@dataclass
class MappedImages(Sequence[np.ndarray]):
    """``fn`` applied to each image of ``images`` on access (e.g. a JPEG re-encoding), never all at once."""

    images: Sequence[np.ndarray]
    fn: Callable[[np.ndarray], np.ndarray]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def blocks(self) -> list[Any] | None:
        return getattr(self.images, "blocks", None)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self.fn(np.asarray(im)) for im in self.images[index]]
        return self.fn(np.asarray(self.images[index]))


def chunks(images: Sequence[np.ndarray], max_images: int | None = None) -> Iterator[list[np.ndarray]]:
    """The images decoded, in order, in chunks of at most ``max_images`` images (default
    :data:`CHUNK_IMAGES`, read at call time: the unit whose batches shards reproduce) and
    :data:`CHUNK_PIXELS` pixels (a single larger image is a chunk of its own), never across two blocks
    (:attr:`ImageFile.block`) when the images have them."""
    max_images = max_images or CHUNK_IMAGES
    blocks = getattr(images, "blocks", None)
    chunk: list[np.ndarray] = []
    pixels = 0
    for i in range(len(images)):
        image = np.asarray(images[i])
        size = image.shape[0] * image.shape[1]
        new_block = blocks is not None and i > 0 and blocks[i] != blocks[i - 1]
        if chunk and (new_block or len(chunk) >= max_images or pixels + size > CHUNK_PIXELS):
            yield chunk
            chunk, pixels = [], 0
        chunk.append(image)
        pixels += size
    if chunk:
        yield chunk
