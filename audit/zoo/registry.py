"""The embedded model zoo: which models exist, where their weights and cards live, how they load.

Each model ships as safetensors weights plus a JSON model card (data, split, recipe, figures, sha256).
Loading verifies the weights' sha256 against the card before any tensor is read; nothing is ever
unpickled. ``train_and_save`` is what ``genaudit zoo train NAME`` runs: the committed weights are its
output.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import InputError, WeightsError
from audit.hashing import sha256_file

log = logging.getLogger(__name__)

PACKAGED_DIR = Path(__file__).parent / "weights"
CARD_SCHEMA = "genaudit.zoo-card/1"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    kind: str
    summary: str
    weights_file: str  # relative to the weights folder
    needs: tuple[str, ...] = ()  # zoo models its evaluation uses


ENTRIES: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry(
            "digits-classifier",
            "classifier",
            "Small CNN on 8x8 digits: embedded feature extractor (128-d) and class probabilities.",
            "digits-classifier.safetensors",
        ),
        ZooEntry(
            "digits-clip",
            "clip",
            "Tiny CLIP (open_clip custom config) for digits and captions: the embedded CLIP-score.",
            "digits-clip.safetensors",
        ),
        ZooEntry(
            "digits-ddpm",
            "diffusion",
            "Class-conditional diffusers UNet2DModel with a null class for classifier-free guidance.",
            "digits-ddpm/unet/diffusion_pytorch_model.safetensors",
            needs=("digits-classifier",),
        ),
        ZooEntry(
            "digits-gan",
            "gan",
            "Class-conditional GAN (MLP generator, spectrally normalised MLP discriminator): a generator from "
            "another family, for the deepfake check's held-out-generator figures.",
            "digits-gan.safetensors",
            needs=("digits-classifier",),
        ),
    )
}


def entry(name: str) -> ZooEntry:
    try:
        return ENTRIES[name]
    except KeyError:
        raise InputError(f"unknown zoo model {name!r}; known: {', '.join(ENTRIES)}") from None


def card_path(name: str, root: Path = PACKAGED_DIR) -> Path:
    return Path(root) / f"{name}.card.json"


def weights_path(name: str, root: Path = PACKAGED_DIR) -> Path:
    return Path(root) / entry(name).weights_file


def read_card(name: str, root: Path = PACKAGED_DIR) -> dict[str, Any]:
    import json

    entry(name)
    path = card_path(name, root)
    if not path.is_file():
        raise WeightsError(f"no model card for {name!r} at {path}; run `genaudit zoo train {name}`")
    return json.loads(path.read_text(encoding="utf-8"))


def verify(name: str, root: Path = PACKAGED_DIR) -> Path:
    """Check the weights file exists and matches the card's sha256; return its path."""
    card = read_card(name, root)
    path = weights_path(name, root)
    if not path.is_file():
        raise WeightsError(f"weights of {name!r} missing at {path}; run `genaudit zoo train {name}`")
    actual = sha256_file(path)
    expected = card["weights"]["sha256"]
    if actual != expected:
        raise WeightsError(
            f"weights of {name!r} at {path} have sha256 {actual[:12]}..., the card says {expected[:12]}...: "
            "the file is corrupt or was replaced; reinstall genaudit or retrain with `genaudit zoo train`"
        )
    return path


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, root: str) -> Any:
    path = verify(name, Path(root))
    kind = entry(name).kind
    if kind == "classifier":
        from safetensors.torch import load_file

        from audit.zoo import classifier

        model = classifier.build_model()
        model.load_state_dict(load_file(path))
    elif kind == "clip":
        from audit.zoo import clip

        model = clip.build_model(pretrained=str(path))
    elif kind == "gan":
        from safetensors.torch import load_file

        from audit.zoo import gan

        model = gan.build_model()
        model.load_state_dict(load_file(path))
    elif kind == "diffusion":
        from diffusers import UNet2DModel

        model = UNet2DModel.from_pretrained(
            path.parent.parent, subfolder="unet", use_safetensors=True, low_cpu_mem_usage=False
        )
    else:  # pragma: no cover - ENTRIES is fixed
        raise AssertionError(kind)
    model.eval()
    return model


def load(name: str, root: Path = PACKAGED_DIR) -> Any:
    """Load a zoo model (torch module in eval mode), after checking its weights' sha256. Cached."""
    entry(name)
    return _load_cached(name, str(Path(root).resolve()))


def model_ref(name: str, root: Path = PACKAGED_DIR) -> dict[str, Any]:
    """How a result names the model it used: id, weights sha256 and the card's headline figures."""
    card = read_card(name, root)
    return {"id": f"embedded:{name}", "sha256": card["weights"]["sha256"], "card_metrics": card["metrics"]}


def _save_weights(name: str, state: dict[str, Any], out: Path) -> Path:
    if entry(name).kind == "diffusion":
        from audit.zoo import ddpm

        model = ddpm.build_model()
        model.load_state_dict(state)
        model.save_pretrained(out / "digits-ddpm" / "unet", safe_serialization=True)
        from audit.atomic import write_json_atomic

        write_json_atomic(out / "digits-ddpm" / "scheduler" / "scheduler_config.json", ddpm.SCHEDULER_CONFIG)
        return weights_path(name, out)
    from safetensors.torch import save_file

    path = weights_path(name, out)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"model": name})
    return path


def train_and_save(name: str, out: Path) -> dict[str, Any]:
    """Train ``name`` from scratch, evaluate the saved weights as loaded back, write weights + card."""
    from audit.atomic import write_json_atomic
    from audit.provenance import machine as machine_info
    from audit.provenance import package_versions
    from audit.zoo import classifier, clip, ddpm, digits, gan
    from audit.zoo.training import TRAIN_THREADS

    e = entry(name)
    module = {"classifier": classifier, "clip": clip, "diffusion": ddpm, "gan": gan}[e.kind]
    out = Path(out)
    log.info("training %s (recipe: %s)", name, module.RECIPE)
    start = time.perf_counter()
    state, train_metrics = module.train()
    seconds = time.perf_counter() - start
    path = _save_weights(name, state, out)
    n_params = sum(int(v.numel()) for k, v in state.items() if v.dtype.is_floating_point)
    card: dict[str, Any] = {
        "schema": CARD_SCHEMA,
        "name": name,
        "kind": e.kind,
        "summary": e.summary,
        "architecture": _architecture(e.kind),
        "parameters": n_params,
        "data": {
            "source": "sklearn.datasets.load_digits() (UCI optical recognition of handwritten digits)",
            "split": f"first {digits.N_TRAIN} images train, last {digits.N_HELDOUT} held out",
            "pixels": "8x8 grey, 17 levels 0..16 stored as uint8 round(level * 255 / 16)",
        },
        "recipe": module.RECIPE,
        "training": {
            "command": f"genaudit zoo train {name}",
            "seconds": round(seconds, 1),
            "threads": TRAIN_THREADS,
            "device": "cpu",
            "machine": machine_info(),
            "packages": package_versions(),
        },
        "metrics": train_metrics,
        "weights": {"file": e.weights_file, "sha256": sha256_file(path), "bytes": path.stat().st_size},
    }
    write_json_atomic(card_path(name, out), card)  # first with the sha256, so that load() can verify
    _load_cached.cache_clear()
    card["metrics"] = {**train_metrics, **evaluate_saved(name, out)}
    write_json_atomic(card_path(name, out), card)
    log.info("%s: %s", name, card["metrics"])
    return card


def evaluate_saved(name: str, root: Path) -> dict[str, Any]:
    """The card's figures, measured on the weights as loaded from disk (what users get)."""
    from audit.zoo import classifier, clip, ddpm, gan

    kind = entry(name).kind
    model = load(name, root)
    if kind == "classifier":
        return classifier.evaluate(model)
    if kind == "clip":
        return clip.evaluate(model)
    (judge,) = entry(name).needs  # the freshly trained classifier when `zoo train all` made one
    judge_root = root if card_path(judge, root).is_file() else PACKAGED_DIR
    return (gan if kind == "gan" else ddpm).evaluate(model, load(judge, judge_root))


def _architecture(kind: str) -> dict[str, Any]:
    from audit.zoo import ddpm

    if kind == "classifier":
        return {"type": "CNN", "layers": "conv32-conv64-pool-conv128-pool-fc128-fc10", "input": "1x8x8 in [0, 1]"}
    if kind == "clip":
        import json

        from audit.zoo import clip

        return {"type": "open_clip CLIP", "config": json.loads((clip.CONFIG_DIR / "digits-clip.json").read_text())}
    if kind == "gan":
        from audit.zoo import gan

        return {"type": "MLP GAN", "generator": f"({gan.LATENT} noise + 10 one-hot) -> {gan.HIDDEN} -> {gan.HIDDEN} "
                "-> 64 sigmoid", "discriminator": f"(64 + 10 one-hot) -> {gan.HIDDEN} -> {gan.HIDDEN} -> 1, "
                "spectral norm"}  # fmt: skip
    return {"type": "diffusers UNet2DModel", "config": ddpm.UNET_CONFIG, "scheduler": ddpm.SCHEDULER_CONFIG}
