"""Sample thumbnails for the audit card, with every detected face blurred unless the user asks not to.

Faces are blurred on the full-resolution image before it is shrunk (a Gaussian blur whose radius is a
quarter of the face box's shorter side, over the box grown by 20%), so no recognisable face reaches the
card by default. Thumbnails are padded to squares so a grid keeps every image's aspect ratio.
"""

from __future__ import annotations

from typing import Any

import numpy as np

THUMB = 96
PER_CLASS = 8
MAX_CLASSES = 24  # grids for the largest classes only: a dataset of thousands of classes keeps a small card


def blur_faces(image: np.ndarray, boxes: list[list[int]]) -> np.ndarray:
    from PIL import Image, ImageFilter

    im = Image.fromarray(image)
    for left, top, right, bottom in boxes:
        w, h = right - left + 1, bottom - top + 1
        pad_x, pad_y = int(0.2 * w), int(0.2 * h)
        region = (
            max(0, left - pad_x),
            max(0, top - pad_y),
            min(im.width, right + 1 + pad_x),
            min(im.height, bottom + 1 + pad_y),
        )
        patch = im.crop(region).filter(ImageFilter.GaussianBlur(radius=max(2.0, min(w, h) / 4)))
        im.paste(patch, region[:2])
    return np.asarray(im)


def square_thumbnail(image: np.ndarray, side: int = THUMB) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(image)
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (side, side), "white")
    canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    return np.asarray(canvas)


def class_grids(
    spec: str, records: list[dict[str, Any]], show_faces: bool = False, columns: Any = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """:func:`thumbnail_grids` of the images :meth:`audit.dataset.digest.RecordDigest.thumbnail_choice`
    picks from ``records``."""
    from audit.dataset.digest import digest_list

    return thumbnail_grids(spec, digest_list(records)[0].thumbnail_choice(), show_faces, columns)


def thumbnail_grids(
    spec: str, chosen: dict[str, list[dict[str, Any]]], show_faces: bool = False, columns: Any = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per class of ``chosen`` (class -> its records, at most :data:`PER_CLASS`; images the NSFW check
    flagged are never among them), a PNG grid (base64) of its images, faces blurred. Also the chosen
    images that changed (sha256) or became unreadable since they were recorded: they are left out of the
    grids, never blurred with stale boxes."""
    from audit.dataset.run import dataset_items
    from audit.io.encode import image_grid, png_base64

    wanted = {r["index"]: r for rs in chosen.values() for r in rs}
    pixels: dict[int, np.ndarray] = {}
    changed: list[str] = []
    last = max(wanted, default=-1)
    for item in dataset_items(spec, columns):
        if item.index > last:
            break  # every chosen image is found: the rest of the source is not read again
        if item.index in wanted:
            image = item.pixels
            if item.path is not None:
                result = item.load()
                if (
                    not result.ok
                    or result.sha256 != wanted[item.index].get("sha256")
                    or item.relpath != wanted[item.index].get("image")
                ):
                    changed.append(item.relpath)
                    continue
                image = result.image
            boxes = [f["box"] for f in wanted[item.index]["faces"]]
            pixels[item.index] = square_thumbnail(image if show_faces else blur_faces(image, boxes))
    grids = []
    for label in sorted(chosen):
        images = [pixels[r["index"]] for r in chosen[label] if r["index"] in pixels]
        if images:
            grids.append({"class": label, "png": png_base64(image_grid(images, columns=PER_CLASS, cell=THUMB))})
    return grids, changed
