"""The class evidence at the default's cost: the class chosen by the zoo's classifier (issue 20, a mixed
result).

The scorer's class evidence (``--classes on``) lifts the seen DDPM but costs nine times the default: most
of its evaluations go to the search for the image's best class (every class at K/4 timesteps). Here the
class is chosen instead by ``digits-classifier`` (a small CNN, one forward per image, counted as one
evaluation), and the model is evaluated at that class at the same K timesteps and fixed noise as the null
class: K null + K conditional + 1 = 33 evaluations per image at K = 16, one noise set, against the
default's 2 noise sets of 16 null evaluations (32). Features per timestep: the null error and norm, the
conditional error and norm, and the guidance direction ``mean (eps_class - eps_null)^2``, as the scorer's
``best-class`` columns. The true label in place of the classifier's shows whether the choice matters.

Each configuration is scored by the product's detector (one logistic model per generator; the real
reference on the null columns where it says "combined", else two-class alone), seen and left out per
family, siblings in one fold (:func:`detector_experts_probe.figures`). The probe first checks that its null
errors and norms equal the product scorer's.

Usage: python benchmarks/class_choice_probe.py   (about 2.5 minutes on 2 cores)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detector_experts_probe import figures
from free_features_probe import noised_batches

K = 16
NULL = ("error", "norm")
CONDITIONAL = ("error", "norm", "class error", "class norm", "guidance")


def maker(blocks: int, reference: str):
    from detectors.detector import ReconstructionDetector

    def make(logs: np.ndarray, y: np.ndarray, family: np.ndarray):
        det = ReconstructionDetector(blocks=blocks, reference=reference, reference_columns=2 * K)
        det.fit(np.exp(logs), y, family)
        return lambda query: det.decision_function(np.exp(query))

    return make


def noise_set_features(model, scorer, images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """(N, K) each: the null and the ``labels``-conditional errors (ELBO-weighted) and norms at the scorer's
    timesteps and fixed noise, and the guidance direction."""
    import torch

    from detectors.scorers import elbo_weights

    weights = elbo_weights(model.alphas_cumprod, scorer.timesteps(model))
    parts: dict[str, list[np.ndarray]] = {name: [] for name in CONDITIONAL}
    start = 0  # the batch's first image
    for x0, eps, _, xt, t in noised_batches(model, scorer, images):
        with torch.no_grad():
            n, shape = len(x0), x0.shape[1:]
            xt = xt.reshape(n * K, *shape)
            null = model.eps(xt, t).reshape(n, K, *shape).float()
            label = torch.as_tensor(labels[start : start + n]).repeat_interleave(K)
            cond = model.eps(xt, t, label).reshape(n, K, *shape).float()
            parts["error"].append(_mean((null - eps.float()) ** 2) * weights)
            parts["norm"].append(_mean(null**2))
            parts["class error"].append(_mean((cond - eps.float()) ** 2) * weights)
            parts["class norm"].append(_mean(cond**2))
            parts["guidance"].append(_mean((cond - null) ** 2))
        start += n
    return {name: np.concatenate(p) for name, p in parts.items()}


def _mean(values):
    """(n, K, ...) -> (n, K) float64: the mean over each image's pixels at each timestep."""
    return values.flatten(2).mean(-1).double().numpy()


def logs(features: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    return np.log(np.maximum(np.concatenate([features[n] for n in names], axis=1), 1e-12))


def main() -> None:
    from audit.zoo import classifier, digits, registry
    from detectors.builtin import digits_mixed
    from detectors.job import build_scorer, features
    from detectors.noise_model import load_noise_model

    data = digits_mixed(150)
    model = load_noise_model("embedded:digits-ddpm")
    scorer = build_scorer({"name": "diffusion-loss", "k": K, "noise_sets": 2}, model)
    y = np.asarray(data.y)
    n_real = int((y == 0).sum())
    true = np.concatenate([digits.load_split("heldout")[1], np.arange(len(y) - n_real) % 150 % digits.NUM_CLASSES])
    net = registry.load("digits-classifier")
    started = time.perf_counter()
    chosen = classifier.predict_logits(net, data.images).argmax(1)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    features(model, scorer.noise_set(0), data.images)
    print(
        f"{len(y)} images: the classifier {seconds:.2f} s, one noise set's {K} null evaluations "
        f"{time.perf_counter() - started:.2f} s"
    )
    print(f"classifier agrees with the label: real {np.mean(chosen[:n_real] == true[:n_real]):.3f}, "
          f"generated {np.mean(chosen[n_real:] == true[n_real:]):.3f}")  # fmt: skip
    by_classifier = [noise_set_features(model, scorer.noise_set(m), data.images, chosen) for m in range(2)]
    by_label = noise_set_features(model, scorer.noise_set(0), data.images, true)
    product_features, _ = features(model, scorer, data.images)
    mine = np.concatenate([logs(s, NULL) for s in by_classifier], 1)
    assert np.allclose(np.exp(mine), product_features, rtol=1e-5), "the probe's errors and norms differ"
    configurations = {
        "null, 2 noise sets (the default)": (32, mine, 2, "combined"),
        "null + classifier's class, 1 set": (33, logs(by_classifier[0], CONDITIONAL), 1, "combined"),
        "null + true label, 1 set": (32, logs(by_label, CONDITIONAL), 1, "combined"),
        "null + classifier's class, 2 sets": (65, np.concatenate([logs(s, CONDITIONAL) for s in by_classifier], 1), 2,
                                              "combined"),
        "null, 2 noise sets, two-class alone": (32, mine, 2, "off"),
        "null + classifier's class, 1 set, two-class alone": (33, logs(by_classifier[0], CONDITIONAL), 1, "off"),
    }  # fmt: skip
    short = {"diffusion": "DDPM", "adversarial": "GAN", "statistical": "mixture"}
    for label, (nfe, columns, blocks, reference) in configurations.items():
        result = figures(maker(blocks, reference), columns, y, data.family, np.asarray(data.source), data.siblings)
        cells = "  ".join(f"{short[f.split(' ')[0]]} {s:.3f} / {o:.3f}" for f, (s, o) in result.items())
        print(f"{label:50s} {nfe:3d} NFE  seen / left out: {cells}", flush=True)


if __name__ == "__main__":
    main()
