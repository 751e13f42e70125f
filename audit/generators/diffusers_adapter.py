"""``diffusers:<local path or hub id>``: diffusers models sampled by genaudit's own denoising loop.

Loaded with diffusers' ``from_pretrained`` (a local folder, or a hub id when online; with
``HF_HUB_OFFLINE=1`` only the local cache), the adapter takes the pipeline's components and runs the
loop itself, so the schedule's weight is applied exactly at every step, weights in the paper
convention below 0 (diffusers scale below 1) are applied rather than dropped (diffusers pipelines
switch guidance off for ``guidance_scale <= 1``), and the two branches run as ONE batched forward:

* text-to-image, Stable Diffusion style (``unet`` with cross-attention, ``text_encoder``, ``tokenizer``,
  ``vae``): branches (prompt, negative prompt or empty prompt); SDXL-style pipelines (a second text
  encoder) add pooled text embeddings and size conditioning.
* class-conditional latent transformers (``DiTPipeline``: ``transformer``, ``vae``, ``id2label``); the
  null class is the transformer's last class embedding.
* class-conditional pixel UNets: a folder with ``unet/`` (``UNet2DModel`` with ``num_class_embeds``;
  the null class is the last embedding) and ``scheduler/`` -- the layout of genaudit's own digits DDPM.

Each image's initial noise comes from its own CPU generator seeded with the request's seed, so an image
does not depend on its batch, the device or the other images. With a DDIM scheduler that clips x0,
eps is recomputed from the clipped x0 (``use_clipped_model_output``): keeping the unclipped guided eps
wrecks samples under guidance (measured on the digits DDPM: class accuracy 0.30 instead of 1.00 at w=2).
A weight of exactly 0 runs only the conditional branch that step.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np

from audit.errors import InputError, WeightsError
from audit.generators.base import GenerationRequest, ImageBatch

log = logging.getLogger(__name__)


def noise_level(scheduler: Any, index: int, t: Any) -> float | None:
    """sigma of step ``index`` (timestep ``t``): the scheduler's own sigmas where it has them (Euler,
    Karras style), else sqrt((1 - alphabar_t) / alphabar_t) for DDPM/DDIM-style schedulers."""
    sigmas = getattr(scheduler, "sigmas", None)
    if sigmas is not None and len(sigmas) > index:
        return float(sigmas[index])
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None:
        return None
    alphabar = float(alphas[int(t)])
    return (max(1.0 - alphabar, 0.0) / alphabar) ** 0.5


def _dtype_kwarg(dtype: Any) -> dict[str, Any]:
    """``dtype=`` where diffusers has renamed it (it deprecates ``torch_dtype``), else ``torch_dtype=``."""
    try:
        from diffusers.utils import deprecation_utils

        renamed = hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE")
    except ImportError:
        renamed = False
    return {"dtype": dtype} if renamed else {"torch_dtype": dtype}


def _weights(request: GenerationRequest, scheduler: Any, timesteps: list[Any]) -> list[float]:
    last = max(1, len(timesteps) - 1)
    return [float(request.schedule.weight(i / last, noise_level(scheduler, i, t))) for i, t in enumerate(timesteps)]


class DiffusersGenerator:
    """A diffusers model behind the :class:`~audit.generators.Generator` protocol."""

    def __init__(
        self,
        source: str | Path,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        height: int | None = None,
        width: int | None = None,
    ) -> None:
        import torch

        self.source = str(source)
        self.id = f"diffusers:{self.source}"
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is None:
            dtype = "float16" if self.device.type == "cuda" else "float32"
        if dtype not in ("float16", "bfloat16", "float32"):
            raise InputError(f"dtype must be float16, bfloat16 or float32, got {dtype!r}")
        self.dtype = getattr(torch, dtype)
        self.batch_size = int(batch_size)
        self.height, self.width = height, width
        from audit.generators.step_memo import step_memo

        self.memo = step_memo()  # outputs shared by cells whose inputs agree (docs/bench-sampling.md)
        self.components = self._load()
        self.kind = self._kind()
        self.conditioning = {"sd": "text", "sdxl": "text", "unet": "none"}.get(self.kind, "class")

    # -- loading -----------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        path = Path(self.source)
        try:
            if path.is_dir() and not (path / "model_index.json").is_file():
                return self._load_unet_folder(path)
            from diffusers import DiffusionPipeline

            pipe = DiffusionPipeline.from_pretrained(self.source, **_dtype_kwarg(self.dtype))
        except (OSError, ValueError) as exc:
            hint = "" if path.exists() else " (not a local folder; as a hub id it needs the network or the local cache)"
            raise WeightsError(f"cannot load diffusers model {self.source}{hint}: {exc}") from None
        components = dict(pipe.components)
        for module in components.values():
            if hasattr(module, "to") and hasattr(module, "eval"):
                module.to(self.device)
                module.eval()
        components["_pipeline"] = pipe
        return components

    def _load_unet_folder(self, path: Path) -> dict[str, Any]:
        from diffusers import DDIMScheduler, UNet2DModel

        if not (path / "unet" / "config.json").is_file():
            raise WeightsError(
                f"{path}: neither a diffusers pipeline (model_index.json) nor a unet/ + scheduler/ folder"
            )
        unet = UNet2DModel.from_pretrained(path, subfolder="unet", **_dtype_kwarg(self.dtype)).to(self.device).eval()
        scheduler = DDIMScheduler.from_pretrained(path, subfolder="scheduler")
        return {"unet": unet, "scheduler": scheduler}

    def _kind(self) -> str:
        c = self.components
        if "transformer" in c and "vae" in c and "text_encoder" not in c:
            return "dit"
        if "unet" in c and "text_encoder" in c and "tokenizer" in c and "vae" in c:
            return "sdxl" if c.get("text_encoder_2") is not None else "sd"
        unet = c.get("unet")
        if unet is not None and getattr(unet.config, "num_class_embeds", None):
            return "class-unet"
        if unet is not None and "vae" not in c and "text_encoder" not in c:
            return "unet"  # unconditional pixel UNet (DDPMPipeline): usable by the detectors, not the benchmark
        raise InputError(
            f"{self.id}: unsupported model layout (components: {sorted(k for k in c if not k.startswith('_'))}); "
            "supported: Stable Diffusion / SDXL style text-to-image, DiT, class-conditional UNet2DModel"
        )

    def models(self) -> list[dict[str, Any]]:
        """Model ids with a sha256 over every weights file of a local folder (hub models: the cache's)."""
        from audit.hashing import sha256_file

        path = Path(self.source)
        files = sorted(path.rglob("*.safetensors")) + sorted(path.rglob("*.bin")) if path.is_dir() else []
        digests = {str(f.relative_to(path)): sha256_file(f) for f in files}
        return [{"id": self.id, "sha256": digests or None, "kind": self.kind, "dtype": str(self.dtype).split(".")[-1]}]

    # -- sampling ----------------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> ImageBatch:
        if self.conditioning == "none":
            raise InputError(f"{self.id} is unconditional: classifier-free guidance needs a conditional model")
        if self.conditioning == "text" and request.prompts is None:
            raise InputError(f"{self.id} is a text-to-image model: give prompts, not labels")
        if self.conditioning == "class" and request.labels is None:
            raise InputError(f"{self.id} is class-conditional: give class labels, not prompts")
        if self.conditioning == "class" and request.negative_prompts is not None:  # (and so no negative weight)
            raise InputError(f"{self.id} has no text conditioning: negative prompts do not apply")
        images, weights = [], None
        for start in range(0, len(request), self.batch_size):
            stop = min(start + self.batch_size, len(request))
            part, weights = self._generate_part(request, start, stop)
            images.append(part)
        return ImageBatch(
            images=np.concatenate(images),
            request=request,
            step_weights=weights or [],
            generator_id=self.id,
            info={
                "kind": self.kind,
                "device": str(self.device),
                "dtype": str(self.dtype).split(".")[-1],
                "scheduler": type(self.components["scheduler"]).__name__,
                "branches_per_forward": 3 if request.negative_weight is not None else 2,
                "negative_prompt_as_unconditional": request.negative_prompts is not None
                and request.negative_weight is None,
                "negative_weight": request.negative_weight,
            },
        )

    def _initial_noise(self, seeds: list[int], shape: tuple[int, ...]) -> Any:
        import torch

        noise = [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
        return torch.stack(noise).to(self.device, self.dtype)

    def _generate_part(self, request: GenerationRequest, start: int, stop: int) -> tuple[np.ndarray, list[float]]:
        import torch

        scheduler = self.components["scheduler"]
        scheduler.set_timesteps(request.steps, device=self.device)
        timesteps = list(scheduler.timesteps)
        weights = _weights(request, scheduler, timesteps)
        seeds = list(request.seeds[start:stop])
        with torch.no_grad():
            if self.kind in ("sd", "sdxl"):
                model = self._text_conditioning(request, start, stop)
                shape = self._latent_shape()
            elif self.kind == "dit":
                model = self._class_conditioning(request, start, stop, "transformer")
                shape = self._latent_shape()
            else:
                model = self._class_conditioning(request, start, stop, "unet")
                unet = self.components["unet"]
                size = unet.config.sample_size
                size = (size, size) if isinstance(size, int) else tuple(size)
                shape = (unet.config.in_channels, *size)
            x = self._initial_noise(seeds, shape) * scheduler.init_noise_sigma
            step_kwargs = {}
            clips = getattr(scheduler.config, "clip_sample", False) or getattr(scheduler.config, "thresholding", False)
            if clips and "use_clipped_model_output" in inspect.signature(scheduler.step).parameters:
                step_kwargs["use_clipped_model_output"] = True
            w_neg = request.negative_weight
            condition = repr((  # what the model's output depends on besides its input and timestep
                self.kind, request.prompts[start:stop] if request.prompts is not None else None,
                request.labels[start:stop] if request.labels is not None else None,
                request.negative_prompts[start:stop] if request.negative_prompts is not None else None, w_neg is None,
            )).encode()  # fmt: skip
            for step, (t, w) in enumerate(zip(timesteps, weights, strict=True)):
                eps = self._guided_eps(model, scheduler.scale_model_input(x, t), t, w, w_neg, shared=(condition, step))
                x = scheduler.step(eps, t, x, **step_kwargs).prev_sample
            return self._to_uint8(self._decode(x)), weights

    def _guided_eps(
        self, model: Any, x: Any, t: Any, w: float, w_neg: float | None = None,
        shared: tuple[bytes, int] | None = None,
    ) -> Any:  # fmt: skip
        """eps_c + w (eps_c - eps_u), the branches in one forward (only the conditional one if w == 0); with a
        negative weight, the three-branch form eps_c + w (eps_c - eps_u) - w_neg (eps_neg - eps_u).
        ``shared``: (the conditioning's bytes, the step's index), to take the model's output from
        :attr:`memo` where an earlier cell computed it on this very input."""
        import torch

        n = len(x)
        branches = 1 if w == 0.0 and not w_neg else (3 if w_neg is not None else 2)
        condition, step = shared if shared is not None else (b"", 0)
        memo = self.memo if shared is not None else None
        key = memo.key(x, t, condition + b"|branches=%d" % branches) if memo is not None else ""
        out = memo.get(key, x.device) if memo is not None else None
        if out is None:
            out = model(torch.cat([x] * branches) if branches > 1 else x, t, branches)
            if memo is not None:
                memo.put(key, step, out)
        if self.kind == "dit" and out.shape[1] == 2 * x.shape[1]:  # learned sigma: keep the eps half
            out = out[:, : x.shape[1]]
        if branches == 1:
            return out
        eps_c, eps_u = out[:n], out[n : 2 * n]
        guided = eps_c + w * (eps_c - eps_u)
        if branches == 3:
            guided = guided - w_neg * (out[2 * n :] - eps_u)
        return guided

    def _latent_shape(self) -> tuple[int, int, int]:
        vae = self.components["vae"]
        pipe = self.components.get("_pipeline")
        factor = getattr(pipe, "vae_scale_factor", 2 ** (len(vae.config.block_out_channels) - 1))
        if self.kind == "dit":
            size = self.components["transformer"].config.sample_size
            return (self.components["transformer"].config.in_channels, size, size)
        unet = self.components["unet"]
        h = self.height or unet.config.sample_size * factor
        w = self.width or unet.config.sample_size * factor
        if h % factor or w % factor:
            raise InputError(f"{self.id}: height and width must be multiples of {factor}")
        return (unet.config.in_channels, h // factor, w // factor)

    def _text_conditioning(self, request: GenerationRequest, start: int, stop: int) -> Any:
        import torch

        pipe = self.components["_pipeline"]
        prompts = list(request.prompts[start:stop])  # type: ignore[index]
        # no negative prompt: None, so each pipeline does what it does by default (SD: the empty prompt;
        # SDXL: zero embeddings where its config says force_zeros_for_empty_prompt)
        negatives = list(request.negative_prompts[start:stop]) if request.negative_prompts else None
        unet = self.components["unet"]
        separate = request.negative_weight is not None  # three branches: the negative prompt is its own
        if self.kind == "sd":
            replacing = None if separate else negatives
            cond, uncond = pipe.encode_prompt(prompts, self.device, 1, True, negative_prompt=replacing)
            embeddings = [cond, uncond]
            if separate:
                embeddings.append(pipe.encode_prompt(negatives, self.device, 1, False)[0])

            def model(x: Any, t: Any, branches: int) -> Any:
                return unet(x, t, encoder_hidden_states=torch.cat(embeddings[:branches])).sample

            return model
        cond, uncond, pooled, pooled_uncond = pipe.encode_prompt(
            prompts,
            device=self.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=True,
            negative_prompt=None if separate else negatives,
        )
        embeddings, pooled_all = [cond, uncond], [pooled, pooled_uncond]
        if separate:
            neg, _, pooled_neg, _ = pipe.encode_prompt(
                negatives, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False
            )
            embeddings.append(neg)
            pooled_all.append(pooled_neg)
        h, w = (s * pipe.vae_scale_factor for s in self._latent_shape()[1:])
        time_ids = pipe._get_add_time_ids(
            (h, w),
            (0, 0),
            (h, w),
            dtype=cond.dtype,
            text_encoder_projection_dim=pipe.text_encoder_2.config.projection_dim,
        ).to(self.device)
        time_ids = time_ids.repeat(len(prompts), 1)

        def model(x: Any, t: Any, branches: int) -> Any:
            emb, text = torch.cat(embeddings[:branches]), torch.cat(pooled_all[:branches])
            ids = torch.cat([time_ids] * branches)
            return unet(
                x, t, encoder_hidden_states=emb, added_cond_kwargs={"text_embeds": text, "time_ids": ids}
            ).sample

        return model

    def _class_conditioning(self, request: GenerationRequest, start: int, stop: int, name: str) -> Any:
        import torch

        net = self.components[name]
        if name == "transformer":
            classes = int(net.config.num_embeds_ada_norm)
            null = classes  # DiT: the extra embedding after the classes is the null class
        else:
            classes = int(net.config.num_class_embeds) - 1
            null = classes  # the last embedding is the null class
        labels = torch.tensor(request.labels[start:stop], dtype=torch.long)  # type: ignore[index]
        if labels.numel() and (labels.min() < 0 or labels.max() >= classes):
            raise InputError(f"{self.id}: class labels must be in 0..{classes - 1}")
        labels = labels.to(self.device)
        nulls = torch.full_like(labels, null)

        def model(x: Any, t: Any, branches: int) -> Any:
            lab = torch.cat([labels, nulls]) if branches == 2 else labels
            if name == "transformer":
                steps = torch.full((len(x),), float(t), device=self.device)
                return net(x, timestep=steps, class_labels=lab).sample
            return net(x, t, class_labels=lab).sample

        return model

    def _decode(self, x: Any) -> Any:
        vae = self.components.get("vae")
        if vae is None:
            return x
        scaling = getattr(vae.config, "scaling_factor", 1.0)
        return vae.decode(x / scaling).sample

    @staticmethod
    def _to_uint8(x: Any) -> np.ndarray:
        """[-1, 1] (N, C, H, W) -> uint8 (N, H, W, 3), rounding like diffusers' image processor."""
        arr = (x.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        arr = (arr * 255).round().astype(np.uint8)
        return np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr
