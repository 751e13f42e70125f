"""``digits-gan``: a class-conditional GAN on 8x8 digits, the zoo's adversarial family.

The deepfake check must be tried on generators it was not calibrated on, and GANs are the family a
diffusion-loss detector is known to miss (their images are not made by denoising, so nothing in them is
unusually easy for a diffusion model to reconstruct). This is a small one trained on the same 1,500
training digits as the DDPM: a multilayer-perceptron generator (noise and a one-hot class in, 64 pixels
in [0, 1] out through a sigmoid) against a multilayer-perceptron discriminator with spectral
normalisation (Miyato et al., 2018), non-saturating loss (Goodfellow et al., 2014), Adam with the DCGAN
settings; the shipped weights are the EMA of the generator's. Samples are quantised to the 17 digit
levels and stored as the zoo's uint8 grey values, exactly like the real digits.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from audit.zoo import digits

log = logging.getLogger(__name__)

LATENT = 32
HIDDEN = 256
RECIPE: dict[str, Any] = {
    "seed": 0,
    "steps": 6000,
    "batch_size": 128,
    "lr": 2e-4,
    "betas": [0.5, 0.999],
    "loss": "non-saturating (softplus), discriminator with spectral normalisation",
    "latent": LATENT,
    "hidden": HIDDEN,
    "ema_decay": 0.999,
    "augmentation": "none (the generator must learn the data as it is)",
}
EVAL_SAMPLES_PER_CLASS = 150  # 1,500 samples: the same N as the training split, as for the DDPM's card


def build_model() -> Any:
    """The generator: (N, LATENT) noise and (N,) class indices -> (N, 1, 8, 8) in [0, 1]."""
    import torch

    class Generator(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(LATENT + digits.NUM_CLASSES, HIDDEN), torch.nn.LeakyReLU(0.2),
                torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.LeakyReLU(0.2),
                torch.nn.Linear(HIDDEN, digits.IMAGE_SIZE * digits.IMAGE_SIZE), torch.nn.Sigmoid(),
            )  # fmt: skip

        def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            onehot = torch.nn.functional.one_hot(labels, digits.NUM_CLASSES).to(z.dtype)
            return self.net(torch.cat([z, onehot], 1)).view(-1, 1, digits.IMAGE_SIZE, digits.IMAGE_SIZE)

    return Generator()


def _discriminator() -> Any:
    import torch
    from torch.nn.utils.parametrizations import spectral_norm

    class Discriminator(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                spectral_norm(torch.nn.Linear(digits.IMAGE_SIZE**2 + digits.NUM_CLASSES, HIDDEN)),
                torch.nn.LeakyReLU(0.2),
                spectral_norm(torch.nn.Linear(HIDDEN, HIDDEN)), torch.nn.LeakyReLU(0.2),
                spectral_norm(torch.nn.Linear(HIDDEN, 1)),
            )  # fmt: skip

        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            onehot = torch.nn.functional.one_hot(labels, digits.NUM_CLASSES).to(x.dtype)
            return self.net(torch.cat([x.flatten(1), onehot], 1)).squeeze(1)

    return Discriminator()


def train(recipe: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train from scratch with ``recipe`` (default :data:`RECIPE`); return (EMA generator state, figures)."""
    import torch
    from torch.nn.functional import softplus

    from audit.zoo.training import EMA, minibatches, seed_everything

    r = {**RECIPE, **(recipe or {})}
    rng = seed_everything(r["seed"])
    images, labels = digits.load_split("train")
    x_all = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    y_all = torch.from_numpy(labels)
    gen, disc = build_model(), _discriminator()
    ema = EMA(gen, r["ema_decay"])
    opt_g = torch.optim.Adam(gen.parameters(), lr=r["lr"], betas=tuple(r["betas"]))
    opt_d = torch.optim.Adam(disc.parameters(), lr=r["lr"], betas=tuple(r["betas"]))
    step, losses = 0, []
    while step < r["steps"]:
        for idx in minibatches(len(x_all), r["batch_size"], rng):
            x, y = x_all[idx], y_all[idx]
            z = torch.from_numpy(rng.standard_normal((len(idx), LATENT)).astype(np.float32))
            fake = gen(z, y)
            d_loss = softplus(-disc(x, y)).mean() + softplus(disc(fake.detach(), y)).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = softplus(-disc(fake, y)).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            ema.update(gen)
            losses.append((float(d_loss.detach()), float(g_loss.detach())))
            step += 1
            if step % 1000 == 0:
                log.info("digits-gan step %d: D %.3f G %.3f", step, *np.mean(losses[-1000:], axis=0))
            if step >= r["steps"]:
                break
    last = np.mean(losses[-500:], axis=0)
    return ema.state_dict(), {"steps": step, "final_d_loss": float(last[0]), "final_g_loss": float(last[1])}


def sample(model: Any, labels: np.ndarray, *, seed: int) -> np.ndarray:
    """uint8 grey digits (N, 8, 8) of classes ``labels``; image ``i``'s noise depends only on (seed, i)."""
    import torch

    labels = np.asarray(labels, dtype=np.int64)
    z = (
        np.stack([np.random.default_rng([seed, i]).standard_normal(LATENT) for i in range(len(labels))])
        if len(labels)
        else np.zeros((0, LATENT))
    )
    with torch.no_grad():
        x = model(torch.from_numpy(z.astype(np.float32)), torch.from_numpy(labels)).numpy()[:, 0]
    return digits.quantize_to_levels(x)


def evaluate(model: Any, classifier_model: Any) -> dict[str, Any]:
    """The card's figures: class adherence and FID in digits-classifier feature space, as for the DDPM
    (FID of 1,500 samples against the 297 held-out digits over FID of the 1,500 training digits)."""
    import time

    from audit.zoo import classifier

    labels = np.repeat(np.arange(digits.NUM_CLASSES), EVAL_SAMPLES_PER_CLASS)
    start = time.perf_counter()
    images = sample(model, labels, seed=0)
    seconds = time.perf_counter() - start
    return {**classifier.judge_samples(classifier_model, images, labels),
            "sampling_seconds_per_image_cpu": seconds / len(images)}  # fmt: skip
