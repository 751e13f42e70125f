"""Callables used as ``python:`` generators in tests."""

from __future__ import annotations

import numpy as np


def grey_squares(request):
    """One 4x4 grey image per request item, its value the seed (mod 256)."""
    return np.stack([np.full((4, 4), seed % 256, np.uint8) for seed in request.seeds])


def wrong_count(request):
    return np.zeros((len(request) + 1, 4, 4), np.uint8)


def float_images(request):
    return np.zeros((len(request), 4, 4), np.float32)


GENERATED: list[int] = []  # images produced by ``counting_digits`` (a test resets it)


def counting_digits(request):
    """The embedded digits DDPM, counting the images it is asked for (resume tests)."""
    from audit.generators import get_generator

    GENERATED.append(len(request))
    batch = get_generator("embedded:digits-ddpm").generate(request)
    return batch.images


PEOPLE = ("portrait/astronaut.png", "portrait/grace_hopper.jpg", "portrait/tom_hanks.png", "portrait/camera.png")
PLACES = ("no-people/coffee.png", "no-people/chelsea.png")


def _photo(name: str, side: int = 160):
    from PIL import Image

    from audit.dataset.builtin import faces_demo

    image = next(item for item in faces_demo() if item.relpath == name).load()
    return np.asarray(Image.fromarray(image).convert("RGB").resize((side, side), Image.Resampling.BICUBIC))


def packaged_people(request):
    """Packaged photos by prompt and seed: "a person" cycles through four portraits unguided (w = 0) and,
    under any guidance, shows only the first two (the women); "a place" shows photos without people."""
    scale = request.schedule.to_config().get("scale", 0.0)
    images = []
    for prompt, seed in zip(request.prompts, request.seeds, strict=True):
        if prompt == "a place":
            images.append(_photo(PLACES[seed % len(PLACES)]))
        else:
            pool = PEOPLE if scale == 0.0 else PEOPLE[:2]
            images.append(_photo(pool[seed % len(pool)]))
    return np.stack(images)
