"""Tiny randomly initialised diffusers pipelines, saved to a folder and loaded back through the same
``from_pretrained`` code path a real model takes (no network: the tokenizer is built here too)."""

from __future__ import annotations

import json
import string
from pathlib import Path


def tiny_clip_tokenizer(folder: Path) -> Path:
    """A character-level CLIP BPE tokenizer (vocab of printable characters, no merges)."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = [c for c in string.printable if not c.isspace()]
    vocab = {tok: i for i, tok in enumerate([*chars, *[c + "</w>" for c in chars], "<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return folder


def tiny_vae(sample_size: int):
    """A one-block AutoencoderKL with 4 latent channels: no downsampling (scale factor 1), random weights."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(16,),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=sample_size,
    )


def tiny_text_config(tokenizer, **extra):
    """A two-layer, 32-wide CLIP text encoder config sized to ``tokenizer``."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=16,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def save_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """A Stable-Diffusion-style text-to-image pipeline (UNet2DCondition, VAE, CLIP text encoder,
    DDIM), random weights, 32x32 images, saved with ``save_pretrained``."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = tiny_vae(sample_size=32)
    # one block: no downsampling, so 16x16 latents decode to 16x16 images; scale factor 1
    tok_dir = tiny_clip_tokenizer(folder / "_tok")
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=16)
    text_encoder = CLIPTextModel(tiny_text_config(tokenizer))
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder / "pipe", safe_serialization=True)
    return folder / "pipe"


def save_tiny_dit(folder: Path, seed: int = 0) -> Path:
    """A DiT-style class-conditional latent pipeline (DiTTransformer2DModel with learned sigma, VAE,
    DDIM), random weights, 1000 classes as DiTPipeline assumes (its null class is 1000)."""
    import torch
    from diffusers import DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(seed)
    transformer = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=1,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=1000,
    )
    vae = tiny_vae(sample_size=8)
    scheduler = DDIMScheduler(clip_sample=False, steps_offset=1)
    pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=scheduler, id2label={0: "zero", 1: "one"})
    pipe.save_pretrained(folder / "dit", safe_serialization=True)
    return folder / "dit"


def save_tiny_sdxl(folder: Path, seed: int = 0) -> Path:
    """An SDXL-style pipeline (two CLIP text encoders, pooled text embeddings and size conditioning),
    random weights, 16x16 images."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=8 * 6 + 32,  # six size ids x 8 + pooled text (32)
        cross_attention_dim=64,  # the two encoders' hidden states side by side
        norm_num_groups=8,
    )
    vae = tiny_vae(sample_size=16)
    tok_dir = tiny_clip_tokenizer(folder / "_tok")
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=16)
    config = tiny_text_config(tokenizer, projection_dim=32)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(config),
        text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=scheduler,
    )
    pipe.save_pretrained(folder / "sdxl", safe_serialization=True)
    return folder / "sdxl"
