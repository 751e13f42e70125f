"""The loader: every bad kind of file gets its reason; every odd mode loads to the documented RGB."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from audit.io import folder_source, iter_images, load_image
from audit.io.images import CORRUPT, EMPTY, NOT_AN_IMAGE, TOO_LARGE, TRUNCATED, decode_image
from tests.conftest import png_bytes, write


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gradient(h: int = 24, w: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 77)], axis=-1).astype(np.uint8)


def _corrupt_png() -> bytes:
    data = bytearray(png_bytes(_gradient()))
    idat = data.index(b"IDAT")
    for i in range(idat + 8, idat + 40):  # scramble the compressed stream; CRC no longer matches
        data[i] ^= 0x5A
    return bytes(data)


@pytest.fixture
def bad_folder(tmp_path: Path) -> dict[str, str]:
    """A folder with one file of every bad kind, plus good ones; returns relpath -> expected reason."""
    jpeg = _save(Image.fromarray(_gradient(64, 64)), "JPEG", quality=90)
    png = png_bytes(_gradient())
    files = {
        "bad/empty.jpg": (b"", EMPTY),
        "bad/not_an_image.png": (b"this is a text file, not a PNG\n" * 4, NOT_AN_IMAGE),
        "bad/truncated.jpg": (jpeg[: len(jpeg) // 2], TRUNCATED),
        "bad/truncated.png": (png[: len(png) - 60], TRUNCATED),
        "bad/corrupt.png": (_corrupt_png(), CORRUPT),
        "bad/bomb.png": (_save(Image.new("1", (12_000, 12_000)), "PNG"), TOO_LARGE),
        "good/rgb.png": (png, None),
        "good/photo.jpg": (jpeg, None),
        "good/gray.png": (png_bytes(np.full((5, 7), 128, np.uint8)), None),
    }
    for rel, (data, _) in files.items():
        write(tmp_path / rel, data)
    return {rel: reason for rel, (_, reason) in files.items()}


def test_every_bad_kind_gets_its_reason_and_good_images_load(tmp_path: Path, bad_folder: dict[str, str]) -> None:
    items = list(iter_images(folder_source(tmp_path)))
    assert [i.record.relpath for i in items] == sorted(bad_folder)
    for item in items:
        expected = bad_folder[item.record.relpath]
        assert item.result.reason == expected, (item.record.relpath, item.result.message)
        if expected is None:
            assert item.result.image is not None and item.result.image.dtype == np.uint8
            assert item.result.image.ndim == 3 and item.result.image.shape[2] == 3
        else:
            assert item.result.image is None and item.result.message
    # the bomb is refused from its header: 144,000,000 pixels against the default limit
    bomb = next(i for i in items if i.record.relpath == "bad/bomb.png")
    assert "144000000 pixels" in bomb.result.message


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = write(tmp_path / "a.png", png_bytes(_gradient(24, 32)))
    assert load_image(path, max_pixels=24 * 32).ok
    refused = load_image(path, max_pixels=24 * 32 - 1)
    assert refused.reason == TOO_LARGE and "768 pixels" in refused.message


def test_pixel_limit_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "a.png", png_bytes(_gradient(24, 32)))
    monkeypatch.setenv("GENAUDIT_MAX_PIXELS", "100")
    assert load_image(path).reason == TOO_LARGE


def test_sha256_is_of_the_file_bytes(tmp_path: Path) -> None:
    data = png_bytes(_gradient())
    path = write(tmp_path / "a.png", data)
    assert load_image(path).sha256 == hashlib.sha256(data).hexdigest()
    assert load_image(write(tmp_path / "e.png", b"")).sha256 == hashlib.sha256(b"").hexdigest()


def test_missing_file_is_refused(tmp_path: Path) -> None:
    assert load_image(tmp_path / "nope.png").reason == "missing"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(orientation: int) -> None:
    im = Image.fromarray(_gradient(20, 30))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _save(im, "JPEG", quality=95, exif=exif.tobytes())
    result = decode_image(data)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert result.meta["exif_orientation"] == orientation
    np.testing.assert_array_equal(result.image, expected)
    assert result.image.shape[:2] == ((30, 20) if orientation >= 5 else (20, 30))


def test_rgba_is_composited_on_white() -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (255, 0, 0, 0)  # fully transparent: white
    rgba[1, 0] = (0, 0, 0, 128)  # half black: 255 * (1 - 128/255) = 127
    rgba[1, 1] = (0, 0, 255, 51)  # 20% blue over white
    out = decode_image(png_bytes(rgba)).image
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]
    assert out[1, 0].tolist() == [127, 127, 127]
    assert out[1, 1].tolist() == [204, 204, 255]


def test_la_and_palette_transparency_composite_on_white() -> None:
    la = Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8), mode="LA")
    assert decode_image(_save(la, "PNG")).image[0].tolist() == [[255, 255, 255], [0, 0, 0]]
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    data = _save(pal, "PNG", transparency=0)
    out = decode_image(data)
    assert out.meta["mode"] == "P"
    assert out.image[0].tolist() == [[255, 255, 255], [200, 100, 50]]


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    data = _save(Image.fromarray(values), "PNG")
    out = decode_image(data)
    assert out.meta["mode"].startswith("I")
    assert out.image[0, :, 0].tolist() == [0, 1, 128, 255]  # v / 257
    assert (out.image[..., 0] == out.image[..., 2]).all()


def test_cmyk_and_bilevel_modes() -> None:
    cmyk = Image.new("CMYK", (3, 2), (0, 255, 255, 0))  # pure red in CMYK
    out = decode_image(_save(cmyk, "JPEG", quality=100)).image
    assert out.shape == (2, 3, 3)
    assert out[0, 0, 0] > 240 and out[0, 0, 1] < 15 and out[0, 0, 2] < 15
    bilevel = Image.fromarray(np.array([[True, False]]))
    assert decode_image(_save(bilevel, "PNG")).image[0].tolist() == [[255, 255, 255], [0, 0, 0]]


def test_animated_image_takes_frame_zero() -> None:
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    out = decode_image(buf.getvalue())
    assert out.meta["frames"] == 3
    assert out.image[0, 0].tolist() == [255, 0, 0]


def test_gps_and_exif_flags() -> None:
    exif = Image.Exif()
    exif[0x0110] = "camera"
    plain = decode_image(_save(Image.fromarray(_gradient()), "JPEG", exif=exif.tobytes()))
    assert plain.meta["exif"] and not plain.meta["gps"]
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 0.0)}
    tagged = decode_image(_save(Image.fromarray(_gradient()), "JPEG", exif=exif.tobytes()))
    assert tagged.meta["gps"]


def test_workers_give_the_same_results_in_the_same_order(tmp_path: Path, bad_folder: dict[str, str]) -> None:
    one = list(iter_images(folder_source(tmp_path), workers=1))
    for executor in ("thread", "process"):
        two = list(iter_images(folder_source(tmp_path), workers=2, chunk=2, prefetch=1, executor=executor))
        assert [i.record.relpath for i in one] == [i.record.relpath for i in two]
        for a, b in zip(one, two, strict=True):
            assert (a.result.reason, a.result.sha256) == (b.result.reason, b.result.sha256)
            if a.ok:
                np.testing.assert_array_equal(a.result.image, b.result.image)
    with pytest.raises(ValueError, match="executor must be"):
        list(iter_images(folder_source(tmp_path), workers=2, executor="gpu"))


def test_jpeg_quality_is_read_from_the_quantisation_table() -> None:
    """Pillow (libjpeg) files give back the quality they were written at, grey or colour, baseline or
    progressive; a hand-made table gives the nearest IJG quality; a PNG has none."""
    from audit.io.images import _IJG_LUMINANCE, jpeg_quality

    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8))

    def encoded(im: Image.Image, **options) -> bytes:
        buf = io.BytesIO()
        im.save(buf, **options)
        return buf.getvalue()

    for quality in (5, 30, 49, 50, 51, 75, 89, 90, 95, 100):
        assert decode_image(encoded(image, format="JPEG", quality=quality)).meta["jpeg_quality"] == quality
    grey = encoded(image.convert("L"), format="JPEG", quality=60, progressive=True)
    assert decode_image(grey).meta["jpeg_quality"] == 60
    # a table not made by IJG scaling: the standard table times 0.48 is nearest to quality 76 (scale 48 %)
    custom = np.clip(np.round(_IJG_LUMINANCE * 0.48), 1, 255).astype(int).tolist()
    assert jpeg_quality({0: custom}) == 76
    assert decode_image(encoded(image, format="JPEG", qtables=[custom])).meta["jpeg_quality"] == 76
    assert "jpeg_quality" not in decode_image(encoded(image, format="PNG")).meta
    assert jpeg_quality(None) is None and jpeg_quality({0: [1, 2, 3]}) is None


def test_webp_quality_is_read_from_the_vp8_frame_header() -> None:
    """A lossy WebP gives back libwebp's quantiser index for its quality (RFC 6386 header, libwebp's
    quality mapping: 127 (1 - cbrt(2q - 1)) above 0.75, 127 (1 - cbrt(2q/3)) below); with segments the
    estimate is within 2 points from quality 80 up; lossless, animated, alpha and cut files as documented."""
    from audit.io.webp_quality import quantiser_indices, webp_quality

    rng = np.random.default_rng(3)

    def encoded(im: Image.Image, **options) -> bytes:
        buf = io.BytesIO()
        im.save(buf, format="WEBP", **options)
        return buf.getvalue()

    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))  # uniform texture: no segments
    for quality, index in ((50, 38), (75, 26), (90, 9), (100, 0)):  # worked by hand from the formula
        data = encoded(noise, quality=quality)
        assert quantiser_indices(data) == [index]
        assert decode_image(data).meta["webp_quality"] in {quality, quality + 1}  # 50 and 51 share index 38
    # a smooth gradient beside noise: libwebp's spatial noise shaping gives four segments
    x = np.linspace(0, 255, 160)[None, :, None] * np.ones((112, 1, 3))
    x[:, 80:] = rng.integers(0, 256, (112, 80, 3))
    shaped = Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))
    for quality in (80, 85, 90, 95):
        data = encoded(shaped, quality=quality)
        assert len(quantiser_indices(data)) == 4
        assert abs(webp_quality(data) - quality) <= 2
    assert abs(webp_quality(encoded(shaped.convert("RGBA"), quality=60)) - 60) <= 10  # an alpha chunk first
    frames = [noise, Image.fromarray(255 - np.asarray(noise))]
    animated = io.BytesIO()
    frames[0].save(animated, format="WEBP", save_all=True, append_images=frames[1:], quality=40)
    assert abs(webp_quality(animated.getvalue()) - 40) <= 10  # the first frame's (the animation encoder segments)
    lossless = encoded(noise, lossless=True)
    assert webp_quality(lossless) is None and decode_image(lossless).meta["webp_quality"] is None
    cut = encoded(noise, quality=75)
    assert [webp_quality(cut[:n]) for n in (0, 4, 12, 30)] == [None] * 4
    assert webp_quality(cut[:60]) == 75  # the header is read; the image data are cut
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    assert "webp_quality" not in decode_image(buf.getvalue()).meta and webp_quality(buf.getvalue()) is None


def test_avif_files_are_listed_and_decoded(tmp_path: Path) -> None:
    pytest.importorskip("PIL.AvifImagePlugin")
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow was built without AVIF")
    image = np.random.default_rng(4).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.avif", quality=75)
    (record,) = list(folder_source(tmp_path))
    result = load_image(record.path)
    assert result.ok and result.meta["format"] == "AVIF" and result.image.shape == (16, 24, 3)
    assert np.abs(result.image.astype(int) - image).mean() < 64  # lossy, but the same picture
