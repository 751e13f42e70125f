"""``builtin:faces-demo``: a small audit dataset assembled at run time from real images that ship inside
installed packages (nothing is downloaded or copied to disk).

Classes:

* ``group``: insightface's ``t1.jpg`` (six people: three women, three men);
* ``portrait``: scikit-image's ``astronaut`` (Eileen Collins), matplotlib's Grace Hopper photo,
  insightface's Tom Hanks crop (112 px), scikit-image's ``camera`` (a man behind a camera, in profile);
* ``lfw``: the first 30 faces of scikit-image's ``lfw_subset`` (25 x 25 greyscale);
* ``no-people``: scikit-image's ``coffee`` and ``chelsea`` (a cat), scikit-learn's ``china`` and
  ``flower``, and 10 of ``lfw_subset``'s non-face patches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

LFW_FACES = 30
LFW_NON_FACES = 10


@dataclass(frozen=True)
class BuiltinImage:
    relpath: str
    label: str
    load: Callable[[], np.ndarray]  # RGB uint8
    source: str


def _rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(arr[..., None], 3, axis=-1) if arr.ndim == 2 else arr[..., :3]


def _file(path_fn: Callable[[], object]) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from audit.io import load_image

        result = load_image(path_fn())  # type: ignore[arg-type]
        if not result.ok:
            raise RuntimeError(f"packaged image unreadable: {result.message}")
        return result.image

    return load


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return _rgb(getattr(data, name)())

    return load


def _lfw(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return _rgb(data.lfw_subset()[index])

    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return _rgb(load_sample_image(name))

    return load


def _grace_hopper() -> object:
    from matplotlib import cbook

    return cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


def faces_demo() -> Iterator[BuiltinImage]:
    from audit.dataset.package_images import insightface_image

    yield BuiltinImage("group/t1.jpg", "group", _file(lambda: insightface_image("t1.jpg")), "insightface wheel")
    yield BuiltinImage("portrait/astronaut.png", "portrait", _skimage("astronaut"), "scikit-image data")
    yield BuiltinImage("portrait/grace_hopper.jpg", "portrait", _file(_grace_hopper), "matplotlib sample data")
    yield BuiltinImage(
        "portrait/tom_hanks.png", "portrait", _file(lambda: insightface_image("Tom_Hanks_54745.png")), "insightface"
    )
    yield BuiltinImage("portrait/camera.png", "portrait", _skimage("camera"), "scikit-image data")
    for i in range(LFW_FACES):
        yield BuiltinImage(f"lfw/face_{i:02d}.png", "lfw", _lfw(i), "scikit-image lfw_subset")
    for name in ("coffee", "chelsea"):
        yield BuiltinImage(f"no-people/{name}.png", "no-people", _skimage(name), "scikit-image data")
    for name in ("china.jpg", "flower.jpg"):
        yield BuiltinImage(f"no-people/{name}", "no-people", _sklearn(name), "scikit-learn sample images")
    for i in range(LFW_NON_FACES):
        yield BuiltinImage(f"no-people/patch_{i:02d}.png", "no-people", _lfw(100 + i), "scikit-image lfw_subset")


# Documented genders of known people in the demo (public figures, or the group photo's published
# description), used only to report the model's observed errors in the card's limitations.
KNOWN_GENDERS: dict[str, list[str]] = {
    "group/t1.jpg": ["female"] * 3 + ["male"] * 3,
    "portrait/astronaut.png": ["female"],  # Eileen Collins
    "portrait/grace_hopper.jpg": ["female"],  # Grace Hopper
    "portrait/tom_hanks.png": ["male"],  # Tom Hanks
    "portrait/camera.png": ["male"],  # the cameraman photo
}
