"""Card builder for ``zoo-model`` results: one embedded model, its recipe, figures and samples."""

from __future__ import annotations

from typing import Any

from reports import figures
from reports.cards import base_context

DIGITS = [str(d) for d in range(10)]


def _recipe_facts(card: dict[str, Any]) -> list[tuple[str, str]]:
    training = card["training"]
    weights = card["weights"]
    return [
        ("data", card["data"]["source"]),
        ("split", card["data"]["split"]),
        ("pixels", card["data"]["pixels"]),
        ("parameters", f"{card['parameters']:,}"),
        ("weights", f"{weights['file']} ({weights['bytes'] / 1e6:.2f} MB)"),
        ("sha256", weights["sha256"]),
        ("reproduce", f"{training['command']} (CPU, {training['threads']} threads, seed {card['recipe']['seed']})"),
        ("training time", f"{training['seconds']:.0f} s on {training['machine'].get('cpu_count')} CPU cores"),
    ]


def _recipe_table(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "caption": "Training recipe",
        "columns": ["setting", "value"],
        "rows": [[k, str(v)] for k, v in card["recipe"].items()],
    }


def _grid_figure(data: dict[str, Any], key: str, caption: str, alt: str) -> dict[str, Any]:
    return {"src": "data:image/png;base64," + data[key], "alt": alt, "caption": caption, "chart": False}


def _confusion_figure(confusion: list[list[int]], title: str, alt: str) -> dict[str, Any]:
    src = figures.heatmap(confusion, DIGITS, DIGITS, title=title, xlabel="predicted", ylabel="true")
    return {"src": src, "alt": alt}


def build(doc: dict[str, Any]) -> dict[str, Any]:
    data = doc["data"]
    card = data["card"]
    kind = card["kind"]
    metrics = card["metrics"]
    sections: list[dict[str, Any]] = []
    if kind == "classifier":
        sections.append(
            {
                "title": "Held-out accuracy",
                "paragraphs": [
                    f"Accuracy on the {sum(map(sum, data['confusion']))} held-out digits: "
                    f"{100 * metrics['heldout_accuracy']:.2f}%. The 128-d penultimate layer is the embedded "
                    "feature space for FID; the softmax gives the Inception-Score analogue."
                ],
                "figures": [
                    _confusion_figure(
                        data["confusion"],
                        "Confusion (held out)",
                        "confusion matrix of the classifier on held-out digits",
                    ),
                    {
                        "src": figures.bar_chart(
                            DIGITS,
                            [metrics["heldout_per_class_accuracy"][d] for d in DIGITS],
                            title="Per-class accuracy",
                            ylabel="accuracy",
                            ylim=(0.8, 1.0),
                        ),
                        "alt": "per-class accuracy",
                    },
                ],
            }
        )
        if data.get("errors_grid"):
            sections[-1]["figures"].append(
                _grid_figure(
                    data,
                    "errors_grid",
                    "Held-out digits it gets wrong: " + data["errors_caption"],
                    "misclassified digits",
                )
            )
    elif kind == "clip":
        sections.append(
            {
                "title": "Zero-shot classification",
                "paragraphs": [
                    f"Held-out zero-shot accuracy {100 * metrics['heldout_zero_shot_accuracy']:.2f}% with the prompt "
                    f"ensemble ({metrics['zero_shot_prompts']}); "
                    f"{100 * metrics['heldout_zero_shot_accuracy_single_prompt']:.2f}% "
                    "with the single prompt 'a handwritten digit {word}'. CLIP-score on this model uses the same "
                    "100 * max(cos, 0) scale as with a real CLIP, but its values are not comparable to a ViT-B/32's."
                ],
                "figures": [
                    _confusion_figure(
                        data["confusion"], "Zero-shot confusion (held out)", "zero-shot confusion matrix"
                    ),
                    {
                        "src": figures.heatmap(
                            data["text_similarity"],
                            DIGITS,
                            DIGITS,
                            title="Cosine similarity of class prompts",
                            xlabel="digit",
                            ylabel="digit",
                            fmt="{:.2f}",
                        ),
                        "alt": "similarity between the class text embeddings",
                    },
                ],
                "tables": [
                    {
                        "caption": "Caption templates used in training and for zero-shot prompts",
                        "columns": ["template"],
                        "rows": [[t] for t in data["templates"]],
                    }
                ],
            }
        )
    elif kind == "gan":
        sections.append(
            {
                "title": "Samples",
                "paragraphs": [
                    "One row per digit, one column per seed: one forward pass of the generator each, quantised to "
                    "the 17 grey levels of the real digits."
                ],
                "figures": [
                    _grid_figure(data, "samples_grid", "Samples", "generated digits, one row per class"),
                    _grid_figure(data, "real_grid", "Real held-out digits, for comparison", "real held-out digits"),
                ],
            }
        )
        sections.append(
            {
                "title": "Class adherence and FID",
                "paragraphs": [
                    f"{100 * metrics['class_accuracy']:.1f}% of {metrics['n_samples']} samples are classified as "
                    "the requested digit by digits-classifier. FID in that classifier's feature space: samples vs "
                    f"held-out {metrics['fid_samples_vs_heldout']:.3f}, training split vs held-out "
                    f"{metrics['fid_train_vs_heldout']:.3f} (ratio {metrics['fid_ratio']:.2f}; both sides use 1,500 "
                    "images against the 297 held-out ones)."
                ],
            }
        )
    elif kind == "diffusion":
        sweep = metrics["guidance_sweep"]
        ws = [s["guidance_weight"] for s in sweep]
        sections.append(
            {
                "title": "Samples",
                "paragraphs": [
                    f"One row per digit, one column per seed; DDIM with {metrics['default_steps']} steps at guidance "
                    f"w = {metrics['default_guidance_weight']} (paper convention; diffusers scale "
                    f"{metrics['default_guidance_weight'] + 1}). "
                    "Outputs are quantised to the 17 grey levels of the real digits."
                ],
                "figures": [
                    _grid_figure(
                        data,
                        "samples_grid",
                        f"Samples at w = {metrics['default_guidance_weight']}",
                        "generated digits, one row per class",
                    ),
                    _grid_figure(data, "real_grid", "Real held-out digits, for comparison", "real held-out digits"),
                ],
            }
        )
        sections.append(
            {
                "title": "Class adherence and FID",
                "paragraphs": [
                    f"At the default guidance, {100 * metrics['class_accuracy']:.1f}% of "
                    f"{metrics['n_samples']} samples are "
                    f"classified as the requested digit by digits-classifier. FID in that classifier's feature space: "
                    f"samples vs held-out {metrics['fid_samples_vs_heldout']:.3f}, training split vs held-out "
                    f"{metrics['fid_train_vs_heldout']:.3f} (ratio {metrics['fid_ratio']:.2f}; both sides use 1,500 "
                    "images against the 297 held-out ones)."
                ],
                "figures": [
                    {
                        "src": figures.line_chart(
                            ws,
                            {"class accuracy": [s["class_accuracy"] for s in sweep]},
                            title="Guidance sweep",
                            xlabel="guidance weight w (paper convention)",
                            ylabel="class accuracy",
                            secondary={"FID vs held-out": [s["fid_vs_heldout"] for s in sweep]},
                            secondary_label="FID (classifier features)",
                        ),
                        "alt": "class accuracy and FID against guidance weight",
                    }
                ],
                "tables": [
                    {
                        "caption": f"Guidance sweep ({sweep[0]['n']} samples per weight)",
                        "columns": ["w", "class accuracy", "FID vs held-out"],
                        "rows": [[s["guidance_weight"], s["class_accuracy"], s["fid_vs_heldout"]] for s in sweep],
                    }
                ],
            }
        )
    sections.append({"title": "Recipe and weights", "facts": _recipe_facts(card), "tables": [_recipe_table(card)]})
    sections.append({"title": "Limitations", "notes": data["limitations"]})
    return base_context(doc, summary=card["summary"], sections=sections)
