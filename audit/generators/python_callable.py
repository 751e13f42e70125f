"""``python:<module>:<function>``: any callable that returns images for a request.

The function receives the :class:`GenerationRequest` (conditions, seeds, steps, and the schedule, whose
``weights(steps)`` it is expected to apply) and returns uint8 images (N, H, W) or (N, H, W, 3), or a list
of PIL images. genaudit cannot see inside it, so the recorded step weights are the ones requested.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from audit.generators.base import GenerationRequest, ImageBatch, to_rgb_batch
from audit.plugins import load_callable


class CallableGenerator:
    conditioning = "any"

    def __init__(self, spec: str) -> None:
        self.id = spec
        self._fn: Callable[[GenerationRequest], Any] = load_callable(spec, "generator")

    def generate(self, request: GenerationRequest) -> ImageBatch:
        images = to_rgb_batch(self._fn(request), self.id)
        try:
            weights, note = request.schedule.weights(request.steps), "requested (applied by the callable)"
        except ValueError:  # a noise-level window: only the callable's sampler knows its sigmas
            weights, note = [], "unknown: the schedule depends on the callable's noise levels"
        return ImageBatch(
            images=images,
            request=request,
            step_weights=weights,
            generator_id=self.id,
            info={"step_weights": note},
        )
