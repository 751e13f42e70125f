"""Results documents (kind ``zoo-model``) for the embedded models: what their cards show.

Everything a card needs is measured here and stored in the document (confusion matrices, thumbnails
as small PNGs), so the card renders from the JSON alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from audit.provenance import provenance
from audit.zoo import digits, registry

GRID_SEEDS = 10
SAMPLE_SEED = 1234

LIMITATIONS: dict[str, list[str]] = {
    "classifier": [
        "Trained on 1,500 8x8 digits from one dataset; its features measure distance between digit "
        "distributions, not between natural images. FID in this space is not comparable to Inception FID.",
        "The held-out digits come from the end of load_digits(); writers may overlap with the training split, "
        "so held-out accuracy may overstate accuracy on new writers.",
    ],
    "clip": [
        "A tiny CLIP trained on ten classes and eight caption templates: it knows digits and little else. "
        "Text outside that vocabulary gets untrained token embeddings and meaningless scores.",
        "Its CLIP-scores are on the usual 100 * max(cos, 0) scale but not comparable to a pretrained CLIP's.",
    ],
    "diffusion": [
        "Pixel-space model of 8x8 digits: a real diffusion model, but small; conclusions about guidance schedules "
        "drawn here need checking on the user's own generator.",
        "Samples are quantised to 17 grey levels like the real digits, so file format and grey-level counts carry "
        "no signal; detectors must work from the image content.",
    ],
    "gan": [
        "A small multilayer-perceptron GAN of 8x8 digits: it stands for the adversarial family in the deepfake "
        "check's held-out-generator figures, not for modern GANs (StyleGAN and its kin are convolutional and "
        "far larger).",
        "GAN training is unstable and its samples can lack diversity (mode collapse); its FID ratio and class "
        "accuracy on this card say how well this one learned the digits.",
    ],
}


def _confusion(true: np.ndarray, pred: np.ndarray) -> list[list[int]]:
    m = np.zeros((digits.NUM_CLASSES, digits.NUM_CLASSES), dtype=int)
    np.add.at(m, (true, pred), 1)
    return m.tolist()


def zoo_results(name: str, root: Path = registry.PACKAGED_DIR) -> dict[str, Any]:
    """Measure and assemble the results document of one zoo model."""
    from audit.io.encode import image_grid, png_base64

    card = registry.read_card(name, root)
    model = registry.load(name, root)
    kind = card["kind"]
    x_held, y_held = digits.load_split("heldout")
    data: dict[str, Any] = {"card": card, "limitations": LIMITATIONS[kind]}
    models = [registry.model_ref(name, root)]
    seeds: dict[str, int] = {}
    if kind == "classifier":
        from audit.zoo import classifier

        pred = classifier.predict_logits(model, x_held).argmax(1)
        data["confusion"] = _confusion(y_held, pred)
        wrong = np.flatnonzero(pred != y_held)[:20]
        if len(wrong):
            data["errors_grid"] = png_base64(image_grid([x_held[i] for i in wrong], columns=10))
            data["errors_caption"] = ", ".join(f"{y_held[i]} read as {pred[i]}" for i in wrong)
        headline = [
            {"label": "held-out accuracy", "value": card["metrics"]["heldout_accuracy"], "format": "pct"},
            {"label": "parameters", "value": card["parameters"], "format": "int"},
        ]
    elif kind == "clip":
        from audit.zoo import clip

        text_emb = clip.class_text_embeddings(model)
        pred = (clip.encode_images(model, x_held) @ text_emb.T).argmax(1)
        data["confusion"] = _confusion(y_held, pred)
        data["text_similarity"] = np.round(text_emb @ text_emb.T, 4).tolist()
        data["templates"] = list(clip.CAPTION_TEMPLATES)
        headline = [
            {"label": "zero-shot accuracy", "value": card["metrics"]["heldout_zero_shot_accuracy"], "format": "pct"},
            {"label": "parameters", "value": card["parameters"], "format": "int"},
        ]
    else:
        from audit.zoo import ddpm, gan

        labels = np.repeat(np.arange(digits.NUM_CLASSES), GRID_SEEDS)
        if kind == "gan":
            samples = gan.sample(model, labels, seed=SAMPLE_SEED)
        else:
            samples = ddpm.sample(
                model, labels, guidance=ddpm.DEFAULT_GUIDANCE, steps=ddpm.DEFAULT_STEPS, seed=SAMPLE_SEED
            )
        data["samples_grid"] = png_base64(image_grid(list(samples), columns=GRID_SEEDS))
        real = [x_held[np.flatnonzero(y_held == c)[:GRID_SEEDS]] for c in range(digits.NUM_CLASSES)]
        data["real_grid"] = png_base64(image_grid([im for row in real for im in row], columns=GRID_SEEDS))
        seeds["samples"] = SAMPLE_SEED
        models.append(registry.model_ref("digits-classifier"))
        m = card["metrics"]
        headline = [
            {
                "label": "class accuracy" + (" at default guidance" if kind == "diffusion" else ""),
                "value": m["class_accuracy"],
                "format": "pct",
            },
            {"label": "FID ratio (samples / train, vs held-out)", "value": m["fid_ratio"], "format": "float2"},
        ]
    headline.append({"label": "weights", "value": card["weights"]["bytes"], "format": "bytes"})
    return {
        "schema": "genaudit.results/1",
        "kind": "zoo-model",
        "id": f"zoo-{name}",
        "title": name,
        "headline": headline,
        "provenance": provenance(
            command=f"genaudit demo (zoo card {name})",
            config={"model": name, "grid_seeds": GRID_SEEDS},
            seeds=seeds,
            models=models,
            preprocessing={"images": "grey 8x8, uint8 / 255", "split": card["data"]["split"]},
        ),
        "data": data,
    }
