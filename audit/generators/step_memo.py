"""The model's outputs at sampling steps, kept by the exact input they were computed on, so that the cells of
a benchmark share them where their inputs agree (docs/bench-sampling.md).

Every cell samples the same seeds and conditions, so every cell's first step evaluates the model on the same
batch, and cells whose guidance weights agree on steps 0..k-1 evaluate it on the same batch at step k too
(the embedded default grid: 1 distinct batch at step 0 and 6 at step 1 for 29 cells, and ``linear`` at
scale s with ``lambda-shape`` at s/2 until half-way: 12% of all evaluations). The key is the batch itself
(the model's input bytes, the timestep, and the caller's conditioning bytes, by sha256), so an entry is only
ever reused for the input it was computed on: on a deterministic device the images are bit for bit those
computed without it. Entries are kept on the CPU up to ``budget`` bytes (default 64 MB, or
``GENAUDIT_SHARED_STEPS_MB`` megabytes; 0 keeps nothing), the latest steps given up first, since early steps
are the ones cells share.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

SHARED_STEPS_BYTES = 64 << 20  # the default budget: the demo's 29 cells of 200 digits take 62 MB


def default_budget() -> int:
    """``GENAUDIT_SHARED_STEPS_MB`` in bytes when set (a number >= 0, else one clear error), else 64 MB. A
    benchmark of many batches a cell (10,000 Stable Diffusion images in batches of 16: 625 first steps of
    1 MB each) shares every first step only with room for them."""
    from audit.errors import InputError

    value = os.environ.get("GENAUDIT_SHARED_STEPS_MB", "").strip()
    if not value:
        return SHARED_STEPS_BYTES
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = float("nan")
    if not 0 <= megabytes < float("inf"):
        raise InputError(f"GENAUDIT_SHARED_STEPS_MB must be a number of megabytes >= 0, got {value!r}")
    return int(megabytes * 2**20)


def step_memo() -> StepMemo | None:
    """A memo with the configured budget, or None when it is 0 (``GENAUDIT_SHARED_STEPS_MB=0``): then no input
    is even hashed, which on a GPU saves each step's copy of its input to the CPU."""
    memo = StepMemo()
    return memo if memo.budget > 0 else None


class StepMemo:
    """Model outputs by (input, timestep, conditioning), bounded in bytes; see the module docstring."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = default_budget() if budget is None else budget
        self.entries: dict[str, tuple[int, Any]] = {}  # key -> (step index, output on the CPU)
        self.held = 0
        self.hits = 0

    @staticmethod
    def key(x: Any, t: Any, conditioning: bytes) -> str:
        """The sha256 of the model input ``x`` (a tensor: shape, dtype and bytes), timestep ``t`` and the
        caller's ``conditioning`` (labels, prompts, branches: whatever else the output depends on)."""
        import torch

        raw = x.detach().to("cpu").contiguous()
        digest = hashlib.sha256(repr((tuple(raw.shape), str(raw.dtype), float(t))).encode())
        digest.update(raw.view(torch.uint8).numpy().tobytes() if raw.numel() else b"")
        digest.update(conditioning)
        return digest.hexdigest()

    def get(self, key: str, device: Any) -> Any | None:
        """The kept output for ``key`` as a new tensor on ``device``, or None."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        self.hits += 1
        return entry[1].to(device, copy=True)

    def put(self, key: str, step: int, output: Any) -> None:
        """Keep ``output`` (computed at sampling step ``step``) unless the budget only has room for it by
        giving up entries of earlier steps."""
        size = output.numel() * output.element_size()
        while self.held + size > self.budget and self.entries:
            latest = max(self.entries, key=lambda k: self.entries[k][0])
            if self.entries[latest][0] <= step:  # nothing later than this step to give up: keep what is held
                return
            dropped = self.entries.pop(latest)[1]
            self.held -= dropped.numel() * dropped.element_size()
        if self.held + size <= self.budget:
            self.entries[key] = (step, output.detach().to("cpu", copy=True))
            self.held += size
