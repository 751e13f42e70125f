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
