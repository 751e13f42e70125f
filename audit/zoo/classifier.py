"""``digits-classifier``: a small CNN on 8x8 digits.

It is the embedded world's feature extractor (the 128-d penultimate layer, the analogue of Inception's
pool features for FID) and its class-probability model (the analogue of Inception's logits for IS).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from audit.zoo import digits

log = logging.getLogger(__name__)

FEATURE_DIM = 128
RECIPE: dict[str, Any] = {
    "seed": 0,
    "epochs": 150,
    "batch_size": 64,
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "label_smoothing": 0.1,
    "augmentation": "random shift of up to 1 pixel",
    "optimizer": "AdamW, cosine learning-rate decay",
}


def build_model() -> Any:
    """Build the untrained network (conv 32-64-128, two max-pools, 128-d features, 10 logits)."""
    import torch
    from torch import nn

    class DigitsClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(32, 64, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(64, 128, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Dropout(0.3),
                nn.Linear(128 * 2 * 2, FEATURE_DIM),
                nn.ReLU(),
            )
            self.head = nn.Linear(FEATURE_DIM, digits.NUM_CLASSES)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    return DigitsClassifier()


def train(recipe: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train from scratch; return ``(state_dict, metrics)``. Deterministic on the CPU."""
    import torch

    from audit.zoo.training import minibatches, random_shift, seed_everything

    r = {**RECIPE, **(recipe or {})}
    rng = seed_everything(r["seed"])
    x_train, y_train = digits.load_split("train")
    x = torch.from_numpy(digits.to_unit_grey(x_train)).unsqueeze(1)
    y = torch.from_numpy(y_train)
    model = build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=r["lr"], weight_decay=r["weight_decay"])
    steps_per_epoch = len(x) // r["batch_size"]
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=r["epochs"] * steps_per_epoch)
    from tqdm.auto import tqdm

    for _ in tqdm(range(r["epochs"]), desc="digits-classifier", unit="epoch"):
        model.train()
        for idx in minibatches(len(x), r["batch_size"], rng):
            xb = random_shift(x[idx], rng)
            loss = torch.nn.functional.cross_entropy(model(xb), y[idx], label_smoothing=r["label_smoothing"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return state, evaluate(model)


def evaluate(model: Any) -> dict[str, Any]:
    """Held-out accuracy and per-class accuracy of a trained classifier."""
    x_held, y_held = digits.load_split("heldout")
    pred = predict_logits(model, x_held).argmax(1)
    per_class = {str(c): float((pred[y_held == c] == c).mean()) for c in range(digits.NUM_CLASSES)}
    return {"heldout_accuracy": float((pred == y_held).mean()), "heldout_per_class_accuracy": per_class}


def predict_logits(model: Any, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Logits (N, 10) for uint8 images (any size, grey or RGB)."""
    return _run(model, images, batch_size, lambda m, xb: m(xb))


def extract_features(model: Any, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Penultimate features (N, 128), float64, for uint8 images."""
    return _run(model, images, batch_size, lambda m, xb: m.features(xb))


def _run(model: Any, images: np.ndarray, batch_size: int, fn: Any) -> np.ndarray:
    import torch

    x = torch.from_numpy(digits.to_unit_grey(images)).unsqueeze(1)
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            outs.append(fn(model, x[start : start + batch_size]).double().numpy())
    if not outs:
        return np.zeros((0, FEATURE_DIM), dtype=np.float64)
    return np.concatenate(outs)


def judge_samples(model: Any, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """A generator's figures judged by this classifier: how many ``images`` read as the requested ``labels``,
    and FID in its feature space, FID(samples, held-out) over FID(train, held-out). Both FIDs use 1,500
    images against the 297 held-out ones when the samples number 1,500, so small-sample bias is the same on
    both sides of the ratio."""
    from audit.metrics import fid
    from audit.zoo import digits

    feats_held = extract_features(model, digits.load_split("heldout")[0])
    fid_train = fid(extract_features(model, digits.load_split("train")[0]), feats_held)
    fid_samples = fid(extract_features(model, images), feats_held)
    return {
        "n_samples": len(images),
        "class_accuracy": float((predict_logits(model, images).argmax(1) == labels).mean()),
        "fid_samples_vs_heldout": fid_samples,
        "fid_train_vs_heldout": fid_train,
        "fid_ratio": fid_samples / fid_train,
        "feature_space": f"digits-classifier penultimate features ({FEATURE_DIM}-d)",
    }
