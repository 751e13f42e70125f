"""``genaudit zoo export digits``: a split of the digits as PNG files plus a manifest.

The files are exactly what the embedded generator writes: 8x8 greyscale PNG, 17 grey levels, one file
per image, so real and generated sets differ only in content.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from audit.atomic import write_bytes_atomic
from audit.zoo import digits


def png_bytes(grey: np.ndarray) -> bytes:
    """The one PNG encoding used for digits, real and generated (mode L, no metadata)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(grey, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def write_digit_set(out: Path, images: np.ndarray, labels: np.ndarray, prefix: str) -> Path:
    """Write ``images`` as ``<prefix>-00000.png``... and ``manifest.csv`` (path, label); return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        name = f"{prefix}-{i:05d}.png"
        write_bytes_atomic(out / name, png_bytes(img))
        rows.append((name, int(label)))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label"])
    writer.writerows(rows)
    return write_bytes_atomic(out / "manifest.csv", buf.getvalue().encode("utf-8"))


def export_digits(out: Path, split: digits.Split = "heldout") -> Path:
    images, labels = digits.load_split(split)
    return write_digit_set(out, images, labels, prefix=f"digits-{split}")
