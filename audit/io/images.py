"""Load any image file to RGB uint8 the same way everywhere, or refuse it with a recorded reason.

Conventions (the same for every job, so that features and hashes agree):

* EXIF orientation is applied (the array is the image as a viewer shows it).
* Modes: ``1``, ``L``, ``P``, ``RGB``, ``CMYK`` (Pillow's conversion, no ICC colour management),
  ``YCbCr``, ``LAB``, ``HSV`` convert to RGB; greyscale is replicated to three channels.
* Transparency (``LA``, ``RGBA``, ``PA``, ``P`` with a transparency entry) is composited on WHITE.
* 16-bit greyscale (``I;16*``) and 32-bit integer (``I``) are scaled from 0..65535 to 0..255
  (``round(v / 257)``, values outside clipped), never clipped at 255 as ``Image.convert('L')`` would.
  Float (``F``) is clipped to 0..255.
* Animated images (GIF, APNG, WebP, multi-page TIFF) use frame 0.
* Only regular files are opened: a FIFO, socket, device or directory (or a link to one) is refused as
  ``not_a_file`` without being opened for reading, so nothing blocks or reads without end; a dangling
  link is ``missing`` and a link loop ``unreadable``.
* Refused, never raised: zero-byte files, files over ``max_bytes``, non-images, images over
  ``max_pixels`` (decompression bombs: checked from the header, before any pixel is decoded),
  truncated and corrupt files. The default pixel limit is Pillow's own ``MAX_IMAGE_PIXELS``
  (89,478,485 pixels, about 9459 x 9459); set it per call or with ``GENAUDIT_MAX_PIXELS``.
"""

from __future__ import annotations

import errno
import io
import math
import os
import stat
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audit.hashing import sha256_bytes

DEFAULT_MAX_PIXELS = 89_478_485
DEFAULT_MAX_BYTES = 512 * 1024 * 1024

# Refusal reasons: stable codes that reports count and tests check.
EMPTY = "empty"
TOO_LARGE = "too_large"
NOT_AN_IMAGE = "not_an_image"
TRUNCATED = "truncated"
CORRUPT = "corrupt"
UNREADABLE = "unreadable"
MISSING = "missing"
OUTSIDE_ROOT = "outside_root"
MANIFEST_ERROR = "manifest_error"
NOT_A_FILE = "not_a_file"
BACKEND_ERROR = "backend_error"
REASONS = (
    EMPTY,
    TOO_LARGE,
    NOT_AN_IMAGE,
    TRUNCATED,
    CORRUPT,
    UNREADABLE,
    MISSING,
    OUTSIDE_ROOT,
    MANIFEST_ERROR,
    NOT_A_FILE,
    BACKEND_ERROR,
)
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)

_GPS_IFD_TAG = 0x8825
_ORIENTATION_TAG = 0x0112


@dataclass
class LoadResult:
    """One file's outcome: ``image`` (H, W, 3) uint8 when loaded, else ``reason`` and ``message``."""

    image: np.ndarray | None
    sha256: str | None = None
    reason: str | None = None
    message: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.image is not None


def default_max_pixels() -> int:
    """``GENAUDIT_MAX_PIXELS`` when set (a positive integer, else one clear error), else Pillow's limit."""
    from audit.errors import InputError

    value = os.environ.get("GENAUDIT_MAX_PIXELS", "").strip()
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(value)
    except ValueError:
        raise InputError(f"GENAUDIT_MAX_PIXELS must be a whole number of pixels, got {value!r}") from None
    if limit <= 0:
        raise InputError(f"GENAUDIT_MAX_PIXELS must be positive, got {value!r}")
    return limit


def bounded_scale(height: int, width: int, scale: float, max_pixels: int | None = None) -> float:
    """``scale`` lowered (never below 1) so that resizing a ``height`` x ``width`` image by it stays within
    the pixel limit: the limit holds for every array the pipeline makes, not only for the decode."""
    limit = default_max_pixels() if max_pixels is None else max_pixels
    if scale <= 1.0 or height * width * scale * scale <= limit:
        return scale
    return max(1.0, math.sqrt(limit / (height * width)))


def file_problem(path: str | Path) -> LoadResult | None:
    """Why ``path`` cannot be opened as an image file (a refusal), or None for a regular file. Follows
    links; never opens the file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return refuse(MISSING, "dangling symlink: its target does not exist")
        return refuse(MISSING, "file does not exist")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return refuse(UNREADABLE, "symlink loop: the link never reaches a file")
        return refuse(UNREADABLE, f"cannot read file: {exc.strerror or exc}")
    return _not_regular(st.st_mode)


def require_file(path: str | Path, what: str) -> Path:
    """``path`` when it is a regular file (links followed), else one :class:`InputError`: "``what`` not
    found" for a missing one, or what it is instead (a FIFO is never opened, so nothing blocks)."""
    from audit.errors import InputError

    problem = file_problem(path)
    if problem is None:
        return Path(path)
    if problem.reason == MISSING:
        raise InputError(f"{what} not found: {path}")
    raise InputError(f"{what} {path}: {problem.message}")


def _not_regular(mode: int) -> LoadResult | None:
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
    return refuse(NOT_A_FILE, f"{kind}, not a regular file: only regular files are read")


def refuse(reason: str, message: str, sha256: str | None = None, **meta: Any) -> LoadResult:
    return LoadResult(image=None, sha256=sha256, reason=reason, message=message, meta=meta)


def load_image(
    path: str | Path,
    *,
    max_pixels: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    span: tuple[int, int] | None = None,
) -> LoadResult:
    """Read and decode one file; never raises for a bad file (see the module docstring). ``span``
    (offset, size): decode only those bytes of the file (a member of an uncompressed tar archive)."""
    problem = file_problem(path)
    if problem is not None:
        return problem
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO since file_problem looked, opening it cannot block,
        # and the fstat below refuses it; the read is bounded whatever the file does meanwhile
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return refuse(MISSING, "file does not exist")
    except OSError as exc:
        return refuse(UNREADABLE, f"cannot read file: {exc.strerror or exc}")
    with os.fdopen(fd, "rb") as fh:
        try:
            st = os.fstat(fh.fileno())
            problem = _not_regular(st.st_mode)
            if problem is not None:
                return problem
            if span is not None:
                return _decode_span(fh, st.st_size, span, max_bytes, max_pixels)
            if st.st_size > max_bytes:
                return refuse(TOO_LARGE, f"file is {st.st_size} bytes, over the limit of {max_bytes}", bytes=st.st_size)
            # read what the size promises, plus one byte to see whether the file grew meanwhile (never ask for
            # max_bytes at once: the read would allocate that much for every file)
            data = fh.read(st.st_size + 1)
            if len(data) > st.st_size:
                data += fh.read(max_bytes + 1 - len(data))
        except OSError as exc:
            return refuse(UNREADABLE, f"cannot read file: {exc.strerror or exc}")
    if len(data) > max_bytes:
        return refuse(TOO_LARGE, f"file grew past the limit of {max_bytes} bytes while being read")
    return decode_image(data, max_pixels=max_pixels)


def _decode_span(fh: Any, file_size: int, span: tuple[int, int], max_bytes: int, max_pixels: int | None) -> LoadResult:
    offset, size = span
    if size > max_bytes:
        return refuse(TOO_LARGE, f"member is {size} bytes, over the limit of {max_bytes}", bytes=size)
    if offset + size > file_size:
        return refuse(TRUNCATED, f"the archive ends before this member does ({file_size} < {offset + size} bytes)")
    fh.seek(offset)
    data = fh.read(size)
    if len(data) < size:
        return refuse(TRUNCATED, f"the archive ends before this member does ({len(data)} of {size} bytes)")
    return decode_image(data, max_pixels=max_pixels)


def decode_image(data: bytes, *, max_pixels: int | None = None) -> LoadResult:
    """Decode image bytes to RGB uint8 (see the module docstring); never raises for bad bytes."""
    from PIL import Image, UnidentifiedImageError

    digest = sha256_bytes(data)
    if not data:
        return refuse(EMPTY, "zero-byte file", digest)
    limit = default_max_pixels() if max_pixels is None else max_pixels
    with warnings.catch_warnings():
        # Pillow warns (DecompressionBombWarning) and raises above 2x its own limit; we apply ours.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            return refuse(TOO_LARGE, f"decompression bomb: {exc}", digest)
        except UnidentifiedImageError:
            return refuse(NOT_AN_IMAGE, "not a recognised image format", digest)
        except (OSError, ValueError, SyntaxError, EOFError, zlib.error) as exc:
            return _decode_failure(exc, digest)
        width, height = im.size
        meta: dict[str, Any] = {"format": im.format, "mode": im.mode, "width": width, "height": height}
        if im.format == "JPEG":
            meta["jpeg_quality"] = jpeg_quality(getattr(im, "quantization", None))
        elif im.format == "WEBP":
            from audit.io.webp_quality import webp_quality

            meta["webp_quality"] = webp_quality(data)  # None: lossless
        if width * height > limit:
            return refuse(
                TOO_LARGE, f"{width}x{height} = {width * height} pixels, over the limit of {limit}", digest, **meta
            )
        if width == 0 or height == 0:
            return refuse(CORRUPT, f"image has zero size ({width}x{height})", digest, **meta)
        try:
            meta["frames"] = int(getattr(im, "n_frames", 1))
            if meta["frames"] > 1:
                im.seek(0)
            im.load()
            exif = im.getexif()
            orientation = int(exif.get(_ORIENTATION_TAG, 1) or 1)
            meta["exif"] = len(exif) > 0
            meta["gps"] = _GPS_IFD_TAG in exif
            meta["exif_orientation"] = orientation
            rgb = to_rgb_array(im)
        except Image.DecompressionBombError as exc:
            return refuse(TOO_LARGE, f"decompression bomb: {exc}", digest, **meta)
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError, zlib.error) as exc:
            return _decode_failure(exc, digest, **meta)
        except MemoryError:
            return refuse(TOO_LARGE, "out of memory while decoding", digest, **meta)
    rgb = _apply_orientation(rgb, orientation)
    meta["height"], meta["width"] = rgb.shape[:2]
    return LoadResult(image=rgb, sha256=digest, meta=meta)


def _decode_failure(exc: BaseException, digest: str, **meta: Any) -> LoadResult:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "truncated" in lowered or isinstance(exc, EOFError) or "premature end" in lowered or "unexpected end" in lowered:
        return refuse(TRUNCATED, f"truncated file: {text}", digest, **meta)
    return refuse(CORRUPT, f"cannot decode: {text}", digest, **meta)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return np.rint(rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(values.astype(np.float64), 0, 65535) / 257.0).astype(np.uint8)


def to_rgb_array(im: Any) -> np.ndarray:
    """Convert a decoded PIL image of any mode to an (H, W, 3) uint8 array (conventions above)."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        grey = _scale_16bit(np.asarray(im))
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        grey = np.rint(np.clip(np.asarray(im, dtype=np.float64), 0, 255)).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "1":
        im = im.convert("L")
    if im.mode in ("LA", "La", "PA", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        return _composite_on_white(np.asarray(im))
    if im.mode == "L" and "transparency" in im.info:
        return _composite_on_white(np.asarray(im.convert("RGBA")))
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _apply_orientation(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation value (1..8) to an (H, W, 3) array, as a viewer would display it."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.transpose(a, (1, 0, 2)),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: np.transpose(a[::-1, ::-1], (1, 0, 2)),
        8: lambda a: np.rot90(a, k=1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(rgb)) if op else rgb


def image_batch(images: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """Decoded images as one batch for an extractor: a (N, H, W, 3) array when they share a size, else the
    list itself (a *ragged* batch). Every extractor resizes each image from its own size to its input (as
    clean-fid does: one resize per image, never a resize to a common size first), so a reference set of
    many sizes needs no pass of its own (docs/large-samples.md, "Images of many sizes")."""
    if images and all(im.shape == images[0].shape for im in images):
        return np.stack(images)
    return list(images)


# The IJG (libjpeg) luminance quantisation table at quality 50, in natural (row-major) order: Annex K of the
# JPEG standard (ITU-T T.81), the table every IJG-based encoder (Pillow, ImageMagick, browsers) scales.
_IJG_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
])  # fmt: skip


def jpeg_quality(quantization: dict[int, Any] | None) -> int | None:
    """The IJG quality (1-100) whose scaled luminance table is nearest to a JPEG's first quantisation table
    (Pillow's ``Image.quantization``, natural order): exact for files written by IJG-based encoders, the
    nearest such quality for others (the question ImageMagick's ``identify -format %Q`` answers). None when
    the file has no 64-entry table. docs/detect.md, "Recompressed inputs"."""
    table = (quantization or {}).get(0)
    if table is None or len(table) != 64:
        return None
    actual = np.asarray(list(table), dtype=np.int64)
    qualities = np.arange(1, 101)
    scales = np.where(qualities < 50, 5000 // qualities, 200 - 2 * qualities)
    tables = np.clip((_IJG_LUMINANCE[None, :] * scales[:, None] + 50) // 100, 1, 255)
    return int(qualities[np.abs(tables - actual[None, :]).sum(axis=1).argmin()])
