"""Cells of a benchmark share the model's outputs where their inputs agree (docs/bench-sampling.md): the
images are byte for byte those sampled without sharing, and exactly the evaluations the weight prefixes
predict are saved."""

from __future__ import annotations

import numpy as np
import pytest

from audit.generators.base import GenerationRequest
from audit.generators.embedded import EmbeddedDigitsGenerator
from audit.guidance import get_schedule

STEPS = 6
# static 0 and linear start at w = 0; static 1, invlinear 0.5 and v-shape 0.5 at w = 1; static 0.5 alone
CELLS = [("static", 0.0), ("linear", 1.0), ("static", 1.0), ("invlinear", 0.5), ("v-shape", 0.5), ("static", 0.5)]


def _sample_cells(generator: EmbeddedDigitsGenerator, n: int = 24) -> list[tuple[np.ndarray, list[float]]]:
    out = []
    for name, scale in CELLS:
        request = GenerationRequest(seeds=tuple(range(100, 100 + n)), schedule=get_schedule(name, scale),
                                    steps=STEPS, labels=tuple(i % 10 for i in range(n)))  # fmt: skip
        batch = generator.generate(request)
        out.append((batch.images, batch.step_weights))
    return out


@pytest.fixture(scope="module")
def unshared() -> list[tuple[np.ndarray, list[float]]]:
    generator = EmbeddedDigitsGenerator()
    generator.memo = None
    return _sample_cells(generator)


def test_shared_steps_change_no_image_and_save_what_the_weight_prefixes_predict(unshared) -> None:
    generator = EmbeddedDigitsGenerator()
    shared = _sample_cells(generator)
    for (a, wa), (b, wb) in zip(unshared, shared, strict=True):
        assert wa == wb and a.dtype == b.dtype and np.array_equal(a, b)
    weights = [tuple(w) for _, w in shared]
    distinct = [len({w[:k] for w in weights}) for k in range(STEPS)]
    assert distinct[:2] == [1, 3]  # step 0: one input for all; step 1: w0 in {0, 1, 0.5}
    assert generator.memo.hits == sum(len(CELLS) - d for d in distinct)
    assert len(generator.memo.entries) == sum(distinct)  # one entry per distinct input, nothing else


def test_a_full_memo_keeps_the_earliest_steps(unshared) -> None:
    from audit.generators.step_memo import StepMemo

    generator = EmbeddedDigitsGenerator()
    entry = 2 * 24 * 64 * 4  # eps_c and eps_u of 24 8x8 float32 images
    generator.memo = StepMemo(budget=4 * entry)  # room for step 0 (1 input) and step 1 (3 inputs) only
    shared = _sample_cells(generator)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(unshared, shared, strict=True))
    assert sorted(step for step, _ in generator.memo.entries.values()) == [0, 1, 1, 1]
    assert generator.memo.held == 4 * entry
    assert generator.memo.hits == (len(CELLS) - 1) + (len(CELLS) - 3)


def test_the_memo_budget_comes_from_the_environment_or_is_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from audit.errors import InputError
    from audit.generators.step_memo import SHARED_STEPS_BYTES, StepMemo

    assert StepMemo().budget == SHARED_STEPS_BYTES == 64 * 2**20
    monkeypatch.setenv("GENAUDIT_SHARED_STEPS_MB", "1.5")
    assert StepMemo().budget == 3 * 2**19
    monkeypatch.setenv("GENAUDIT_SHARED_STEPS_MB", "0")
    assert EmbeddedDigitsGenerator().memo is None  # nothing kept, nothing hashed
    memo = StepMemo()
    import torch

    memo.put("k", 0, torch.zeros(4))
    assert memo.budget == 0 and not memo.entries and memo.get("k", "cpu") is None
    for bad in ("-1", "lots", "nan", "inf"):
        monkeypatch.setenv("GENAUDIT_SHARED_STEPS_MB", bad)
        with pytest.raises(InputError, match="GENAUDIT_SHARED_STEPS_MB must be a number of megabytes >= 0"):
            StepMemo()
