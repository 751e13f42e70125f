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
* Refused, never raised: zero-byte files, files over ``max_bytes``, non-images, images over
  ``max_pixels`` (decompression bombs: checked from the header, before any pixel is decoded),
  truncated and corrupt files. The default pixel limit is Pillow's own ``MAX_IMAGE_PIXELS``
  (89,478,485 pixels, about 9459 x 9459); set it per call or with ``GENAUDIT_MAX_PIXELS``.
"""

from __future__ import annotations

import io
import os
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
REASONS = (EMPTY, TOO_LARGE, NOT_AN_IMAGE, TRUNCATED, CORRUPT, UNREADABLE, MISSING, OUTSIDE_ROOT, MANIFEST_ERROR)

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
    value = os.environ.get("GENAUDIT_MAX_PIXELS")
    return int(value) if value else DEFAULT_MAX_PIXELS


def refuse(reason: str, message: str, sha256: str | None = None, **meta: Any) -> LoadResult:
    return LoadResult(image=None, sha256=sha256, reason=reason, message=message, meta=meta)


def load_image(
    path: str | Path,
    *,
    max_pixels: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LoadResult:
    """Read and decode one file; never raises for a bad file (see the module docstring)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return refuse(TOO_LARGE, f"file is {size} bytes, over the limit of {max_bytes}", bytes=size)
        data = path.read_bytes()
    except FileNotFoundError:
        return refuse(MISSING, "file does not exist")
    except OSError as exc:
        return refuse(UNREADABLE, f"cannot read file: {exc.strerror or exc}")
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
