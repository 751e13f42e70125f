"""More features from the same network evaluations: do they lift the DDPM's figures? (issue 20, a negative
result).

The default scorer (K = 16 timesteps x 2 noise sets, 32 network evaluations per image) keeps two numbers
per timestep: the mean squared error of the predicted noise and its mean square. The same forward passes
give more, at no extra evaluation:

- spatial: the largest and the 90th-percentile per-pixel squared error (AEROBLADE-style maxima of an
  error map, not only its mean);
- content: the mean error on ink pixels (brighter than mid-grey in the image) and on background pixels;
- across timesteps: the cosine between the error vectors of neighbouring timesteps, the cosine between
  their predicted noises, and the mean squared change of the predicted clean image between them (each
  timestep has its own noise draw, so these cross terms are information the per-timestep means lack).

Each set is appended to both noise sets' blocks and scored by the product's detector, two-class alone
(``reference="off"``, one logistic model per generator), seen and left out per family with siblings in
one fold (:func:`detector_experts_probe.figures`). The probe first checks that its own errors and norms
equal the product scorer's.

Usage: python benchmarks/free_features_probe.py   (about 2 minutes on 2 cores)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detector_experts_probe import figures, product

K, NOISE_SETS = 16, 2
COSINES = ("error cosine", "prediction cosine")  # in [-1, 1]: used as they are, not log-transformed


def noised_batches(model, scorer, images: np.ndarray, batch: int = 64):
    """Per ``batch`` images, in order: (x0, eps, a, xt, t), with xt (n, K, ...) the images noised at the scorer's K
    timesteps with its fixed draws eps (one seed per timestep), a the alphabar at each timestep (broadcast
    to xt) and t the timesteps repeated for ``model.eps`` on xt reshaped to (n K, ...)."""
    import torch

    ts = scorer.timesteps(model)
    ab = torch.tensor(model.alphas_cumprod[ts])
    noise = None
    for start in range(0, len(images), batch):
        with torch.no_grad():
            x0 = model.encode(images[start : start + batch])
            n, shape = len(x0), x0.shape[1:]
            if noise is None:
                gens = [torch.Generator().manual_seed(scorer.seed + i) for i in range(len(ts))]
                noise = torch.stack([torch.randn(shape, generator=g) for g in gens])
            eps = noise[None].expand(n, *noise.shape).to(x0.dtype)
            a = ab.to(x0.dtype).view(1, len(ts), *([1] * len(shape)))
        yield x0, eps, a, a.sqrt() * x0[:, None] + (1 - a).sqrt() * eps, torch.tensor(ts).repeat(n)


def noise_set_features(model, scorer, images: np.ndarray) -> dict[str, np.ndarray]:
    """Every candidate feature of one noise set, (N, K) or (N, K - 1) each, from one forward per batch."""
    import torch
    from torch.nn.functional import cosine_similarity

    from detectors.scorers import elbo_weights

    weights = elbo_weights(model.alphas_cumprod, scorer.timesteps(model))
    parts: list[dict[str, np.ndarray]] = []
    for x0, eps, a, xt, t in noised_batches(model, scorer, images):
        with torch.no_grad():
            n, shape = len(x0), x0.shape[1:]
            pred = model.eps(xt.reshape(n * K, *shape), t).reshape(n, K, *shape).float()
            diff = (pred - eps.float()).flatten(2)  # (n, K, pixels)
            err = diff**2
            ink = (x0.flatten(1) > 0).float()[:, None, :]
            clean = ((xt - (1 - a).sqrt() * pred) / a.sqrt()).flatten(2)
            flat = pred.flatten(2)
            parts.append(
                {
                    "error": err.mean(-1).double().numpy() * weights,
                    "norm": (flat**2).mean(-1).double().numpy(),
                    "max error": err.amax(-1).double().numpy(),
                    "q90 error": torch.quantile(err, 0.9, dim=-1).double().numpy(),
                    "ink error": ((err * ink).sum(-1) / ink.sum(-1).clamp(min=1)).double().numpy(),
                    "background error": ((err * (1 - ink)).sum(-1) / (1 - ink).sum(-1).clamp(min=1)).double().numpy(),
                    "error cosine": cosine_similarity(diff[:, 1:], diff[:, :-1], dim=-1).double().numpy(),
                    "prediction cosine": cosine_similarity(flat[:, 1:], flat[:, :-1], dim=-1).double().numpy(),
                    "clean-image change": (clean.diff(dim=1) ** 2).mean(-1).double().numpy(),
                }
            )
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def block(features: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    return np.concatenate(
        [features[n] if n in COSINES else np.log(np.maximum(features[n], 1e-12)) for n in names], axis=1
    )


def main() -> None:
    from detectors.builtin import digits_mixed
    from detectors.job import build_scorer, features
    from detectors.noise_model import load_noise_model

    data = digits_mixed(150)
    model = load_noise_model("embedded:digits-ddpm")
    scorer = build_scorer({"name": "diffusion-loss", "k": K, "noise_sets": NOISE_SETS}, model)
    sets = [noise_set_features(model, scorer.noise_set(m), data.images) for m in range(NOISE_SETS)]
    product_features, _ = features(model, scorer, data.images)
    mine = np.concatenate([np.concatenate([s["error"], s["norm"]], 1) for s in sets], 1)
    assert np.allclose(mine, product_features, rtol=1e-5), "the probe's errors and norms differ from the scorer's"
    y, family, source = np.asarray(data.y), data.family, np.asarray(data.source)
    short = {"diffusion": "DDPM", "adversarial": "GAN", "statistical": "mixture"}
    base = ("error", "norm")
    candidates = [(), ("max error",), ("q90 error",), ("ink error", "background error"), ("error cosine",),
                  ("prediction cosine",), ("clean-image change",)]  # fmt: skip
    for extra in candidates:
        names = base + extra
        logs = np.concatenate([block(s, names) for s in sets], axis=1)
        result = figures(product(True), logs, y, family, source, data.siblings)
        cells = "  ".join(f"{short[f.split(' ')[0]]} {s:.3f} / {o:.3f}" for f, (s, o) in result.items())
        label = " + ".join(extra) if extra else "errors and norms (the default)"
        print(f"{label:42s} seen / left out: {cells}", flush=True)


if __name__ == "__main__":
    main()
