"""Evidence beside the diffusion loss that costs at most the 8 evaluations the budget has left (issue 20, a
negative result).

The default scorer spends 32 of issue 20's 40 network evaluations per image, and its seen DDPM figure is
0.09-0.11 short of the goal. Three kinds of evidence that cost nothing or fit in the remaining 8, each on its
own and appended to both noise-set blocks of the default's features:

- **the zoo's classifier** (``digits-classifier``, about a sixth of a UNet evaluation): how sure it is of
  the image's class (largest log-probability, entropy, the top-two logit margin, the log-sum-exp of the
  logits, the norm of its 128-d embedding), its ten log-probabilities, or the embedding's first 8 principal
  components (fitted on the real images). Guided sampling makes digits that fit their class unusually well,
  which the scorer's class evidence sees at nine times the cost.
- **the DDIM inversion path** (8 evaluations, the model's own deterministic sampler run backwards from the
  image): the predicted-noise norm at each step, and the inverted latent's mean square, mean, spread,
  kurtosis and neighbour correlation. A sample of the model should invert to a typical Gaussian latent.
- **the pixels** (no evaluation): the share of each of the 17 grey levels, the mean horizontal and vertical
  steps and the mean ink. The DDPM's quantised samples hold fewer exact-zero pixels than real digits.

Every configuration is scored by the product's detector (one logistic model per generator; "combined": the
real reference on the default's null columns only), seen and left out per family, siblings in one fold
(:func:`detector_experts_probe.figures`), on all 1,347 images of ``builtin:digits-mixed``.

Usage: python benchmarks/cheap_evidence_probe.py   (about 3 minutes on 2 cores)
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detector_experts_probe import figures

K = 16
INVERSION_STEPS = 8
SHORT = {"diffusion": "DDPM", "adversarial": "GAN", "statistical": "mixture"}


def maker(blocks: int, reference: str):
    from detectors.detector import ReconstructionDetector

    def make(logs: np.ndarray, y: np.ndarray, family: np.ndarray):
        columns = 2 * K if reference != "off" else None  # the reference keeps to the default's null columns
        det = ReconstructionDetector(blocks=blocks, reference=reference, reference_columns=columns)
        det.fit(np.exp(logs), y, family)
        return lambda query: det.decision_function(np.exp(query))

    return make


def classifier_evidence(images: np.ndarray, real: np.ndarray) -> dict[str, np.ndarray]:
    """The classifier's confidence statistics, log-probabilities and embedding components, (N, d) each."""
    from sklearn.decomposition import PCA

    from audit.zoo import classifier, registry

    net = registry.load("digits-classifier")
    logits = classifier.predict_logits(net, images).astype(np.float64)
    embedding = classifier.extract_features(net, images)
    log_p = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    ranked = np.sort(logits, axis=1)
    confidence = np.stack(
        [
            log_p.max(1),
            -(np.exp(log_p) * log_p).sum(1),
            ranked[:, -1] - ranked[:, -2],
            np.logaddexp.reduce(logits, axis=1),
            np.log(np.linalg.norm(embedding, axis=1) + 1e-6),
        ],
        axis=1,
    )
    components = PCA(8, random_state=0).fit(embedding[real]).transform(embedding)
    return {"confidence": confidence, "log-probabilities": log_p, "embedding PCs": components}


def inversion_evidence(model, images: np.ndarray, steps: int = INVERSION_STEPS) -> np.ndarray:
    """(N, steps + 5): log mean predicted-noise square at each DDIM inversion step, then the inverted latent's
    log mean square, mean, log spread, log kurtosis and neighbour correlation."""
    import torch

    from detectors.scorers import ddim_timesteps

    alphabar = model.alphas_cumprod
    path = [-1, *ddim_timesteps(steps, len(alphabar))]
    out = []
    with torch.no_grad():
        for start in range(0, len(images), 256):
            x = model.encode(images[start : start + 256])
            norms = []
            for current, nxt in itertools.pairwise(path):
                a_cur, a_next = 1.0 if current < 0 else float(alphabar[current]), float(alphabar[nxt])
                eps = model.eps(x, torch.full((len(x),), max(current, 0), dtype=torch.long))
                x0 = (x - (1 - a_cur) ** 0.5 * eps) / a_cur**0.5
                x = a_next**0.5 * x0 + (1 - a_next) ** 0.5 * eps
                norms.append(np.log((eps.flatten(1) ** 2).mean(1).double().numpy()))
            z = x.flatten(1).double().numpy()
            mean, spread = z.mean(1), z.std(1)
            kurtosis = ((z - mean[:, None]) ** 4).mean(1) / spread**4
            neighbours = (x[..., 1:] * x[..., :-1]).flatten(1).mean(1).double().numpy()
            latent = [np.log((z**2).mean(1)), mean, np.log(spread), np.log(kurtosis), neighbours]
            out.append(np.concatenate([np.stack(norms, 1), np.stack(latent, 1)], 1))
    return np.concatenate(out)


def pixel_evidence(images: np.ndarray) -> np.ndarray:
    """(N, 20): log share of each of the 17 grey levels, log mean horizontal and vertical step, log mean ink."""
    grey = images[..., 0].astype(np.float64)
    levels = np.round(grey / 255 * 16).astype(int).reshape(len(grey), -1)
    shares = np.stack([(levels == k).mean(1) for k in range(17)], 1)
    steps = [np.abs(np.diff(grey, axis=a)).reshape(len(grey), -1).mean(1) for a in (2, 1)]
    return np.log(np.concatenate([shares + 1e-3, np.stack([*steps, grey.reshape(len(grey), -1).mean(1)], 1) + 1], 1))


def main() -> None:
    from detectors.builtin import digits_mixed
    from detectors.job import build_scorer, features
    from detectors.noise_model import load_noise_model

    data = digits_mixed(150)
    model = load_noise_model("embedded:digits-ddpm")
    scorer = build_scorer({"name": "diffusion-loss", "k": K, "noise_sets": 2}, model)
    y, family, source = np.asarray(data.y), data.family, np.asarray(data.source)
    started = time.perf_counter()
    default, _ = features(model, scorer, data.images)
    print(f"the default's 32 evaluations: {time.perf_counter() - started:.1f} s for {len(y)} images", flush=True)
    started = time.perf_counter()
    inversion = inversion_evidence(model, data.images)
    print(f"{INVERSION_STEPS} inversion steps: {time.perf_counter() - started:.1f} s", flush=True)
    logs = np.log(default)
    first, second = logs[:, : 2 * K], logs[:, 2 * K :]
    extras = {**classifier_evidence(data.images, y == 0), "inversion path": inversion}
    extras["pixels"] = pixel_evidence(data.images)
    rows: list[tuple[str, np.ndarray, int, str]] = [
        ("the default (32 evaluations)", logs, 2, "combined"),
        ("the default, two-class alone", logs, 2, "off"),
    ]
    for name, extra in extras.items():
        rows.append((f"{name} alone", extra, 1, "off"))
        rows.append((f"the default + {name}", np.concatenate([first, extra, second, extra], 1), 2, "combined"))
    for label, columns, blocks, reference in rows:
        result = figures(maker(blocks, reference), columns, y, family, source, data.siblings)
        cells = "  ".join(f"{SHORT[f.split(' ')[0]]} {s:.3f} / {o:.3f}" for f, (s, o) in result.items())
        print(f"{label:40s} seen / left out: {cells}", flush=True)


if __name__ == "__main__":
    main()
