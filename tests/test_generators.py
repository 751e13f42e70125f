"""Generator adapters: paired seeds, exact per-step weights, one batched forward, clear errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from audit.errors import InputError
from audit.generators import GenerationRequest, Generator, get_generator
from audit.generators.folder import cell_folder
from audit.guidance import get_schedule
from audit.zoo import ddpm, registry
from audit.zoo.export import png_bytes

LABELS = (3, 7, 3)
SEEDS = (11, 12, 13)


def request(schedule: str = "static", scale: float = 1.0, steps: int = 6, **params) -> GenerationRequest:
    return GenerationRequest(seeds=SEEDS, labels=LABELS, steps=steps, schedule=get_schedule(schedule, scale, **params))


def test_embedded_adapter_records_the_applied_weights_and_pairs_seeds() -> None:
    gen = get_generator("embedded:digits-ddpm")
    assert isinstance(gen, Generator)
    linear = gen.generate(request("linear", 2.0))
    assert linear.images.shape == (3, 8, 8, 3) and linear.images.dtype == np.uint8
    assert linear.step_weights == pytest.approx([0.0, 0.8, 1.6, 2.4, 3.2, 4.0])  # 2 w0 p at p = i / 5
    again = gen.generate(request("linear", 2.0))
    np.testing.assert_array_equal(linear.images, again.images)
    # the same (label, seed) with the same weights gives the same image whatever else is in the batch
    single = gen.generate(GenerationRequest(seeds=(13,), labels=(3,), steps=6, schedule=get_schedule("linear", 2.0)))
    np.testing.assert_array_equal(single.images[0], linear.images[2])
    rows = linear.records()
    assert rows[0]["label"] == 3 and rows[0]["seed"] == 11
    assert rows[0]["schedule"] == {"name": "linear", "scale": 2.0}


def test_weights_below_one_in_the_diffusers_convention_are_applied() -> None:
    gen = get_generator("embedded:digits-ddpm")
    uncond_mix = gen.generate(request("static", -0.5))  # diffusers guidance_scale 0.5
    plain = gen.generate(request("static", 0.0))  # diffusers guidance_scale 1.0
    assert uncond_mix.step_weights == [-0.5] * 6
    assert not np.array_equal(uncond_mix.images, plain.images)  # guidance was not silently dropped


def test_cond_and_uncond_run_as_one_batched_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    model = registry.load("digits-ddpm")
    calls: list[int] = []
    original = type(model).forward

    def counting(self, sample, timestep, class_labels=None, **kw):
        calls.append(int(sample.shape[0]))
        return original(self, sample, timestep, class_labels=class_labels, **kw)

    monkeypatch.setattr(type(model), "forward", counting)
    get_generator("embedded:digits-ddpm").generate(request(steps=6))
    assert calls == [2 * len(LABELS)] * 6  # one forward per step, conditional and unconditional stacked


def test_interval_by_noise_level_uses_each_steps_sigma() -> None:
    scheduler = ddpm.build_sampling_scheduler()
    scheduler.set_timesteps(10)
    # squaredcos_cap_v2 (diffusers' betas_for_alpha_bar): alphas_cumprod[t] = f(t + 1) / f(0) with
    # f(t) = cos^2((t / T + s) / (1 + s) * pi / 2), T = 1000, s = 0.008 (no beta clipping at t = 499)
    f = lambda t: math.cos(((t / 1000) + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    alphabar = f(500) / f(0)
    assert ddpm.noise_level(scheduler, 499) == pytest.approx(math.sqrt((1 - alphabar) / alphabar), rel=1e-3)
    schedule = get_schedule("interval", 2.0, sigma_lo=0.5, sigma_hi=3.0)
    sigmas = [ddpm.noise_level(scheduler, t) for t in scheduler.timesteps]
    expected = [2.0 if 0.5 < s <= 3.0 else 0.0 for s in sigmas]
    assert 0 < sum(w > 0 for w in expected) < 10  # the window really cuts the run
    batch = get_generator("embedded:digits-ddpm").generate(
        GenerationRequest(seeds=(1,), labels=(4,), steps=10, schedule=schedule)
    )
    assert batch.step_weights == expected


def test_python_callable_adapter() -> None:
    gen = get_generator("python:tests.generator_fixtures:grey_squares")
    batch = gen.generate(request("cosine", 1.0, steps=3))
    assert batch.images.shape == (3, 4, 4, 3)
    assert batch.images[:, 0, 0, 0].tolist() == [11, 12, 13]
    assert batch.step_weights == pytest.approx([0.0, 1.0, 2.0])
    with pytest.raises(InputError, match="4 images for a request of 3"):
        get_generator("python:tests.generator_fixtures:wrong_count").generate(request())
    with pytest.raises(InputError, match="must be uint8"):
        get_generator("python:tests.generator_fixtures:float_images").generate(request())
    with pytest.raises(InputError, match="cannot load generator"):
        get_generator("python:tests.generator_fixtures:nope")
    from audit.generators.base import to_rgb_batch

    mixed = [np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)]
    with pytest.raises(InputError, match=r"gen: images differ in size: \[\(4, 4, 3\), \(5, 4, 3\)\]"):
        to_rgb_batch(mixed, "gen")
    assert to_rgb_batch([], "gen").shape[0] == 0  # an empty list is an empty batch: its count is checked later


def _write_cell(root: Path, schedule, rows: list[tuple[str, int, int]], weights: list[float] | None = None) -> Path:
    folder = root / cell_folder(schedule)
    folder.mkdir(parents=True)
    with open(folder / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "seed", "step_weights"])
        for name, label, seed in rows:
            (folder / name).write_bytes(png_bytes(np.full((8, 8), seed, np.uint8)))
            w.writerow([name, label, seed, json.dumps(weights) if weights else ""])
    return folder


def test_folder_adapter_matches_condition_and_seed(tmp_path: Path) -> None:
    schedule = get_schedule("clamp-linear", 4.0, c=2.0)
    folder = _write_cell(tmp_path, schedule, [("b.png", 7, 12), ("a.png", 3, 11), ("c.png", 3, 13)], [1.0, 2.0])
    assert folder.relative_to(tmp_path).as_posix() == "clamp-linear_c=2.0/4.0"
    batch = get_generator(f"folder:{tmp_path}").generate(
        GenerationRequest(seeds=SEEDS, labels=LABELS, steps=2, schedule=schedule)
    )
    assert batch.images[:, 0, 0, 0].tolist() == [11, 12, 13]  # in request order, not file order
    assert batch.step_weights == [1.0, 2.0] and batch.info["step_weights"] == "from the manifest"


def test_folder_adapter_refuses_missing_and_broken_images(tmp_path: Path) -> None:
    schedule = get_schedule("static", 1.0)
    folder = _write_cell(tmp_path, schedule, [("a.png", 3, 11), ("b.png", 7, 12)])
    (folder / "b.png").write_bytes(b"not a png")
    gen = get_generator(f"folder:{tmp_path}")
    with pytest.raises(InputError, match=r"2 of 3 requested images unusable: b\.png: not_an_image.*seed=13"):
        gen.generate(request())
    with pytest.raises(InputError, match="no images for schedule"):
        gen.generate(request("cosine"))
    manifest = folder / "manifest.csv"
    manifest.write_text(
        manifest.read_text() + "../escape.png,3,13,\n", encoding="utf-8"
    )  # a row that points outside its folder is refused with that reason, not "not in the manifest"
    with pytest.raises(InputError, match=r"\.\./escape\.png: outside_root"):
        gen.generate(request())
    manifest.write_text("path,label,seed\na.png,3,eleven\n", encoding="utf-8")
    with pytest.raises(InputError, match="seed 'eleven' is not an integer"):
        gen.generate(request())


def test_bad_requests_and_specs() -> None:
    with pytest.raises(InputError, match="exactly one of labels or prompts"):
        GenerationRequest(seeds=(1,), schedule=get_schedule("static"))
    with pytest.raises(InputError, match="2 seeds for 1 conditions"):
        GenerationRequest(seeds=(1, 2), labels=(3,), schedule=get_schedule("static"))
    with pytest.raises(InputError, match="negative_prompts need prompts"):
        GenerationRequest(seeds=(1,), labels=(3,), negative_prompts=("x",), schedule=get_schedule("static"))
    with pytest.raises(InputError, match="class-conditional"):
        get_generator("embedded:digits-ddpm").generate(
            GenerationRequest(seeds=(1,), prompts=("a cat",), schedule=get_schedule("static"))
        )
    with pytest.raises(InputError, match="unknown generator"):
        get_generator("nope:x")
