"""``digits-clip``: a tiny CLIP for 8x8 digits, built and loaded through open_clip's own APIs.

The architecture is an open_clip model config (``configs/digits-clip.json``: a 3-layer ViT with 2x2
patches, a 2-layer text transformer over open_clip's own BPE tokenizer) registered with
``open_clip.add_model_config``; the trained weights load through ``open_clip.create_model(...,
pretrained=<file.safetensors>)``, the same path a user's own checkpoint takes. It gives the embedded
CLIP-score. Trained contrastively on the training split with the caption templates below.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from audit.zoo import digits

log = logging.getLogger(__name__)

MODEL_NAME = "digits-clip"
CONFIG_DIR = Path(__file__).parent / "configs"
CAPTION_TEMPLATES = (
    "a handwritten digit {word}",
    "the number {n}",
    "a handwritten {n}",
    "the digit {word}",
    "a scan of the number {word}",
    "a low resolution image of a {n}",
    "a drawing of the digit {n}",
    "{word}",
)
RECIPE: dict[str, Any] = {
    "seed": 0,
    "steps": 2500,
    "batch_size": 128,
    "lr": 1e-3,
    "weight_decay": 0.05,
    "warmup_steps": 100,
    "loss": "symmetric InfoNCE with label-aware targets (same-digit pairs share the target mass)",
    "augmentation": "random shift of up to 1 pixel; a random caption template per image",
}


def caption(label: int, template: str = CAPTION_TEMPLATES[0]) -> str:
    """The caption of a digit from a template, e.g. ``caption(7)`` -> ``'a handwritten digit seven'``."""
    return template.format(word=digits.DIGIT_WORDS[label], n=label)


def register_config() -> None:
    """Make ``digits-clip`` known to open_clip (idempotent)."""
    import open_clip

    if MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR / f"{MODEL_NAME}.json")


def build_model(pretrained: str | None = None) -> Any:
    """Create the model with open_clip; ``pretrained`` is a local ``.safetensors`` path or None."""
    import open_clip

    register_config()
    model = open_clip.create_model(MODEL_NAME, pretrained=pretrained, device="cpu")
    model.eval()
    return model


def tokenizer() -> Any:
    import open_clip

    register_config()
    return open_clip.get_tokenizer(MODEL_NAME)


def preprocess(images: np.ndarray) -> Any:
    """uint8 images -> normalised 3-channel float tensor (N, 3, 8, 8), per the config's mean/std."""
    import torch

    grey = torch.from_numpy(digits.to_unit_grey(images)).unsqueeze(1)
    return (grey.expand(-1, 3, -1, -1) - 0.5) / 0.5


def encode_images(model: Any, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """L2-normalised image embeddings (N, 64), float64."""
    import torch

    outs = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            emb = model.encode_image(preprocess(images[start : start + batch_size]), normalize=True)
            outs.append(emb.double().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 64))


def encode_texts(model: Any, texts: list[str]) -> np.ndarray:
    """L2-normalised text embeddings (N, 64), float64."""
    import torch

    with torch.no_grad():
        return model.encode_text(tokenizer()(texts), normalize=True).double().numpy()


def class_text_embeddings(model: Any, templates: tuple[str, ...] = CAPTION_TEMPLATES) -> np.ndarray:
    """One normalised embedding per digit, the mean over ``templates`` (CLIP's prompt ensembling)."""
    embs = []
    for label in range(digits.NUM_CLASSES):
        e = encode_texts(model, [caption(label, t) for t in templates]).mean(0)
        embs.append(e / np.linalg.norm(e))
    return np.stack(embs)


def zero_shot_accuracy(model: Any, images: np.ndarray, labels: np.ndarray, templates: tuple[str, ...]) -> float:
    pred = (encode_images(model, images) @ class_text_embeddings(model, templates).T).argmax(1)
    return float((pred == labels).mean())


def evaluate(model: Any) -> dict[str, Any]:
    """Held-out zero-shot accuracy with the prompt ensemble and with the single first template."""
    x, y = digits.load_split("heldout")
    return {
        "heldout_zero_shot_accuracy": zero_shot_accuracy(model, x, y, CAPTION_TEMPLATES),
        "heldout_zero_shot_accuracy_single_prompt": zero_shot_accuracy(model, x, y, CAPTION_TEMPLATES[:1]),
        "zero_shot_prompts": "mean text embedding over all caption templates",
    }


def train(recipe: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train from scratch; return ``(state_dict, metrics)``."""
    import math

    import torch
    from tqdm.auto import tqdm

    from audit.zoo.training import minibatches, random_shift, seed_everything, warmup_cosine

    r = {**RECIPE, **(recipe or {})}
    rng = seed_everything(r["seed"])
    model = build_model()
    model.train()
    tok = tokenizer()
    x_train, y_train = digits.load_split("train")
    images = preprocess(x_train)
    # Every (label, template) caption tokenised once; a batch picks one template per image.
    all_tokens = torch.stack(
        [tok([caption(lab, t) for t in CAPTION_TEMPLATES]) for lab in range(digits.NUM_CLASSES)]
    )  # (10, T, context)
    opt = torch.optim.AdamW(model.parameters(), lr=r["lr"], weight_decay=r["weight_decay"])

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(step, r["warmup_steps"], r["steps"]))
    step = 0
    bar = tqdm(total=r["steps"], desc=MODEL_NAME, unit="step")
    while step < r["steps"]:
        for idx in minibatches(len(images), r["batch_size"], rng):
            if step >= r["steps"]:
                break
            labels = torch.from_numpy(y_train[idx])
            templ = torch.from_numpy(rng.integers(0, len(CAPTION_TEMPLATES), size=len(idx)))
            img_emb = model.encode_image(random_shift(images[idx], rng), normalize=True)
            txt_emb = model.encode_text(all_tokens[labels, templ], normalize=True)
            logits = model.logit_scale.exp() * img_emb @ txt_emb.T
            same = (labels[:, None] == labels[None, :]).float()
            target = same / same.sum(1, keepdim=True)
            loss = 0.5 * (
                torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            step += 1
            bar.update(1)
    bar.close()
    model.eval()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, evaluate(model)
