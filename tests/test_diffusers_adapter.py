"""The diffusers adapter, offline: a tiny random Stable-Diffusion-style pipeline saved to a folder and
loaded through ``from_pretrained``, and genaudit's own digits DDPM loaded as a diffusers UNet folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audit.errors import InputError, WeightsError
from audit.generators import GenerationRequest, get_generator
from audit.guidance import get_schedule
from tests.diffusers_fixtures import save_tiny_sd

STEPS = 5


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    return get_generator("diffusers:" + str(save_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))))


def generate(gen, w: float, prompts, negatives=None, seeds=(3, 4), schedule="static"):
    request = GenerationRequest(
        seeds=tuple(seeds),
        schedule=get_schedule(schedule, w),
        steps=STEPS,
        prompts=tuple(prompts),
        negative_prompts=None if negatives is None else tuple(negatives),
    )
    return gen.generate(request)


def test_matches_the_diffusers_pipeline_bit_for_bit_above_scale_one(sd) -> None:
    import torch

    ours = generate(sd, 2.0, ["a cat", "a dog"])  # paper w = 2 is diffusers guidance_scale = 3
    latents = torch.stack([torch.randn((4, 16, 16), generator=torch.Generator().manual_seed(s)) for s in (3, 4)])
    pipe = sd.components["_pipeline"]
    ref = pipe(["a cat", "a dog"], num_inference_steps=STEPS, guidance_scale=3.0, latents=latents, output_type="np")
    expected = (ref.images * 255).round().astype(np.uint8)
    assert ours.images.shape == (2, 16, 16, 3)
    assert ours.images.std() > 10  # not a constant image
    np.testing.assert_array_equal(ours.images, expected)
    assert ours.step_weights == [2.0] * STEPS


def test_weights_below_diffusers_scale_one_are_applied_not_dropped(sd) -> None:
    plain = generate(sd, 0.0, ["a cat", "a dog"]).images.astype(int)
    assert np.abs(generate(sd, -0.5, ["a cat", "a dog"]).images - plain).max() > 0  # scale 0.5 is not scale 1
    # w = -1 (diffusers scale 0) leaves only the unconditional branch: eps_c - (eps_c - eps_u) = eps_u
    unconditional = generate(sd, 0.0, ["", ""]).images
    np.testing.assert_array_equal(generate(sd, -1.0, ["a cat", "a dog"]).images, unconditional)


def test_negative_prompt_takes_the_unconditional_branch(sd) -> None:
    with_negative = generate(sd, -1.0, ["a cat", "a dog"], negatives=["zebra", "zebra"]).images
    np.testing.assert_array_equal(with_negative, generate(sd, 0.0, ["zebra", "zebra"]).images)
    assert (
        np.abs(
            generate(sd, 1.0, ["a cat"], ["zebra"], seeds=(3,)).images.astype(int)
            - generate(sd, 1.0, ["a cat"], seeds=(3,)).images
        ).max()
        > 0
    )


def test_an_image_depends_on_its_seed_and_prompt_only(sd) -> None:
    batch = generate(sd, 2.0, ["a cat", "a dog"]).images
    alone = generate(sd, 2.0, ["a dog"], seeds=(4,)).images
    np.testing.assert_array_equal(alone[0], batch[1])
    np.testing.assert_array_equal(generate(sd, 2.0, ["a cat", "a dog"]).images, batch)


def test_schedule_weights_are_applied_per_step_and_recorded(sd) -> None:
    out = generate(sd, 1.0, ["a cat", "a dog"], schedule="linear")
    assert out.step_weights == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    static = generate(sd, 1.0, ["a cat", "a dog"]).images
    assert np.abs(out.images.astype(int) - static).max() > 0


def test_wrong_conditioning_and_missing_weights_are_clear_errors(sd, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="text-to-image"):
        sd.generate(GenerationRequest(seeds=(0,), schedule=get_schedule("static", 1.0), labels=(1,)))
    with pytest.raises(WeightsError, match="cannot load diffusers model"):
        get_generator(f"diffusers:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="neither a diffusers pipeline"):
        get_generator(f"diffusers:{tmp_path / 'empty'}")
    with pytest.raises(InputError, match="takes no option"):
        get_generator(f"diffusers:{tmp_path}", colour="blue")


def test_class_conditional_unet_folder_reproduces_the_embedded_sampler() -> None:
    """genaudit's digits DDPM is a diffusers unet/ + scheduler/ folder: loaded through the generic adapter
    it must give the embedded generator's digits (which are additionally quantised to 17 grey levels)."""
    from audit.zoo import digits, registry

    folder = registry.PACKAGED_DIR / "digits-ddpm"
    generic = get_generator(f"diffusers:{folder}", batch_size=64)
    assert (generic.kind, generic.conditioning) == ("class-unet", "class")
    request = GenerationRequest(
        seeds=tuple(range(40)), schedule=get_schedule("cosine", 2.0), steps=10, labels=tuple(i % 10 for i in range(40))
    )
    ours = generic.generate(request)
    embedded = get_generator("embedded:digits-ddpm").generate(request)
    assert ours.step_weights == pytest.approx(embedded.step_weights)
    levels = digits.quantize_to_levels(ours.images[..., 0] / 255.0)
    step = 255 / 16  # one grey level
    diff = np.abs(levels.astype(int) - embedded.images[..., 0])
    # rounding to uint8 before quantising moves pixels that sit within 1/510 of a level boundary by one
    # level; a wrong weight, noise or null class would move whole strokes by many
    assert diff.max() <= np.ceil(step), diff.max()
    assert (diff == 0).mean() > 0.97, (diff == 0).mean()
    with pytest.raises(InputError, match=r"0\.\.9"):
        generic.generate(GenerationRequest(seeds=(0,), schedule=get_schedule("static", 1.0), labels=(10,)))


def test_dit_pipeline_matches_diffusers_bit_for_bit(tmp_path: Path) -> None:
    import torch

    from tests.diffusers_fixtures import save_tiny_dit

    gen = get_generator("diffusers:" + str(save_tiny_dit(tmp_path)))
    assert (gen.kind, gen.conditioning) == ("dit", "class")
    request = GenerationRequest(seeds=(5, 6, 7), schedule=get_schedule("static", 3.0), steps=STEPS, labels=(0, 1, 999))
    ours = gen.generate(request).images
    pipe = gen.components["_pipeline"]
    generators = [torch.Generator().manual_seed(s) for s in (5, 6, 7)]
    ref = pipe([0, 1, 999], guidance_scale=4.0, generator=generators, num_inference_steps=STEPS, output_type="np")
    expected = (ref.images * 255).round().astype(np.uint8)
    assert ours.shape == (3, 8, 8, 3) and ours.std() > 5
    np.testing.assert_array_equal(ours, expected)
    with pytest.raises(InputError, match=r"0\.\.999"):
        gen.generate(GenerationRequest(seeds=(0,), schedule=get_schedule("static", 1.0), labels=(1000,)))


def test_sdxl_style_pipeline_matches_diffusers_bit_for_bit(tmp_path: Path) -> None:
    """Two text encoders, pooled embeddings, size conditioning, zeroed empty negative (SDXL's default)
    and an Euler scheduler (sigmas, scaled model input)."""
    import torch

    from tests.diffusers_fixtures import save_tiny_sdxl

    gen = get_generator("diffusers:" + str(save_tiny_sdxl(tmp_path)))
    assert (gen.kind, gen.conditioning) == ("sdxl", "text")
    ours = generate(gen, 2.0, ["a cat", "a dog"])
    pipe = gen.components["_pipeline"]
    latents = torch.stack([torch.randn((4, 16, 16), generator=torch.Generator().manual_seed(s)) for s in (3, 4)])
    ref = pipe(["a cat", "a dog"], num_inference_steps=STEPS, guidance_scale=3.0, latents=latents, output_type="np")
    expected = (ref.images * 255).round().astype(np.uint8)
    assert ours.images.shape == (2, 16, 16, 3) and ours.images.std() > 5
    np.testing.assert_array_equal(ours.images, expected)
    # an interval by noise level reads the Euler scheduler's own sigmas
    request = GenerationRequest(
        seeds=(3,), schedule=get_schedule("interval", 2.0, sigma_lo=0.5, sigma_hi=5.0), steps=STEPS, prompts=("a cat",)
    )
    sigmas = [float(s) for s in pipe.scheduler.sigmas[:STEPS]]
    assert gen.generate(request).step_weights == [2.0 if 0.5 < s <= 5.0 else 0.0 for s in sigmas]


def _first_step_noise(gen, monkeypatch, request) -> tuple:
    """The guided noise the adapter hands the scheduler at the first step, and that step's input latents."""
    scheduler = gen.components["scheduler"]
    seen = []
    real_step = scheduler.step

    def spy(model_output, t, sample, **kwargs):
        seen.append((model_output.detach().clone(), sample.detach().clone(), t))
        return real_step(model_output, t, sample, **kwargs)

    monkeypatch.setattr(scheduler, "step", spy)
    out = gen.generate(request)
    monkeypatch.undo()
    return seen[0], out


def _branch(gen, sample, t, prompts):
    """The UNet's noise for ``prompts`` alone (its own forward), from the pipeline's own text encoding."""
    import torch

    pipe = gen.components["_pipeline"]
    with torch.no_grad():
        embedding = pipe.encode_prompt(list(prompts), gen.device, 1, False)[0]
        model_input = gen.components["scheduler"].scale_model_input(sample, t)
        return gen.components["unet"](model_input, t, encoder_hidden_states=embedding).sample


@pytest.mark.parametrize(("w", "w_neg"), [(2.0, 1.5), (0.0, 0.75), (-0.5, 2.0)])
def test_three_branch_negative_prompt_equals_hand_computed_guided_noise(sd, monkeypatch, w, w_neg) -> None:
    import torch

    prompts, negatives = ("a cat", "a dog"), ("zebra", "blurry")
    request = GenerationRequest(
        seeds=(3, 4), schedule=get_schedule("static", w), steps=STEPS, prompts=prompts, negative_prompts=negatives,
        negative_weight=w_neg,
    )  # fmt: skip
    (guided, sample, t), out = _first_step_noise(sd, monkeypatch, request)
    eps_c, eps_u, eps_n = (_branch(sd, sample, t, p) for p in (prompts, ("", ""), negatives))
    expected = eps_c + w * (eps_c - eps_u) - w_neg * (eps_n - eps_u)  # the lecture form with its w = 1 + ours
    torch.testing.assert_close(guided, expected, atol=1e-5, rtol=1e-4)
    assert out.info["branches_per_forward"] == 3 and out.info["negative_weight"] == w_neg
    assert not out.info["negative_prompt_as_unconditional"]


def test_diffusers_form_negative_prompt_replaces_the_unconditional_branch_by_hand(sd, monkeypatch) -> None:
    import torch

    prompts, negatives = ("a cat", "a dog"), ("zebra", "blurry")
    request = GenerationRequest(
        seeds=(3, 4), schedule=get_schedule("static", 2.0), steps=STEPS, prompts=prompts, negative_prompts=negatives
    )
    (guided, sample, t), out = _first_step_noise(sd, monkeypatch, request)
    eps_c, eps_n = (_branch(sd, sample, t, p) for p in (prompts, negatives))
    torch.testing.assert_close(guided, eps_c + 2.0 * (eps_c - eps_n), atol=1e-5, rtol=1e-4)
    assert out.info["negative_prompt_as_unconditional"] and out.info["branches_per_forward"] == 2


def test_three_branch_form_with_zero_negative_weight_is_plain_guidance(sd) -> None:
    plain = generate(sd, 2.0, ["a cat", "a dog"]).images
    request = GenerationRequest(
        seeds=(3, 4), schedule=get_schedule("static", 2.0), steps=STEPS, prompts=("a cat", "a dog"),
        negative_prompts=("zebra", "zebra"), negative_weight=0.0,
    )  # fmt: skip
    np.testing.assert_allclose(sd.generate(request).images.astype(int), plain.astype(int), atol=1)
    with pytest.raises(InputError, match="negative weight needs negative prompts"):
        GenerationRequest(seeds=(3,), schedule=get_schedule("static", 1.0), prompts=("a",), negative_weight=1.0)


def test_sdxl_three_branch_form_runs_every_branch_with_its_pooled_embedding(tmp_path: Path) -> None:
    from tests.diffusers_fixtures import save_tiny_sdxl

    gen = get_generator("diffusers:" + str(save_tiny_sdxl(tmp_path)))
    base = dict(seeds=(3,), schedule=get_schedule("static", 2.0), steps=STEPS, prompts=("a cat",))
    plain = gen.generate(GenerationRequest(**base)).images.astype(int)
    away = gen.generate(GenerationRequest(**base, negative_prompts=("zebra",), negative_weight=3.0))
    assert away.info["branches_per_forward"] == 3 and np.abs(away.images - plain).max() > 0


def test_cells_share_the_model_outputs_their_inputs_agree_on_and_no_image_changes(sd) -> None:
    """Three cells on the same seeds and prompts (docs/bench-sampling.md): every cell's step 0 has the same
    input (static 1 and 2 and invlinear 1 all guide it, two branches), and static 2 and invlinear 1 both
    apply w = 2 there, so they share step 1 too; a linear cell starts at w = 0 (one branch), its own input."""
    from audit.generators.step_memo import StepMemo

    prompts, cells = ["a cat", "a dog"], [("static", 1.0), ("static", 2.0), ("invlinear", 1.0), ("linear", 1.0)]
    sd.memo = None
    try:
        alone = [generate(sd, w, prompts, schedule=name).images for name, w in cells]
        sd.memo = memo = StepMemo()
        shared = [generate(sd, w, prompts, schedule=name).images for name, w in cells]
        hits, entries = memo.hits, len(memo.entries)
        swapped = generate(sd, 2.0, prompts[::-1], schedule="static").images  # other prompts: other inputs
    finally:
        sd.memo = StepMemo()
    for a, b in zip(alone, shared, strict=True):
        np.testing.assert_array_equal(a, b)
    assert hits == 3  # step 0: 2 (static 2, invlinear 1); step 1: 1 (invlinear 1 after static 2)
    assert entries == 4 * STEPS - 3
    assert memo.hits == 3 and len(memo.entries) == entries + STEPS
    assert not np.array_equal(swapped, shared[1])
