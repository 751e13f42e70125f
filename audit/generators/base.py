"""The generator protocol: a request (conditions, seeds, steps, guidance schedule) in, an image batch out.

Adapters own their denoising loop where they can, so the schedule's w(p) is applied exactly at every
step, and record the weights applied. A request pairs each condition with a seed; sampling the same
request under two schedules gives a paired comparison (same noise, same condition).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from audit.errors import InputError
from audit.guidance import GuidanceSchedule


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate: one image per (condition, seed). Exactly one of ``labels`` (class-conditional)
    or ``prompts`` (text-conditional) is given; ``negative_prompts`` only with prompts."""

    seeds: tuple[int, ...]
    schedule: GuidanceSchedule
    steps: int = 50
    labels: tuple[int, ...] | None = None
    prompts: tuple[str, ...] | None = None
    negative_prompts: tuple[str, ...] | None = None
    # None: the negative prompt replaces the unconditional branch (diffusers' form); a number w_neg: a third
    # branch, eps_c + w (eps_c - eps_u) - w_neg (eps_neg - eps_u) (docs/negative-prompts.md)
    negative_weight: float | None = None

    def __post_init__(self) -> None:
        if (self.labels is None) == (self.prompts is None):
            raise InputError("a generation request needs exactly one of labels or prompts")
        conditions = self.labels if self.labels is not None else self.prompts
        if len(conditions) != len(self.seeds):
            raise InputError(f"one seed per image: {len(self.seeds)} seeds for {len(conditions)} conditions")
        if self.negative_prompts is not None and (
            self.prompts is None or len(self.negative_prompts) != len(self.prompts)
        ):
            raise InputError("negative_prompts need prompts, one negative prompt per prompt")
        if self.steps < 1:
            raise InputError(f"steps must be >= 1, got {self.steps}")
        if self.negative_weight is not None and self.negative_prompts is None:
            raise InputError("a negative weight needs negative prompts (the three-branch form guides away from them)")

    def __len__(self) -> int:
        return len(self.seeds)

    def conditions(self) -> list[Any]:
        return list(self.labels if self.labels is not None else self.prompts)  # type: ignore[arg-type]


@dataclass
class ImageBatch:
    """Generated images (N, H, W, 3) uint8 for a request, with the guidance weight applied at each step."""

    images: np.ndarray
    request: GenerationRequest
    step_weights: list[float]
    generator_id: str
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise InputError(
                f"{self.generator_id}: images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}"
            )
        if len(self.images) != len(self.request):
            raise InputError(f"{self.generator_id}: {len(self.images)} images for a request of {len(self.request)}")

    def records(self) -> list[dict[str, Any]]:
        """One manifest row per image: condition, seed, schedule config and the per-step weights."""
        key = "label" if self.request.labels is not None else "prompt"
        negatives = self.request.negative_prompts or [None] * len(self.request)
        return [
            {
                key: cond,
                "negative_prompt": neg,
                "seed": seed,
                "schedule": self.request.schedule.to_config(),
                "steps": self.request.steps,
                "step_weights": self.step_weights,
                "generator": self.generator_id,
            }
            for cond, seed, neg in zip(self.request.conditions(), self.request.seeds, negatives, strict=True)
        ]


@runtime_checkable
class Generator(Protocol):
    """An image generator adapter. ``conditioning`` is ``"class"`` or ``"text"``."""

    id: str
    conditioning: str

    def generate(self, request: GenerationRequest) -> ImageBatch: ...


def to_rgb_batch(images: Any, source: str) -> np.ndarray:
    """Normalise an adapter's output (uint8 array (N, H, W) or (N, H, W, 3), or a list of PIL images)
    to one uint8 (N, H, W, 3) array; anything else is a clear error."""
    if isinstance(images, list | tuple):
        if images and hasattr(images[0], "convert"):
            images = [np.asarray(im.convert("RGB")) for im in images]
        images = [np.asarray(im) for im in images]
        sizes = sorted({im.shape for im in images})
        if len(sizes) > 1:  # a cell is one size (its PNGs, the card's grids); a reference may be many
            raise InputError(f"{source}: images differ in size: {sizes[:4]}{' ...' if len(sizes) > 4 else ''}")
        images = np.stack(images) if images else np.zeros((0, 0, 0, 3), dtype=np.uint8)
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise InputError(f"{source}: images must be uint8 (0..255), got {arr.dtype}")
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise InputError(f"{source}: images must be shaped (N, H, W) or (N, H, W, 3), got {arr.shape}")
    return np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr
