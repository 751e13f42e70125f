"""``embedded:digits-ddpm``: the zoo's class-conditional DDPM, sampled with any guidance schedule.

The adapter runs the zoo's own DDIM loop: conditional and unconditional predictions in ONE batched
forward per step, the schedule's weight (given progress and noise level) applied exactly at every
step, eps recomputed from the clipped x0.
"""

from __future__ import annotations

import numpy as np

from audit.errors import InputError
from audit.generators.base import GenerationRequest, ImageBatch
from audit.zoo import digits


class EmbeddedDigitsGenerator:
    id = "embedded:digits-ddpm"
    conditioning = "class"

    def __init__(self, batch_size: int = 256) -> None:
        from audit.generators.step_memo import step_memo

        self.batch_size = batch_size
        self.memo = step_memo()  # the model's outputs shared by cells whose inputs agree (docs/bench-sampling.md)

    def models(self) -> list[dict]:
        from audit.zoo import registry

        return [registry.model_ref("digits-ddpm")]

    def generate(self, request: GenerationRequest) -> ImageBatch:
        from audit.zoo import ddpm, registry

        if request.labels is None:
            raise InputError(f"{self.id} is class-conditional: give labels 0..9, not prompts")
        labels = np.asarray(request.labels, dtype=np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= digits.NUM_CLASSES):
            raise InputError(f"{self.id} generates digits: labels must be 0..9")
        grey, weights = ddpm.sample(
            registry.load("digits-ddpm"),
            labels,
            guidance=request.schedule,
            steps=request.steps,
            seeds=np.asarray(request.seeds, dtype=np.int64),
            batch_size=self.batch_size,
            return_weights=True,
            memo=self.memo,
        )
        return ImageBatch(
            images=np.repeat(grey[..., None], 3, axis=-1),
            request=request,
            step_weights=weights,
            generator_id=self.id,
            info={
                "model_sha256": registry.read_card("digits-ddpm")["weights"]["sha256"],
                "sampler": "DDIM eta=0, x0 clipped, eps recomputed",
                "unet_forwards_per_step": 1,
                "branches_per_forward": 2,
            },
        )
