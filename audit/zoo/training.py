"""Shared pieces of the zoo's training recipes: seeding, thread pinning, augmentation, EMA.

Every recipe runs on the CPU with a fixed seed and a fixed thread count, so ``genaudit zoo train NAME``
on the same kind of machine reproduces the committed weights.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

TRAIN_THREADS = 2


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch, pin torch to :data:`TRAIN_THREADS` threads; return a NumPy RNG."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(TRAIN_THREADS)
    torch.use_deterministic_algorithms(True)
    return np.random.default_rng(seed)


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Yield index arrays of one shuffled epoch; the last short batch is dropped."""
    order = rng.permutation(n)
    for start in range(0, n - batch_size + 1, batch_size):
        yield order[start : start + batch_size]


def random_shift(x: torch.Tensor, rng: np.random.Generator, max_shift: int = 1) -> torch.Tensor:
    """Shift each image (N, C, H, W) by up to ``max_shift`` pixels, filling with zeros (background)."""
    import torch

    n, _, h, w = x.shape
    pad = torch.nn.functional.pad(x, (max_shift,) * 4)
    dy = rng.integers(0, 2 * max_shift + 1, size=n)
    dx = rng.integers(0, 2 * max_shift + 1, size=n)
    return torch.stack([pad[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


class EMA:
    """Exponential moving average of a model's floating-point parameters (the weights we ship)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def update(self, model: torch.nn.Module) -> None:
        import torch

        with torch.no_grad():
            for k, v in model.state_dict().items():
                if v.dtype.is_floating_point:
                    self.shadow[k].mul_(self.decay).add_(v.detach(), alpha=1.0 - self.decay)
                else:
                    self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.shadow.items()}


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    import math

    if step < warmup_steps:
        return (step + 1) / warmup_steps
    frac = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
