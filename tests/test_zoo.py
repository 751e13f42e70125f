"""The embedded zoo: shipped weights verify, load, and meet their figures; export matches the generator."""

from __future__ import annotations

import csv
import io
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from audit.cli import main
from audit.errors import WeightsError
from audit.zoo import classifier, clip, ddpm, digits, gan, registry
from audit.zoo.export import png_bytes


def test_split_is_the_documented_one() -> None:
    x_train, _ = digits.load_split("train")
    x_held, y_held = digits.load_split("heldout")
    assert x_train.shape == (1500, 8, 8) and x_held.shape == (297, 8, 8)
    from sklearn.datasets import load_digits

    raw = load_digits()
    np.testing.assert_array_equal(y_held, raw.target[1500:])
    np.testing.assert_array_equal(digits.uint8_to_levels(x_held), raw.images[1500:].astype(np.uint8))
    assert set(np.unique(x_train)) <= set(digits.levels_to_uint8(np.arange(17)))


def test_the_digits_file_read_directly_equals_load_digits_and_a_changed_file_falls_back(monkeypatch) -> None:
    from sklearn.datasets import load_digits

    raw = load_digits()
    levels, target = digits._digits_table()  # the file read without importing scikit-learn
    np.testing.assert_array_equal(levels, raw.images)
    np.testing.assert_array_equal(target, raw.target)
    calls = []

    def counted():
        calls.append(1)
        return load_digits()

    monkeypatch.setattr(digits, "DIGITS_CSV_SHA256", "0" * 64)  # as if scikit-learn shipped another file
    monkeypatch.setattr("sklearn.datasets.load_digits", counted)
    levels, target = digits._digits_table()
    assert calls == [1]
    np.testing.assert_array_equal(levels, raw.images)


def test_level_mapping_round_trips() -> None:
    levels = np.arange(17)
    grey = digits.levels_to_uint8(levels)
    assert grey[0] == 0 and grey[16] == 255 and grey[1] == 16  # round(255 / 16) = 16
    np.testing.assert_array_equal(digits.uint8_to_levels(grey), levels)
    np.testing.assert_array_equal(digits.quantize_to_levels(levels / 16), grey)


def test_every_model_verifies_and_the_zoo_fits_its_budget() -> None:
    total = 0
    for name in registry.ENTRIES:
        path = registry.verify(name)
        card = registry.read_card(name)
        assert card["weights"]["bytes"] == path.stat().st_size
        assert card["training"]["command"] == f"genaudit zoo train {name}"
        assert card["training"]["seconds"] <= 15 * 60
        total += path.stat().st_size
    assert total <= 20 * 1024 * 1024


def test_tampered_or_missing_weights_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "weights"
    shutil.copytree(registry.PACKAGED_DIR, root)
    path = registry.weights_path("digits-classifier", root)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupt or was replaced"):
        registry.load("digits-classifier", root)
    path.unlink()
    with pytest.raises(WeightsError, match="genaudit zoo train digits-classifier"):
        registry.load("digits-classifier", root)


def test_classifier_meets_its_card() -> None:
    card = registry.read_card("digits-classifier")
    measured = classifier.evaluate(registry.load("digits-classifier"))
    assert measured["heldout_accuracy"] >= 0.97
    assert measured["heldout_accuracy"] == pytest.approx(card["metrics"]["heldout_accuracy"], abs=1 / 297)
    feats = classifier.extract_features(registry.load("digits-classifier"), digits.load_split("heldout")[0][:5])
    assert feats.shape == (5, classifier.FEATURE_DIM) and feats.dtype == np.float64


def test_clip_is_an_open_clip_model_and_meets_its_card() -> None:
    import open_clip

    model = registry.load("digits-clip")
    assert isinstance(model, open_clip.CLIP)
    assert "digits-clip" in open_clip.list_models()
    measured = clip.evaluate(model)
    assert measured["heldout_zero_shot_accuracy"] >= 0.90
    card = registry.read_card("digits-clip")
    assert measured["heldout_zero_shot_accuracy"] == pytest.approx(
        card["metrics"]["heldout_zero_shot_accuracy"], abs=1 / 297
    )
    # CLIP-score scale sanity: an image scores higher with its own caption than with another digit's
    x, y = digits.load_split("heldout")
    img = clip.encode_images(model, x[:20])
    own = clip.encode_texts(model, [clip.caption(int(label)) for label in y[:20]])
    other = clip.encode_texts(model, [clip.caption(int((label + 5) % 10)) for label in y[:20]])
    assert ((img * own).sum(1) > (img * other).sum(1)).mean() >= 0.9


def test_ddpm_is_a_diffusers_model_with_a_null_class() -> None:
    from diffusers import UNet2DModel

    model = registry.load("digits-ddpm")
    assert isinstance(model, UNet2DModel)
    assert model.config.num_class_embeds == 11 and ddpm.NULL_CLASS == 10


def test_sampling_is_deterministic_per_seed_and_label_and_records_weights() -> None:
    model = registry.load("digits-ddpm")
    a, weights = ddpm.sample(model, np.array([3, 7]), steps=10, seed=5, return_weights=True)
    b = ddpm.sample(model, np.array([3, 7, 1]), steps=10, seed=5, batch_size=1)
    np.testing.assert_array_equal(a, b[:2])
    assert weights == [ddpm.DEFAULT_GUIDANCE] * 10
    _, ramp = ddpm.sample(model, np.array([3]), steps=5, guidance=lambda p: 2 * p, return_weights=True)
    assert ramp == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert a.dtype == np.uint8 and a.shape == (2, 8, 8)
    assert set(np.unique(a)) <= set(digits.levels_to_uint8(np.arange(17)))
    with pytest.raises(ValueError, match=r"digits 0\.\.9"):
        ddpm.sample(model, np.array([10]))


def test_gan_meets_its_card_and_samples_per_seed_and_index() -> None:
    """The GAN's 1,500 samples: >= 90% class adherence, FID <= 3x FID(train, held-out), the card's figures;
    image i depends only on (seed, i) and its class, in the real digits' 17 levels."""
    model = registry.load("digits-gan")
    clf = registry.load("digits-classifier")
    labels = np.repeat(np.arange(10), gan.EVAL_SAMPLES_PER_CLASS)
    images = gan.sample(model, labels, seed=0)
    from audit.metrics import fid

    held = classifier.extract_features(clf, digits.load_split("heldout")[0])
    ratio = fid(classifier.extract_features(clf, images), held) / fid(
        classifier.extract_features(clf, digits.load_split("train")[0]), held
    )
    accuracy = float((classifier.predict_logits(clf, images).argmax(1) == labels).mean())
    card = registry.read_card("digits-gan")["metrics"]
    assert accuracy >= 0.90 and ratio <= 3.0
    assert accuracy == pytest.approx(card["class_accuracy"], abs=1e-9)
    assert ratio == pytest.approx(card["fid_ratio"], rel=1e-6)
    np.testing.assert_array_equal(gan.sample(model, labels[:5], seed=0), images[:5])  # noise by (seed, index)
    assert not np.array_equal(gan.sample(model, labels[:5], seed=1), images[:5])
    assert set(np.unique(images)) <= set(digits.levels_to_uint8(np.arange(17)))


def test_mixture_samples_digits_in_the_real_format_per_seed() -> None:
    """The Gaussian-mixture family: recognisable digits (the classifier reads >= 90% as asked), the 17
    levels, the same images for the same labels and seed, other images for another seed."""
    from audit.zoo.mixture import sample_mixture

    labels = [i % 10 for i in range(200)]
    a = sample_mixture(labels, seed=3)
    np.testing.assert_array_equal(a, sample_mixture(labels, seed=3))
    assert not np.array_equal(a, sample_mixture(labels, seed=4))
    assert a.dtype == np.uint8 and a.shape == (200, 8, 8)
    assert set(np.unique(a)) <= set(digits.levels_to_uint8(np.arange(17)))
    accuracy = (classifier.predict_logits(registry.load("digits-classifier"), a).argmax(1) == labels).mean()
    assert accuracy >= 0.9
    with pytest.raises(ValueError, match="labels must be"):
        sample_mixture([10], seed=0)


@pytest.mark.slow
def test_ddpm_meets_its_card() -> None:
    """>= 90% class adherence and FID <= 3x FID(train, held-out) at the default guidance (1,500 samples)."""
    model = registry.load("digits-ddpm")
    clf = registry.load("digits-classifier")
    labels = np.repeat(np.arange(10), ddpm.EVAL_SAMPLES_PER_CLASS)
    images = ddpm.sample(model, labels, seed=0)
    accuracy = float((classifier.predict_logits(clf, images).argmax(1) == labels).mean())
    from audit.metrics import fid

    held = classifier.extract_features(clf, digits.load_split("heldout")[0])
    ratio = fid(classifier.extract_features(clf, images), held) / fid(
        classifier.extract_features(clf, digits.load_split("train")[0]), held
    )
    card = registry.read_card("digits-ddpm")["metrics"]
    assert accuracy >= 0.90 and ratio <= 3.0
    assert accuracy == pytest.approx(card["class_accuracy"], abs=0.01)
    assert ratio == pytest.approx(card["fid_ratio"], rel=0.05)


def _ihdr(png: bytes) -> tuple[int, int, int, int]:
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", png[16:26])
    return width, height, bit_depth, colour_type


def test_export_writes_pngs_in_the_generator_format(tmp_path: Path) -> None:
    assert main(["zoo", "export", "digits", "--split", "heldout", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    x_held, y_held = digits.load_split("heldout")
    assert len(rows) == 297 and [int(r["label"]) for r in rows] == y_held.tolist()
    generated = ddpm.sample(registry.load("digits-ddpm"), np.array([int(rows[0]["label"])]), steps=5)[0]
    gen_png = png_bytes(generated)
    for i, row in enumerate(rows[:30]):
        data = (tmp_path / row["path"]).read_bytes()
        assert _ihdr(data) == _ihdr(gen_png) == (8, 8, 8, 0)  # 8x8, 8-bit, greyscale
        with Image.open(tmp_path / row["path"]) as im:
            assert im.mode == "L" and im.info == Image.open(io.BytesIO(gen_png)).info
            np.testing.assert_array_equal(np.asarray(im), x_held[i])


@pytest.mark.slow
def test_classifier_training_reproduces_the_shipped_weights(tmp_path: Path) -> None:
    """`genaudit zoo train` is the recipe of record: on this machine kind it gives the same bytes."""
    assert main(["zoo", "train", "digits-classifier", "--out", str(tmp_path)]) == 0
    retrained = registry.read_card("digits-classifier", tmp_path)
    shipped = registry.read_card("digits-classifier")
    assert retrained["metrics"]["heldout_accuracy"] == shipped["metrics"]["heldout_accuracy"]
    assert retrained["weights"]["sha256"] == shipped["weights"]["sha256"], (
        "bit-exact reproduction holds on the CPU type the weights were trained on "
        f"({shipped['training']['machine']}); this machine: {retrained['training']['machine']}"
    )
