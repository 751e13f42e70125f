"""Image encodings the results JSON carries: base64 PNG thumbnails and image grids.

Measuring code (audit, bench, detect, zoo) makes these while it has the pixels; ``reports`` only reads
them back out of the results JSON. Every allocation is bounded: thumbnails never upscale, and grid cells
are a fixed size.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np

MAX_THUMB_SIDE = 128


def png_base64(image: np.ndarray) -> str:
    """PNG bytes of a uint8 (H, W) or (H, W, 3) array, base64-encoded (the thumbnail format in JSON)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_png_base64(data: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def thumbnail(image: np.ndarray, max_side: int = MAX_THUMB_SIDE) -> np.ndarray:
    """Downscale so the longer side is at most ``max_side`` (never upscales); antialiased."""
    from PIL import Image

    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    im = Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    return np.asarray(im)


def image_grid(images: Sequence[np.ndarray], columns: int, cell: int = 32, pad: int = 2) -> np.ndarray:
    """Tile images (uint8, grey or RGB, any size) into one RGB grid, each scaled to ``cell`` pixels
    with nearest-neighbour (so an 8x8 digit stays crisp), white padding between cells."""
    from PIL import Image

    if not images:
        raise ValueError("image_grid needs at least one image")
    rows = -(-len(images) // columns)
    grid = np.full((rows * (cell + pad) + pad, columns * (cell + pad) + pad, 3), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        arr = np.asarray(img, dtype=np.uint8)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        arr = np.asarray(Image.fromarray(arr).resize((cell, cell), Image.Resampling.NEAREST))
        r, c = divmod(i, columns)
        y, x = pad + r * (cell + pad), pad + c * (cell + pad)
        grid[y : y + cell, x : x + cell] = arr
    return grid
