"""``inception`` (clean-fid) and ``clip:`` (open_clip) extractors with random weights, loaded through the
real loaders, checked against clean-fid's and open_clip's own pipelines on the same images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audit.errors import InputError, WeightsError
from audit.features import get_extractor
from audit.io import folder_source, load_image
from tests.feature_fixtures import save_random_inception_torchscript, save_random_open_clip


def _write_images(folder: Path, count: int, seed: int) -> np.ndarray:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        smooth = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)  # blocky images, 40x48 like a thumbnail
        img = np.asarray(Image.fromarray(smooth).resize((48, 40), Image.Resampling.BILINEAR))
        Image.fromarray(img).save(folder / f"{i:03d}.png")
        images.append(img)
    return np.stack(images)


@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    return get_extractor(
        f"inception:{save_random_inception_torchscript(tmp_path_factory.mktemp('inception'))}", device="cpu"
    )


def test_inception_features_match_clean_fid(inception, tmp_path) -> None:
    import torch
    from cleanfid import fid as cleanfid

    real = _write_images(tmp_path / "real", 10, seed=0)
    fake = _write_images(tmp_path / "fake", 10, seed=1)
    ours = inception(real)["features"]
    theirs = cleanfid.get_folder_features(
        str(tmp_path / "real"),
        model=inception.net,
        num_workers=0,
        batch_size=4,
        device=torch.device("cpu"),
        mode="clean",
        verbose=False,
    )
    assert ours.shape == (10, 2048) and ours.std() > 1e-3
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4 * np.abs(theirs).max())
    probs = inception(fake)["probs"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-9)
    # the same images through genaudit's loader give the same features as the arrays written
    loaded = np.stack([load_image(r.path).image for r in folder_source(tmp_path / "fake")])
    np.testing.assert_array_equal(inception(loaded)["features"], inception(fake)["features"])


def test_a_reference_folder_of_many_sizes_gets_clean_fids_features(inception, tmp_path) -> None:
    """clean-fid reads a folder of mixed sizes (COCO-like) and resizes each image from its own size to 299;
    the bench's streamed reference gives the same features, in the folder's order."""
    import torch
    from cleanfid import fid as cleanfid
    from PIL import Image

    from audit.bench.run import reference_chunks
    from audit.metrics.evaluator import FeatureCache, extract_all

    (tmp_path / "ref").mkdir()
    rng = np.random.default_rng(2)
    for i, (w, h) in enumerate([(48, 40), (40, 48), (64, 64), (48, 40), (33, 71)]):
        blocks = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
        Image.fromarray(blocks).resize((w, h), Image.Resampling.BILINEAR).save(tmp_path / "ref" / f"{i:03d}.png")
    info: dict = {}
    ours = extract_all(FeatureCache(), inception, reference_chunks(str(tmp_path / "ref"), info))["features"]
    theirs = cleanfid.get_folder_features(
        str(tmp_path / "ref"), model=inception.net, num_workers=0, batch_size=2, device=torch.device("cpu"),
        mode="clean", verbose=False,
    )  # fmt: skip
    assert info["n"] == 5 and info["sizes"] == 4 and ours.shape == (5, 2048)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4 * np.abs(theirs).max())


def test_missing_inception_weights_offline_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match=r"inception-2015-12-05\.pt"):
        get_extractor(f"inception:{tmp_path}")


def test_open_clip_extractor_equals_open_clip_and_names_its_weights(tmp_path) -> None:
    import open_clip
    import torch
    from PIL import Image

    path = save_random_open_clip(tmp_path / "vit-b-32-random.safetensors")
    ext = get_extractor(f"clip:ViT-B-32:{path}", device="cpu")
    images = _write_images(tmp_path / "imgs", 3, seed=2)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=str(path))
    model.eval()
    with torch.no_grad():
        expected = model.encode_image(torch.stack([preprocess(Image.fromarray(im)) for im in images])).numpy()
        text = model.encode_text(open_clip.get_tokenizer("ViT-B-32")(["a red square"])).numpy()
    out = ext(images)
    np.testing.assert_allclose(out["features"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["features"], out["clip"])
    np.testing.assert_allclose(ext.encode_texts(["a red square"]), text, rtol=1e-5, atol=1e-6)
    assert "sha256:" in ext.id and "resize224-bicubic" in ext.id and "crop(224, 224)" in ext.id
    other = get_extractor(f"clip:ViT-B-32:{save_random_open_clip(tmp_path / 'other.safetensors', seed=1)}")
    assert other.id != ext.id  # other weights, other cache key


def test_clip_spec_errors_are_clear(tmp_path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        get_extractor(f"clip:ViT-B-32:{tmp_path / 'missing.safetensors'}")
    with pytest.raises(InputError, match=r"clip:ARCH:PRETRAINED"):
        get_extractor("clip:ViT-B-32")
    with pytest.raises(InputError, match="no model 'ViT-Q-99'"):
        get_extractor("clip:ViT-Q-99:laion2b")
    with pytest.raises(InputError, match="unknown feature extractor"):
        get_extractor("dino")
