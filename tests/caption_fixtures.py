"""A captioned test set for the audit's caption checks: held-out digits with their own captions, some
captions planted wrong (another digit's) and some planted offensive terms, plus a class whose name holds one.

Images are the 8x8 held-out digits enlarged 4x (nearest) to 32x32 PNGs, in class folders named by digit
word; the manifest (CSV: path, label, caption) gives each its caption from the digits CLIP's first
template, "a handwritten digit {word}".
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

PER_CLASS = 12  # images per digit class (10 classes): 120 images
MISMATCHED = {3: 5, 17: 6, 29: 8, 41: 0, 58: 3, 66: 9, 77: 2, 95: 4}  # image number -> digit its caption names
TERMS = {10: "a handwritten digit zero, what a b1tch", 50: "the shit digit four", 88: "a handwritten digit seven wank"}
TERM_FOUND = {10: "bitch", 50: "shit", 88: "wank"}
BAD_CLASS = "slut digits"  # a class whose name holds a term (images: digit one)
BAD_CLASS_IMAGES = 4


def write_captioned_set(root: Path) -> tuple[Path, dict[str, object]]:
    """Write the set under ``root``; returns the manifest and what was planted."""
    from PIL import Image

    from audit.zoo import clip, digits

    images, labels = digits.load_split("heldout")
    rows, planted = [], {"mismatched": [], "terms": {}, "bad_class": BAD_CLASS}
    n = 0
    for digit in range(digits.NUM_CLASSES):
        word = digits.DIGIT_WORDS[digit]
        for image in images[labels == digit][:PER_CLASS]:
            name = f"{word}/{word}-{n:03d}.png"
            (root / word).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.kron(image, np.ones((4, 4), np.uint8))).save(root / name)
            caption = clip.caption(MISMATCHED.get(n, digit))
            if n in MISMATCHED:
                planted["mismatched"].append(name)
            if n in TERMS:
                caption = TERMS[n]
                planted["terms"][name] = TERM_FOUND[n]
            rows.append({"path": name, "label": word, "caption": caption})
            n += 1
    (root / "bad").mkdir(exist_ok=True)
    for i, image in enumerate(images[labels == 1][PER_CLASS : PER_CLASS + BAD_CLASS_IMAGES]):
        name = f"bad/one-{i}.png"
        Image.fromarray(np.kron(image, np.ones((4, 4), np.uint8))).save(root / name)
        rows.append({"path": name, "label": BAD_CLASS, "caption": clip.caption(1)})
    manifest = root / "captions.csv"
    with manifest.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest, planted
