"""What the reconstruction scorers need from a diffusion model, for any model genaudit can load.

A :class:`NoiseModel` turns uint8 images into the model's clean sample x0 (pixels in [-1, 1], or VAE
latents times the VAE's scaling factor), predicts the noise eps_theta(x_t, t) with the
*unconditional* branch (the null class, or the empty prompt: a detector does not know what an image
was prompted with), and decodes x0 back to uint8 images. It also exposes the training noise schedule
(alphabar_t for t = 0..T-1), which the scorers use to noise images and to invert them.

Models come through the same names as the benchmark's generators:

- ``embedded:digits-ddpm``: the zoo's 8x8 digit DDPM (pixel space; null class 10);
- ``diffusers:<folder or hub id>``: a Stable Diffusion style pipeline (latent; empty prompt), a DiT
  pipeline (latent; null class), a ``unet/`` + ``scheduler/`` folder with a class-conditional
  ``UNet2DModel`` (pixel; null class) or an unconditional one (a ``DDPMPipeline`` folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from audit.errors import InputError


class NoiseModel(Protocol):
    id: str
    latent: bool
    alphas_cumprod: np.ndarray  # float64, length T: alphabar_t
    num_classes: int  # class labels the model is conditioned on (0: none, or text)

    def encode(self, images: np.ndarray) -> Any: ...  # uint8 (N, H, W, 3) -> x0 tensor (N, C, h, w)

    # x_t (N, C, h, w), t long tensor (N,), labels long tensor (N,) or None (unconditional) -> eps_theta
    def eps(self, x: Any, t: Any, labels: Any = None) -> Any: ...

    def decode(self, x0: Any) -> np.ndarray: ...  # x0 tensor -> uint8 (N, H, W, 3)

    def models(self) -> list[dict[str, Any]]: ...


def _to_uint8(x: Any) -> np.ndarray:
    """[-1, 1] (N, C, H, W) -> uint8 (N, H, W, 3), exactly as the benchmark's adapter turns samples into images."""
    from audit.generators.diffusers_adapter import DiffusersGenerator

    return DiffusersGenerator._to_uint8(x)


def resized(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (N, H, W, 3) images at ``size`` (height, width), bicubic; unchanged when already that size."""
    from PIL import Image

    if images.shape[1:3] == tuple(size):
        return images
    return np.stack([np.asarray(Image.fromarray(a).resize(size[::-1], Image.Resampling.BICUBIC)) for a in images])


def _pixels(images: np.ndarray, size: tuple[int, int], channels: int) -> Any:
    """uint8 (N, H, W, 3) -> float tensor in [-1, 1] (N, channels, *size); resized (bicubic) when needed."""
    import torch

    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise InputError(f"expected uint8 RGB images (N, H, W, 3), got {arr.dtype} {arr.shape}")
    arr = resized(arr, size)
    x = torch.from_numpy(arr.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)
    return x.mean(dim=1, keepdim=True) if channels == 1 else x


class EmbeddedDigitsNoiseModel:
    """The zoo's digit DDPM: 8x8 grey pixels, unconditional through its null class."""

    id = "embedded:digits-ddpm"
    latent = False
    num_classes = 10

    def __init__(self) -> None:
        from audit.zoo import ddpm, registry

        self._unet = registry.load("digits-ddpm").eval()
        self._null = ddpm.NULL_CLASS
        self.alphas_cumprod = ddpm.build_train_scheduler().alphas_cumprod.double().numpy()

    def encode(self, images: np.ndarray) -> Any:
        import torch

        from audit.zoo import digits

        grey = digits.to_unit_grey(np.asarray(images))  # the zoo's own preprocessing (box resize to 8x8)
        return torch.from_numpy(grey * 2.0 - 1.0)[:, None]

    def eps(self, x: Any, t: Any, labels: Any = None) -> Any:
        import torch

        if labels is None:
            labels = torch.full((len(x),), self._null, dtype=torch.long)
        return self._unet(x, t, class_labels=labels).sample

    def decode(self, x0: Any) -> np.ndarray:
        return _to_uint8(x0)

    def models(self) -> list[dict[str, Any]]:
        from audit.zoo import registry

        return [registry.model_ref("digits-ddpm")]


class DiffusersNoiseModel:
    """A diffusers model loaded by the benchmark's adapter, its unconditional branch as eps_theta."""

    def __init__(self, source: str, *, device: str | None = None, dtype: str | None = None) -> None:
        from audit.generators.diffusers_adapter import DiffusersGenerator

        self._gen = DiffusersGenerator(source, device=device, dtype=dtype)
        self.id = self._gen.id
        c = self._gen.components
        self.kind = self._gen.kind
        self.latent = self.kind in ("sd", "dit")
        self._vae = c.get("vae")
        self.alphas_cumprod = c["scheduler"].alphas_cumprod.double().cpu().numpy()
        self._uncond: Any = None
        if self.kind == "sdxl":
            raise InputError(f"{self.id}: SDXL-style pipelines are not supported by the detectors yet")
        config = self._net.config
        if self.kind == "sd":  # conditioned on text, not on classes
            self.num_classes = 0
        elif self.kind == "dit":
            self.num_classes = int(config.num_embeds_ada_norm)
        else:  # a class-conditional UNet keeps its last class embedding as the null class
            self.num_classes = max(0, int(getattr(config, "num_class_embeds", None) or 0) - 1)

    @property
    def _net(self) -> Any:
        c = self._gen.components
        return c["transformer"] if self.kind == "dit" else c["unet"]

    def _pixel_size(self) -> tuple[int, int]:
        if not self.latent:
            size = self._net.config.sample_size
            return (size, size) if isinstance(size, int) else tuple(size)
        h, w = self._gen._latent_shape()[1:]
        factor = 2 ** (len(self._vae.config.block_out_channels) - 1)
        return (h * factor, w * factor)

    def encode(self, images: np.ndarray) -> Any:
        import torch

        channels = self._vae.config.in_channels if self.latent else self._net.config.in_channels
        x = _pixels(images, self._pixel_size(), channels).to(self._gen.device, self._gen.dtype)
        if not self.latent:
            return x
        with torch.no_grad():
            latents = self._vae.encode(x).latent_dist.mean  # the mean: deterministic, as AEROBLADE does
        return latents * getattr(self._vae.config, "scaling_factor", 1.0)

    def eps(self, x: Any, t: Any, labels: Any = None) -> Any:
        import torch

        net, n = self._net, len(x)
        if labels is not None and not self.num_classes:
            raise InputError(f"{self.id} is not class-conditional: it has no class labels to condition on")
        if self.kind == "sd":
            if self._uncond is None:
                pipe = self._gen.components["_pipeline"]
                self._uncond = pipe.encode_prompt([""], self._gen.device, 1, False)[0]
            return net(x, t, encoder_hidden_states=self._uncond.expand(n, -1, -1)).sample
        if self.kind == "dit":
            null = torch.full((n,), int(net.config.num_embeds_ada_norm), dtype=torch.long, device=x.device)
            out = net(x, timestep=t, class_labels=null if labels is None else labels.to(x.device)).sample
            return out[:, : x.shape[1]] if out.shape[1] == 2 * x.shape[1] else out
        classes = getattr(net.config, "num_class_embeds", None)
        if classes:  # the last class embedding is the null class
            null = torch.full((n,), int(classes) - 1, dtype=torch.long, device=x.device)
            return net(x, t, class_labels=null if labels is None else labels.to(x.device)).sample
        return net(x, t).sample

    def decode(self, x0: Any) -> np.ndarray:
        import torch

        if not self.latent:
            return _to_uint8(x0)
        with torch.no_grad():
            return _to_uint8(self._vae.decode(x0 / getattr(self._vae.config, "scaling_factor", 1.0)).sample)

    def models(self) -> list[dict[str, Any]]:
        return self._gen.models()


def load_noise_model(spec: str, *, device: str | None = None, dtype: str | None = None) -> NoiseModel:
    """The model named ``spec``: ``embedded:digits-ddpm`` or ``diffusers:<folder or hub id>``."""
    if spec == "embedded:digits-ddpm":
        return EmbeddedDigitsNoiseModel()
    if spec.startswith("diffusers:"):
        source = spec.split(":", 1)[1]
        if not source:
            raise InputError("diffusers: needs a folder or a hub id, e.g. diffusers:/models/sd-turbo")
        return DiffusersNoiseModel(str(Path(source).expanduser()) if Path(source).expanduser().exists() else source,
                                   device=device, dtype=dtype)  # fmt: skip
    raise InputError(f"unknown model {spec!r}: use embedded:digits-ddpm or diffusers:<folder or hub id>")
