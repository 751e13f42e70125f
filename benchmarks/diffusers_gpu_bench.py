"""The diffusers adapter against ``StableDiffusionPipeline`` at SD-1.5 size, and the bench on Ray with
one worker per GPU, on a GPU machine.

Usage: python benchmarks/diffusers_gpu_bench.py [--bpe FILE] [--json FILE] [--batch 16] [--steps 25]
       [--rounds 4] [--bench-n 192] [--skip-ray] [--skip-adapter] [--tiny]

1. A Stable Diffusion 1.5 architecture (UNet2DConditionModel 320/640/1280/1280 with 768-d
   cross-attention, the 4-block AutoencoderKL, a 12-layer 768-wide CLIP text encoder over CLIP's own
   49,408-token BPE vocabulary, DDIM) is built with random weights (no pretrained weights can be fetched
   here), saved in float16 with ``save_pretrained`` and loaded back by both sides through
   ``from_pretrained``: the path a user's checkpoint takes.
2. Images per second at 512 px, float16, batch 16, 25 steps, guidance scale 7.5 (diffusers convention;
   6.5 in genaudit's eps_c + w (eps_c - eps_u)), the same prompts and the same initial noise
   (``latents=`` for the pipeline, genaudit's per-image CPU generators for both): genaudit's adapter
   (``DiffusersGenerator.generate``) against ``StableDiffusionPipeline.__call__``, rounds alternating so
   that clock drift falls on both; one warm-up batch each first. The first round's images are compared
   (max and mean absolute difference in 8-bit levels).
3. ``genaudit bench`` on that pipeline (two schedules x one scale, ``--bench-n`` images a cell, the
   embedded extractor): one process against ``--executor ray`` with one worker per GPU, numbers compared.

``--tiny`` swaps in a small architecture of the same kinds (CPU smoke run of this script). With
``--json`` every finished part is written as it completes, so a run cut short keeps what it measured.
The BPE vocabulary is open_clip's ``bpe_simple_vocab_16e6.txt.gz`` (``--bpe``, default: from open_clip).
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPTS = (
    "a photo of an astronaut riding a horse",
    "a watercolour painting of a lighthouse at dusk",
    "a close-up photo of a red fox in snow",
    "an isometric drawing of a small city",
)
GUIDANCE_DIFFUSERS = 7.5  # diffusers' guidance_scale; genaudit's weight is one less


def clip_bpe_files(bpe_gz: Path, folder: Path) -> Path:
    """CLIP's ``vocab.json`` and ``merges.txt`` (as transformers' ``CLIPTokenizer`` reads them), made from
    the BPE merge list CLIP ships: 256 byte symbols, the same with ``</w>``, 48,894 merges, two specials."""
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(bpe_gz) as f:
        merges = f.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in printable]
    symbols = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return folder


def build_pipeline(folder: Path, bpe_gz: Path, tiny: bool) -> Path:
    """A randomly initialised SD-1.5-architecture pipeline saved in float16 to ``folder``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    tok_dir = clip_bpe_files(bpe_gz, folder.parent / "clip-bpe")
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)
    width = (32, 64) if tiny else (320, 640, 1280, 1280)
    down = ("CrossAttnDownBlock2D",) * (len(width) - 1) + ("DownBlock2D",)
    up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (len(width) - 1)
    text = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32 if tiny else 768,
        intermediate_size=37 if tiny else 3072,
        num_attention_heads=4 if tiny else 12,
        num_hidden_layers=2 if tiny else 12,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # initialise on the GPU: a 860M-parameter UNet is slow to initialise on a CPU
        unet = UNet2DConditionModel(
            sample_size=8 if tiny else 64,
            in_channels=4,
            out_channels=4,
            layers_per_block=1 if tiny else 2,
            block_out_channels=width,
            down_block_types=down,
            up_block_types=up,
            cross_attention_dim=text.hidden_size,
            attention_head_dim=4 if tiny else 8,
            norm_num_groups=16 if tiny else 32,
        )
        vae_width = (16, 32) if tiny else (128, 256, 512, 512)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * len(vae_width),
            up_block_types=("UpDecoderBlock2D",) * len(vae_width),
            block_out_channels=vae_width,
            layers_per_block=1 if tiny else 2,
            latent_channels=4,
            norm_num_groups=16 if tiny else 32,
            sample_size=16 if tiny else 512,
            scaling_factor=0.18215,
        )
        text_encoder = CLIPTextModel(text)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.to(torch.float16)
    pipe.save_pretrained(folder, safe_serialization=True)
    params = sum(p.numel() for m in (unet, vae, text_encoder) for p in m.parameters())
    print(f"built and saved the pipeline: {params / 1e6:.0f}M parameters", flush=True)
    return folder


def initial_noise(seeds: list[int], shape: tuple[int, ...], device: str) -> Any:
    """The adapter's per-image noise (one CPU generator per seed), for the pipeline's ``latents=``."""
    import torch

    noise = [torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds]
    return torch.stack(noise).to(device, torch.float16)


def adapter_against_pipeline(folder: Path, batch: int, steps: int, rounds: int) -> dict[str, Any]:
    """Images per second of genaudit's adapter and of ``StableDiffusionPipeline`` on the same inputs."""
    import numpy as np
    import torch
    from diffusers import StableDiffusionPipeline

    from audit.generators.base import GenerationRequest
    from audit.generators.diffusers_adapter import DiffusersGenerator, _dtype_kwarg
    from audit.guidance import get_schedule

    device = "cuda" if torch.cuda.is_available() else "cpu"
    ours = DiffusersGenerator(folder, device=device, dtype="float16", batch_size=batch)
    pipe = StableDiffusionPipeline.from_pretrained(folder, **_dtype_kwarg(torch.float16)).to(device)
    pipe.set_progress_bar_config(disable=True)
    latent = ours._latent_shape()
    size = latent[1] * pipe.vae_scale_factor
    schedule = get_schedule("static", GUIDANCE_DIFFUSERS - 1.0)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def run_ours(seeds: list[int]) -> np.ndarray:
        prompts = tuple(PROMPTS[s % len(PROMPTS)] for s in seeds)
        request = GenerationRequest(seeds=tuple(seeds), schedule=schedule, steps=steps, prompts=prompts)
        return ours.generate(request).images

    def run_pipeline(seeds: list[int]) -> np.ndarray:
        prompts = [PROMPTS[s % len(PROMPTS)] for s in seeds]
        out = pipe(
            prompts, height=size, width=size, num_inference_steps=steps, guidance_scale=GUIDANCE_DIFFUSERS,
            latents=initial_noise(seeds, latent, device), output_type="np",
        ).images  # fmt: skip
        return np.round(np.asarray(out) * 255).astype(np.uint8)

    warm = list(range(10_000, 10_000 + batch))
    run_ours(warm), run_pipeline(warm)
    sync()
    seconds = {"genaudit": 0.0, "diffusers": 0.0}
    comparison = None
    for r in range(rounds):
        seeds = list(range(r * batch, (r + 1) * batch))
        order = [("genaudit", run_ours), ("diffusers", run_pipeline)]
        images = {}
        for name, fn in order if r % 2 == 0 else order[::-1]:
            sync()
            t = time.perf_counter()
            images[name] = fn(seeds)
            sync()
            seconds[name] += time.perf_counter() - t
        if comparison is None:
            diff = np.abs(images["genaudit"].astype(int) - images["diffusers"].astype(int))
            comparison = {
                "max_abs_levels": int(diff.max()),
                "mean_abs_levels": float(diff.mean()),
                "share_within_2_levels": float((diff <= 2).mean()),
                "image_std_levels": float(images["diffusers"].std()),
                "shape": list(images["genaudit"].shape),
            }
    n = rounds * batch
    result = {
        "images": n,
        "batch": batch,
        "steps": steps,
        "size_px": size,
        "guidance_scale_diffusers": GUIDANCE_DIFFUSERS,
        "seconds": seconds,
        "images_per_s": {k: n / v for k, v in seconds.items()},
        "ratio_genaudit_over_diffusers": seconds["diffusers"] / seconds["genaudit"],
        "same_inputs_first_round": comparison,
    }
    if device == "cuda":
        result["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result  # the two pipelines are freed with this frame


def bench_one_process_against_ray(folder: Path, n: int, batch: int, steps: int, work: Path) -> dict[str, Any]:
    """``genaudit bench`` on the pipeline in one process and on Ray with one worker per GPU."""
    import torch

    from audit.bench import BenchConfig, run_bench
    from audit.scale.ray_executor import RayOptions

    gpus = torch.cuda.device_count()
    config = BenchConfig(
        generator=f"diffusers:{folder}", schedules=({"name": "static"}, {"name": "linear"}),
        scales=(GUIDANCE_DIFFUSERS - 1.0,), n=n, steps=steps, labels=None, prompts=PROMPTS, bootstrap=20,
        baseline=False, options={"batch_size": batch, "dtype": "float16" if gpus else "float32"},
    )  # fmt: skip
    times, numbers = {}, {}
    on_ray = RayOptions(workers=max(gpus, 1), gpus=1.0 if gpus else 0.0, shards=4)
    for name, executor in (("one process", None), (f"ray, {max(gpus, 1)} worker(s) x 1 GPU", on_ray)):
        t = time.perf_counter()
        path = run_bench(config, work / name.split(",")[0].replace(" ", "-"), progress=False, executor=executor)
        times[name] = time.perf_counter() - t
        cells = json.loads(Path(path).read_text())["data"]["cells"]
        numbers[name] = [{k: v for k, v in c.items() if k not in ("seconds", "generated_now")} for c in cells]
        print(f"bench, {name}: {times[name]:.1f} s", flush=True)
    first, second = numbers.values()
    images = 2 * n
    return {
        "cells": 2,
        "images": images,
        "gpus": gpus,
        "seconds": times,
        "images_per_s": {k: images / v for k, v in times.items()},
        "numbers_equal": first == second,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bpe", type=Path, help="CLIP's bpe_simple_vocab_16e6.txt.gz (default: open_clip's)")
    parser.add_argument("--json", type=Path, help="write the figures here as each part finishes")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--bench-n", type=int, default=192, help="images a cell (4 shards of 3 batches)")
    parser.add_argument("--skip-ray", action="store_true", help="part 2 only")
    parser.add_argument("--skip-adapter", action="store_true", help="part 3 only")
    parser.add_argument("--tiny", action="store_true", help="a small architecture (a CPU smoke run)")
    args = parser.parse_args()
    import torch

    bpe = args.bpe
    if bpe is None:
        import open_clip

        bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    report: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "cpus": __import__("os").cpu_count(),
        },
        "tiny": args.tiny,
    }

    def save() -> None:
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        folder = build_pipeline(Path(tmp) / "sd15", bpe, args.tiny)
        report["build_seconds"] = time.perf_counter() - t
        if not args.skip_adapter:
            report["adapter_vs_pipeline"] = adapter_against_pipeline(folder, args.batch, args.steps, args.rounds)
            print(json.dumps(report["adapter_vs_pipeline"], indent=2), flush=True)
            save()
        if not args.skip_ray:
            report["bench"] = bench_one_process_against_ray(folder, args.bench_n, args.batch, args.steps, Path(tmp))
            print(json.dumps(report["bench"], indent=2), flush=True)
            save()


if __name__ == "__main__":
    main()
