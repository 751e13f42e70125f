"""``genaudit detect`` end to end on small folders, and the detectors' diffusers models through the same
loading code as the benchmark (tiny random pipelines)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from audit.cli import main
from audit.errors import InputError


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """40 held-out real digits and 40 of the embedded model's samples as PNG, the fakes also as JPEG."""
    from PIL import Image

    from audit.generators.base import GenerationRequest
    from audit.generators.embedded import EmbeddedDigitsGenerator
    from audit.guidance import get_schedule
    from audit.zoo import digits

    root = tmp_path_factory.mktemp("detect")
    real, _ = digits.load_split("heldout")
    request = GenerationRequest(seeds=tuple(range(900, 940)), schedule=get_schedule("static", 1.0), steps=25,
                                labels=tuple(i % 10 for i in range(40)))  # fmt: skip
    fake = EmbeddedDigitsGenerator().generate(request).images
    out = {name: root / name for name in ("real", "fake", "fake_jpeg", "mixed", "training")}
    for folder in out.values():
        folder.mkdir()
    for i in range(40):
        Image.fromarray(real[i]).convert("RGB").save(out["real"] / f"r{i:02d}.png")
        Image.fromarray(fake[i]).save(out["fake"] / f"f{i:02d}.png")
        Image.fromarray(fake[i]).save(out["fake_jpeg"] / f"f{i:02d}.jpg", quality=95)
    Image.fromarray(real[40]).convert("RGB").save(out["mixed"] / "real <b>'é'.png")
    Image.fromarray(fake[0]).save(out["mixed"] / "fake.png")
    (out["mixed"] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    train, _ = digits.load_split("train")
    for i in range(30):
        Image.fromarray(train[i]).convert("RGB").save(out["training"] / f"t{i:02d}.png")
    (out["training"] / "empty.png").write_bytes(b"")
    return out


def test_calibrate_then_detect_writes_every_file_with_a_reason(folders, tmp_path) -> None:
    det_file = tmp_path / "det.json"
    assert main(["-q", "detect", "calibrate", "--real", str(folders["real"]), "--fake", str(folders["fake"]),
                 "--k", "8", "--noise-sets", "4", "--classes", "auto", "--out", str(det_file)]) == 0  # fmt: skip
    meta = json.loads(det_file.read_text())["meta"]
    assert meta["scorer"]["name"] == "diffusion-loss" and meta["scorer"]["k"] == 8
    assert meta["scorer"]["classes"] is True  # "auto" on the embedded model, which has 10 classes
    assert meta["scorer"]["noise_sets"] == 4 and json.loads(det_file.read_text())["params"]["blocks"] == 4
    assert len(meta["feature_names"]) == 4 * (8 + 8 + 8 + 8 + 8 + 10 + 10 * 2) and meta["calibrated_on"]["n_real"] == 40
    assert 0.5 < meta["cross_fitted_auroc"] <= 1.0 and meta["warnings"] == []
    out = tmp_path / "out"
    assert main(["-q", "detect", str(folders["mixed"]), "--detector", str(det_file), "--out", str(out)]) == 0
    with (out / "detections.csv").open(encoding="utf-8") as fh:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    assert set(rows) == {"real <b>'é'.png", "fake.png", "broken.png"}
    assert rows["broken.png"]["reason"] and rows["broken.png"]["score"] == ""
    assert 0.0 <= float(rows["fake.png"]["p_synthetic"]) <= 1.0 and rows["fake.png"]["flagged"] in ("True", "False")
    html = (out / "detect-results.html").read_text(encoding="utf-8")
    assert "real &lt;b&gt;" in html and "<b>'" not in html  # hostile names are escaped
    assert "Shown: the 16 largest of 280 weights" in html  # 4 sets of 8 + 8 null, 8 + 8 best, 8 guidance, 10 + 10 x 2


def test_evaluate_reports_every_metric_with_intervals_and_the_sweep(folders, tmp_path) -> None:
    faces = tmp_path / "faces.csv"
    faces.write_text("image,class,age,gender\nr00.png,x,30,female\nr01.png,x,40,male\n", encoding="utf-8")
    out = tmp_path / "eval"
    assert main(["-q", "detect", "evaluate", "--real", str(folders["real"]), "--fake", str(folders["fake_jpeg"]),
                 "--k", "8", "--bootstrap", "50", "--face-records", str(faces), "--out", str(out)]) == 0  # fmt: skip
    ev = json.loads((out / "evaluation.json").read_text())
    for m in ("auroc", "ap", "tpr_at_fpr_1pct", "tpr_at_fpr_5pct"):
        assert 0.0 <= ev[f"{m}_ci"][0] <= ev[m] <= ev[f"{m}_ci"][1] <= 1.0
    assert (ev["n_real"], ev["n_fake"]) == (40, 40) and ev["protocol"].startswith("cross-fitted: 5 stratified folds")
    assert [p["perturbation"] for p in ev["perturbations"]] == ["jpeg q95", "jpeg q75", "jpeg q50", "resize 0.5x",
                                                                "resize 2x", "webp q75"]  # fmt: skip
    assert all("auroc_ci" in p and p["n_real"] == 40 for p in ev["perturbations"])
    assert any("file format" in w for w in ev["warnings"])  # PNG real vs JPEG generated: the known shortcut
    assert {g["group"] for g in ev["fairness"]["groups"]} >= {"perceived female", "perceived male"}


def test_membership_check_scores_training_images_with_the_saved_detector(folders, tmp_path) -> None:
    """``--training``: the generator's training images scored and flagged by the saved detector, recomputed
    here by hand; the real images' flags are the ones in detections.csv."""
    from detectors.detector import ReconstructionDetector
    from detectors.job import build_scorer, load_images
    from detectors.noise_model import load_noise_model

    saved = tmp_path / "det.json"
    real, fake = str(folders["real"]), str(folders["fake"])
    assert main(["-q", "detect", "calibrate", "--real", real, "--fake", fake, "--k", "8", "--out", str(saved)]) == 0
    out = tmp_path / "eval"
    assert main(["-q", "detect", "evaluate", "--real", real, "--fake", fake, "--detector", str(saved),
                 "--training", str(folders["training"]), "--bootstrap", "50", "--out", str(out)]) == 0  # fmt: skip
    member = json.loads((out / "evaluation.json").read_text())["membership"]
    det, meta = ReconstructionDetector.load(saved)
    model = load_noise_model(meta["model"])
    scores = det.decision_function(build_scorer(meta["scorer"], model).features(model, np.stack(
        load_images([str(folders["training"])]).images)))  # fmt: skip
    assert (member["training"]["n"], member["unreadable_training_images"]) == (30, 1)  # empty.png
    assert member["training"]["flagged"] == int((scores >= det.threshold_).sum())
    with (out / "detections.csv").open(encoding="utf-8") as f:
        real_flags = [r["flagged"] == "True" for r in csv.DictReader(f) if Path(r["path"]).name.startswith("r")]
    assert (member["real"]["n"], member["real"]["flagged"]) == (40, sum(real_flags))
    assert 0.0 <= member["auroc_training_vs_real_ci"][0] <= member["auroc_training_vs_real"] <= 1.0
    assert "training images" in (out / "detect-results.html").read_text(encoding="utf-8")
    from audit.cli import build_parser

    args = build_parser().parse_args(["detect", "calibrate", "--real", real, "--fake", fake, "--training", real])
    with pytest.raises(InputError, match="--training belongs to 'detect evaluate'"):
        args.func(args)


def test_shared_images_compares_decoded_pixels_not_bytes_or_names() -> None:
    from detectors.overlap import shared_images

    a = np.arange(16, dtype=np.uint8).reshape(2, 8)
    b = np.zeros((8, 8, 3), dtype=np.uint8)
    # the same 16 bytes as a 8x2 image, and as uint16 pixels: different images
    others = [a.reshape(8, 2), a.astype(np.uint16), b.copy(), a.copy()]
    pairs = shared_images(["a", "b", "c"], [a, b, b + 1], ["t", "u", "v", "w"], others)
    assert pairs == [("a", "w"), ("b", "v")]
    assert shared_images([], [], ["x"], [a]) == []


def test_contradictory_folders_are_refused_before_any_scoring(folders, tmp_path, monkeypatch) -> None:
    """A real digit re-saved losslessly (BMP, new name) in --fake or --training: refused with both names,
    before a single image is scored."""
    from PIL import Image

    import detectors.job as job

    def never(*args, **kwargs):
        raise AssertionError("scored before the overlap was refused")

    monkeypatch.setattr(job, "features", never)
    real = folders["real"]
    fake, training = tmp_path / "fake", tmp_path / "training <'é'>"
    for folder, source in ((fake, folders["fake"]), (training, folders["training"])):
        folder.mkdir()
        for f in sorted(source.glob("*.png"))[:5]:
            (folder / f.name).write_bytes(f.read_bytes())
        Image.open(real / "r07.png").save(folder / "copy of r07.bmp")
    with pytest.raises(InputError, match=r"1 image\(s\) in --real are also in --fake .*r07\.png.*copy of r07\.bmp"):
        job.calibrate([str(real)], [str(fake)], tmp_path / "det.json")
    with pytest.raises(InputError, match="cannot be both real and generated"):
        job.evaluate([str(real)], [str(fake)], tmp_path / "eval")
    (fake / "copy of r07.bmp").unlink()
    with pytest.raises(InputError, match=r"1 image\(s\) in --training are also in --real .*not trained on"):
        job.evaluate([str(real)], [str(fake)], tmp_path / "eval", training=[str(training)])
    assert not (tmp_path / "eval" / "evaluation.json").exists()


def test_inputs_given_twice_or_shared_by_two_generators_are_refused_before_any_scoring(
    folders, tmp_path, monkeypatch
) -> None:
    """The same folder twice (also as DIR/ or through a link), a folder and a file inside it, or one image
    under two generator names would count images twice or put a left-out generator's images in its own
    calibration: each is one error naming both, before any image is scored."""
    import detectors.job as job

    def never(*args, **kwargs):
        raise AssertionError("scored before the repeated input was refused")

    monkeypatch.setattr(job, "features", never)
    real, fake = str(folders["real"]), str(folders["fake"])
    link = tmp_path / "link to fake"
    link.symlink_to(folders["fake"], target_is_directory=True)
    refused = [
        ([real, real + "/"], [fake], r"--real: the same file or folder twice"),
        ([real], [f"a={fake}", f"a={link}"], r"--fake: the same file or folder twice"),
        ([real], [fake, str(link / "f03.png")], r"--fake: a folder and something inside it .*f03\.png"),
    ]
    for reals, fakes, message in refused:
        with pytest.raises(InputError, match=message):
            job.calibrate(reals, fakes, tmp_path / "det.json")
    copy = tmp_path / "copy <b>"
    copy.mkdir()
    for f in sorted(folders["fake"].glob("*.png"))[:3]:
        (copy / f.name).write_bytes(f.read_bytes())  # the same pixels under another generator's name
    shared = r"3 image\(s\) are in two --fake generators .*a: '.*f00\.png' = b: '.*copy <b>/f00\.png'"
    with pytest.raises(InputError, match=shared):
        job.evaluate([real], [f"a={fake}", f"b={copy}"], tmp_path / "eval")
    with pytest.raises(InputError, match=r"the images to check: a folder and something inside it"):
        job.detect([real, str(folders["real"] / "r01.png")], tmp_path / "scan")
    assert not (tmp_path / "det.json").exists() and not (tmp_path / "eval" / "evaluation.json").exists()


def test_a_detector_saved_with_an_older_feature_layout_is_refused(folders, tmp_path, capsys) -> None:
    """Before the class evidence kept every class's error, K = 8 gave 50 features, not 70: a detector
    calibrated then would read the new columns as the old ones. It is refused before anything is scored."""
    from detectors.detector import ReconstructionDetector
    from detectors.noise_model import load_noise_model
    from detectors.scorers import DiffusionLossScorer

    model = load_noise_model("embedded:digits-ddpm")
    scorer = DiffusionLossScorer(k=8, classes=True)
    old = scorer.feature_names(model)[: 8 * 5 + 10]
    rng = np.random.default_rng(0)
    det = ReconstructionDetector().fit(rng.lognormal(size=(40, len(old))), np.repeat([0, 1], 20))
    meta = {"model": "embedded:digits-ddpm", "scorer": scorer.config(), "feature_names": old}
    det_file = det.save(tmp_path / "old.json", meta)
    assert main(["-q", "detect", str(folders["mixed"]), "--detector", str(det_file), "--out", str(tmp_path / "o")]) == 2
    assert main(["-q", "detect", "evaluate", "--real", str(folders["real"]), "--fake", str(folders["fake"]),
                 "--detector", str(det_file), "--out", str(tmp_path / "e")]) == 2  # fmt: skip
    refused = "old.json was calibrated on 50 features, but this version's diffusion-loss scorer gives 70"
    assert capsys.readouterr().err.count(refused) == 2
    assert not (tmp_path / "o" / "detections.csv").exists() and not (tmp_path / "e" / "evaluation.json").exists()


def _save_stand_in_default(
    path: Path,
    layout: list[str],
    rng: np.random.Generator,
    *,
    route: bool = True,
    lossy_share: bool = True,
    enlarged: bool = True,
) -> None:
    """A detector saved at ``path`` as the embedded default is (random weights over ``layout``): the default
    scorer's meta, the calibration size range, JPEG share and (``lossy_share``) share of other lossy files,
    and (``route``) its JPEG route, which (``enlarged``) takes enlarged inputs (else: saved before it did)."""
    from detectors import job
    from detectors.detector import ReconstructionDetector
    from detectors.noise_model import load_noise_model
    from detectors.routing import save_route

    scorer = job.build_scorer(job.DEFAULT_SCORER, load_noise_model(job.DEFAULT_MODEL))
    det = ReconstructionDetector().fit(rng.lognormal(size=(40, len(layout))), np.repeat([0, 1], 20))
    meta = {"model": job.DEFAULT_MODEL, "scorer": scorer.config(), "feature_names": layout,
            "calibration_sides": {"min_side": 8, "max_side": 8}, "jpeg_share": 0.0}  # fmt: skip
    if lossy_share:
        meta["lossy_share"] = 0.0
    if route:
        meta["routes"] = save_route(path, det, meta)
        if not enlarged:
            del meta["routes"]["jpeg"]["takes"]
    det.save(path, meta)


def test_detect_remakes_an_embedded_default_left_by_an_older_version(folders, tmp_path, monkeypatch) -> None:
    """``detect`` without ``--detector`` caches the embedded default in OUT/embedded-default; one cached by
    a version with another feature layout is calibrated again (it was made there), not used and not an error."""
    from detectors import job
    from detectors.noise_model import load_noise_model

    model = load_noise_model(job.DEFAULT_MODEL)
    scorer = job.build_scorer(job.DEFAULT_SCORER, model)
    names = scorer.feature_names(model)
    assert len(names) == 2 * (16 + 16)  # 2 noise sets of K = 16: errors and predicted-noise norms
    # the former default: 4 noise sets of K = 16 with the class evidence
    old = job.build_scorer({"name": "diffusion-loss", "k": 16, "noise_sets": 4, "classes": "auto"}, model)
    old = old.feature_names(model)
    assert len(old) == 4 * (5 * 16 + 10 + 10 * 4)
    rng = np.random.default_rng(0)
    cached = tmp_path / "out" / "embedded-default" / job.DETECTOR_FILE
    cached.parent.mkdir(parents=True)

    def save(layout: list[str], route: bool = True, lossy_share: bool = True, enlarged: bool = True) -> None:
        _save_stand_in_default(cached, layout, rng, route=route, lossy_share=lossy_share, enlarged=enlarged)

    save(old)
    calls = []
    monkeypatch.setattr(job, "run_default", lambda out: (calls.append(Path(out)), save(names)))
    job.detect([str(folders["mixed"])], tmp_path / "out")
    assert calls == [cached.parent]
    with (tmp_path / "out" / job.DETECTIONS_FILE).open(encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 3  # two images scored, the broken one with its reason
    save(names, route=False)  # the layout of now, but saved before the JPEG route: made again too
    job.detect([str(folders["mixed"])], tmp_path / "out")
    assert calls == [cached.parent] * 2 and "routes" in json.loads(cached.read_text())["meta"]
    save(names, lossy_share=False)  # saved before the share of lossy WebPs and AVIFs was recorded: made again
    job.detect([str(folders["mixed"])], tmp_path / "out")
    assert calls == [cached.parent] * 3 and json.loads(cached.read_text())["meta"]["lossy_share"] == 0.0
    save(names, enlarged=False)  # its route saved before the route took enlarged inputs: made again
    job.detect([str(folders["mixed"])], tmp_path / "out")
    assert calls == [cached.parent] * 4
    assert json.loads(cached.read_text())["meta"]["routes"]["jpeg"]["takes"] == ["recompressed", "enlarged"]


def test_a_route_saved_before_enlarged_copies_takes_recompressed_inputs_only(tmp_path) -> None:
    """A detector whose JPEG route was saved before the route took enlarged inputs (no ``takes`` in its entry) sends
    an upscaled PNG to its main detector and warns about its size; saved now, the route takes it, unwarned."""
    from PIL import Image

    from audit.zoo import digits
    from detectors import job
    from detectors.noise_model import load_noise_model

    scan = tmp_path / "scan"
    scan.mkdir()
    digit = Image.fromarray(np.stack([digits.load_split("heldout")[0][0]] * 3, axis=-1))
    digit.save(scan / "q50.jpg", quality=50)
    digit.resize((16, 16), Image.Resampling.BICUBIC).save(scan / "upscaled.png")
    model = load_noise_model(job.DEFAULT_MODEL)
    layout = job.build_scorer(job.DEFAULT_SCORER, model).feature_names(model)
    for enlarged, routes in ((False, {"q50.jpg": "jpeg", "upscaled.png": "main"}),
                             (True, {"q50.jpg": "jpeg", "upscaled.png": "jpeg"})):  # fmt: skip
        saved = tmp_path / f"det-{enlarged}" / job.DETECTOR_FILE
        saved.parent.mkdir()
        _save_stand_in_default(saved, layout, np.random.default_rng(0), enlarged=enlarged)
        out = tmp_path / f"out-{enlarged}"
        data = json.loads(Path(job.detect([str(scan)], out, detector_file=saved, progress=False)).read_text())["data"]
        with (out / job.DETECTIONS_FILE).open(newline="", encoding="utf-8") as fh:
            assert {Path(r["path"]).name: r["route"] for r in csv.DictReader(fh)} == routes
        size_warnings = [w for w in data["warnings"] if "have a side outside" in w]
        (note,) = [n for n in data["notes"] if "JPEG route" in n]
        if enlarged:
            assert not size_warnings and "calibrated on JPEG or enlarged copies" in note and "larger images" in note
        else:
            assert len(size_warnings) == 1 and size_warnings[0].startswith("1 of 2 scanned images")
            assert "calibrated on JPEG copies" in note and "larger images" not in note


def test_the_embedded_default_is_calibrated_once_per_machine(folders, tmp_path, monkeypatch, caplog) -> None:
    """Without ``--detector`` a second output folder copies in the embedded default the first one made (kept in
    $GENAUDIT_CACHE_DIR) instead of calibrating it again, and scores the same; a kept copy that fails its
    checks is calibrated again and replaced."""
    import logging

    from detectors import job
    from detectors.kept_default import kept_folder
    from detectors.noise_model import load_noise_model

    monkeypatch.setenv("GENAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    model = load_noise_model(job.DEFAULT_MODEL)
    scorer = job.build_scorer(job.DEFAULT_SCORER, model)
    names = scorer.feature_names(model)
    calls: list[Path] = []

    def calibrate(out: Path) -> None:  # a stand-in for run_default: a saved detector and a card beside it
        calls.append(Path(out))
        _save_stand_in_default(Path(out) / job.DETECTOR_FILE, names, np.random.default_rng(len(calls)))
        (Path(out) / "detect-results.json").write_text("{}")

    monkeypatch.setattr(job, "run_default", calibrate)

    def rows(out: Path) -> list[dict]:
        with (out / job.DETECTIONS_FILE).open(encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    job.detect([str(folders["mixed"])], tmp_path / "a")
    assert calls == [tmp_path / "a" / "embedded-default"]
    kept = kept_folder()
    assert kept is not None and sorted(p.name for p in kept.iterdir()) == sorted(
        p.name for p in (tmp_path / "a" / "embedded-default").iterdir()
    )
    job.detect([str(folders["mixed"])], tmp_path / "b")
    assert len(calls) == 1  # copied in, not calibrated
    made = tmp_path / "a" / "embedded-default" / job.DETECTOR_FILE
    assert (tmp_path / "b" / "embedded-default" / job.DETECTOR_FILE).read_bytes() == made.read_bytes()
    assert (tmp_path / "b" / "embedded-default" / "detect-results.json").is_file()  # its card came along
    assert rows(tmp_path / "b") == rows(tmp_path / "a") and len(rows(tmp_path / "a")) == 3
    (kept / job.DETECTOR_FILE).write_text((kept / job.DETECTOR_FILE).read_text().replace('"C_chosen"', '"C"', 1))
    with caplog.at_level(logging.WARNING, logger="detectors.kept_default"):
        job.detect([str(folders["mixed"])], tmp_path / "c")
    assert "is unusable" in caplog.text and calls[1:] == [tmp_path / "c" / "embedded-default"]
    assert (kept / job.DETECTOR_FILE).read_bytes() == (
        tmp_path / "c" / "embedded-default" / job.DETECTOR_FILE
    ).read_bytes()
    monkeypatch.setenv("GENAUDIT_CACHE_DIR", "off")
    assert kept_folder() is None


def test_a_scan_of_recompressed_jpegs_warns_when_the_detector_met_none(folders, tmp_path) -> None:
    """JPEGs below quality 90 (read from their quantisation tables) scored by a detector calibrated on none
    get a warning with their count; a detector that met such images (or was augmented) gets none, and neither
    do PNGs or q95 JPEGs."""
    from PIL import Image

    from detectors import job
    from detectors.detector import ReconstructionDetector
    from detectors.noise_model import load_noise_model
    from detectors.recompression import recompressed_share, recompression_warning

    model = load_noise_model(job.DEFAULT_MODEL)
    scorer = job.build_scorer(job.DEFAULT_SCORER, model)
    names = scorer.feature_names(model)
    rng = np.random.default_rng(0)
    det = ReconstructionDetector().fit(rng.lognormal(size=(40, len(names))), np.repeat([0, 1], 20))
    # calibrated on some high-quality JPEGs (jpeg_share): only the recompressed ones are in question here
    saved = {"model": job.DEFAULT_MODEL, "scorer": scorer.config(), "feature_names": names, "jpeg_share": 0.5}
    det.save(tmp_path / "plain" / job.DETECTOR_FILE, {**saved, "recompressed_share": 0.0, "augment": None})
    det.save(tmp_path / "met" / job.DETECTOR_FILE, {**saved, "recompressed_share": 0.25, "augment": None})
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    pngs = sorted((folders["fake"]).glob("*.png"))[:5]
    for i, png in enumerate(pngs):
        Image.open(png).save(inputs / f"{i}.jpg", quality=(70, 40, 89, 95, 100)[i])  # three below 90
    Image.open(pngs[0]).save(inputs / "5.png")

    def warnings(detector: str, source: Path) -> list[str]:
        out = tmp_path / f"out-{detector}-{source.name}"
        path = job.detect([str(source)], out, detector_file=tmp_path / detector / job.DETECTOR_FILE, progress=False)
        return json.loads(Path(path).read_text())["data"]["warnings"]

    (warning,) = warnings("plain", inputs)
    assert warning.startswith("3 of 6 scanned images are JPEGs re-encoded below quality 90")
    assert warnings("met", inputs) == [] and warnings("plain", folders["fake_jpeg"]) == []  # q95 only
    assert recompression_warning(3, 6, {"augment": {"copies": 1}}) is None
    assert recompression_warning(3, 6, {}) is not None  # saved before the share was recorded: none met
    assert recompressed_share([{"jpeg_quality": 75}, {"jpeg_quality": 95}, {"format": "PNG"}, {}]) == 0.25


def test_detect_subcommands_refuse_missing_inputs(tmp_path) -> None:
    from audit.cli import build_parser

    with pytest.raises(InputError, match="evaluate needs --real DIR and --fake DIR"):
        args = build_parser().parse_args(["detect", "evaluate", "--real", str(tmp_path)])
        args.func(args)
    with pytest.raises(InputError, match="calibrate needs --real DIR"):  # --fake alone: no real images to model
        args = build_parser().parse_args(["detect", "calibrate", "--fake", str(tmp_path)])
        args.func(args)
    (tmp_path / "empty").mkdir()
    assert main(["-q", "detect", "evaluate", "--real", str(tmp_path / "empty"), "--fake", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "o")]) == 2  # fmt: skip


def test_pixel_and_latent_diffusers_models_through_the_benchmark_loader(tmp_path) -> None:
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    from detectors.noise_model import load_noise_model
    from detectors.scorers import AutoencoderScorer, DiffusionLossScorer, InversionScorer
    from tests.diffusers_fixtures import save_tiny_sd

    torch.manual_seed(0)
    blocks = {"down_block_types": ("DownBlock2D",) * 2, "up_block_types": ("UpBlock2D",) * 2}
    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(16, 32),
                       layers_per_block=1, norm_num_groups=8, **blocks)  # fmt: skip
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=100)).save_pretrained(tmp_path / "ddpm")
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3)).astype(np.uint8)
    pixel = load_noise_model(f"diffusers:{tmp_path / 'ddpm'}")
    assert not pixel.latent and len(pixel.alphas_cumprod) == 100
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        np.testing.assert_array_equal(
            pixel.eps(x, torch.tensor([3, 50])).numpy(), unet(x, torch.tensor([3, 50])).sample.numpy()
        )
    assert pixel.num_classes == 0
    with pytest.raises(InputError, match="not class-conditional"):
        pixel.eps(x, torch.tensor([3, 50]), torch.tensor([0, 1]))
    assert DiffusionLossScorer(k=4).features(pixel, images).shape == (3, 8)
    with pytest.raises(InputError, match="no autoencoder"):
        AutoencoderScorer().features(pixel, images)

    latent = load_noise_model(f"diffusers:{save_tiny_sd(tmp_path / 'sd')}")
    assert latent.latent and latent.encode(images).shape == (3, 4, 16, 16)
    for scorer, width in ((DiffusionLossScorer(k=2), 4), (InversionScorer(steps=2), 1), (AutoencoderScorer(), 1)):
        feats = scorer.features(latent, images)
        assert feats.shape == (3, width) and np.all(np.isfinite(feats))
    with pytest.raises(InputError, match="unknown model"):
        load_noise_model("stable-diffusion")


def test_fairness_from_the_audit_face_pipeline_on_real_photos(folders, tmp_path) -> None:
    """Real photos with known faces against generated digits: the audit's default backend finds the faces
    and the FPR on the real photos is broken down by perceived gender and age band."""
    import shutil

    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    from audit.dataset.package_images import insightface_image

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(insightface_image("t1.jpg"), photos / "t1.jpg")
    Image.fromarray(data.astronaut()).save(photos / "astronaut.png")
    Image.fromarray(data.coffee()).save(photos / "coffee.png")
    shutil.copy(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), photos / "hopper.jpg")
    out = tmp_path / "fair"
    assert main(["-q", "detect", "evaluate", "--real", str(photos), "--fake", str(folders["fake"]), "--k", "4",
                 "--bootstrap", "20", "--face-backend", "dlib-agegender", "--out", str(out)]) == 0  # fmt: skip
    fair = json.loads((out / "evaluation.json").read_text())["fairness"]
    assert fair["real_images_with_faces"] == 3 and fair["overall"]["real_images"] == 4  # coffee has no face
    groups = {g["group"]: g for g in fair["groups"]}
    # t1 has 4 perceived women and 2 men, the astronaut is a woman, Grace Hopper is perceived male
    assert groups["perceived female"]["real_images"] == 2 and groups["perceived male"]["real_images"] == 2
    assert fair["faces_from"] == "face backend dlib-agegender"
    with pytest.raises(InputError, match="no calibrated detector yet"):
        from audit.cli import build_parser

        args = build_parser().parse_args(["detect", str(photos), "--model", "diffusers:/nowhere"])
        args.func(args)


def test_dit_model_predicts_noise_with_its_null_class(tmp_path) -> None:
    import torch

    from detectors.noise_model import load_noise_model
    from tests.diffusers_fixtures import save_tiny_dit

    model = load_noise_model(f"diffusers:{save_tiny_dit(tmp_path / 'dit')}")
    images = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3)).astype(np.uint8)
    x0 = model.encode(images)
    net = model._net
    t = torch.tensor([5, 400])
    with torch.no_grad():
        null = torch.full((2,), int(net.config.num_embeds_ada_norm))
        expected = net(x0, timestep=t, class_labels=null).sample[:, : x0.shape[1]]
        np.testing.assert_array_equal(model.eps(x0, t).numpy(), expected.numpy())
        labels = torch.tensor([1, 0])
        expected = net(x0, timestep=t, class_labels=labels).sample[:, : x0.shape[1]]
        np.testing.assert_array_equal(model.eps(x0, t, labels).numpy(), expected.numpy())
    assert model.latent and model.decode(x0).shape[0] == 2
    # 1000 classes: "auto" leaves the class evidence off (1000 forwards per search timestep); "on" is allowed
    from detectors.job import build_scorer

    assert model.num_classes == 1000
    assert build_scorer({"name": "diffusion-loss", "k": 2, "classes": "auto"}, model).classes is False
    assert build_scorer({"name": "diffusion-loss", "k": 2, "classes": True}, model).nfe_per_image(model) == 2 + 1000 + 2


@pytest.mark.slow
def test_demo_detection_beats_the_inversion_baseline_and_keeps_its_fpr(demo_site) -> None:
    """The demo's deepfake check (builtin:digits-mixed: the DDPM's five schedules, the GAN and the Gaussian
    mixture), cross-fitted over 5 folds stratified by source with the DDPM's siblings in one fold, default
    scorer (2 noise sets of K = 16, 32 network evaluations), one model per source, with the real reference:
    measured 0.875 [0.854, 0.894] (two-class alone 0.876), inversion 0.589 on the sweep's quarter
    (2026-12-06)."""
    doc = json.loads((demo_site / "detect" / "detect-results.json").read_text())
    ev, data = doc["data"]["evaluation"], doc["data"]
    assert (ev["n_real"], ev["n_fake"]) == (297, 1050) and ev["protocol"].startswith("cross-fitted: 5 folds")
    assert ev["auroc"] >= 0.86 and ev["auroc"] > ev["baseline"]["auroc"] + 0.2
    assert (ev["baseline"]["n_real"], ev["baseline"]["n_fake"]) == (74, 259)  # the sweep's quarter
    # every image is in detections.csv, flagged by the fold detector that scored it; 5% target FPR on the reals
    with open(demo_site / "detect" / "detections.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 297 + 1050
    real_flags = [r["flagged"] == "True" for r in rows if r["path"].startswith("real/")]
    assert len(real_flags) == 297 and sum(real_flags) <= 0.1 * 297
    assert [c["nfe_per_image"] for c in data["costs"]] == [32, 40]  # at most the DIRE-style baseline's cost
    assert data["scorer"]["classes"] is False and data["scorer"]["noise_sets"] == 2
    assert len(data["direction"]) == 7 * 2 * (16 + 16) and data["mode"] == "combined"  # 7 sources, one model each
    assert {d["generator"] for d in data["direction"]} == {s["source"] for s in ev["per_source"]}
    assert [s["source"] for s in ev["per_source"]][-2:] == ["gan", "mixture"] and len(ev["per_source"]) == 7
    assert len(ev["perturbations"]) == 6
    assert all((p["n_real"], p["n_fake"]) == (74, 259) for p in ev["perturbations"])  # a quarter of every source
    # the JPEG route: JPEG q75 and q50 scored by fold detectors calibrated on JPEG or enlarged copies lose far less
    # (benchmarks/size_aware_probe.py, RESULTS.md); a WebP q75 and a 2x enlargement go there too; q95 and a 0.5x
    # resize are not routed
    jpeg = {p["perturbation"]: p for p in ev["perturbations"]}
    assert {q: p["routed"]["route"] for q, p in jpeg.items()} == {
        "jpeg q95": "main",
        "jpeg q75": "jpeg",
        "jpeg q50": "jpeg",
        "resize 0.5x": "main",
        "resize 2x": "jpeg",
        "webp q75": "jpeg",
    }
    for q in ("jpeg q75", "jpeg q50"):
        assert jpeg[q]["routed"]["auroc"] > jpeg[q]["auroc"] + 0.05
    # at the detector's own threshold (5% FPR on clean real digits: 4.4% flagged here) a JPEG q75 or q50, WebP
    # q75 or 2x-enlarged real digit is always flagged by the main detector alone (measured 100%), almost never by
    # the route (0%, 1.4%, 0%, 1.4%)
    assert ev["flagged_real"] <= 0.1 and jpeg["jpeg q95"]["flagged_real"] > ev["flagged_real"]
    for q in ("jpeg q75", "jpeg q50", "webp q75", "resize 2x"):  # WebP q75 on all 1,347 images: 98.3% and 1.0%
        assert jpeg[q]["flagged_real"] >= 0.9 and jpeg[q]["routed"]["flagged_real"] <= 0.1
    assert ev["jpeg_route"]["copies"]["jpeg"]["quality"] == [30, 95] and "compare" not in ev
    saved = json.loads((demo_site / "detect" / "detector.json").read_text())["meta"]["routes"]["jpeg"]
    assert json.loads((demo_site / "detect" / saved["file"]).read_text())["sha256"] == saved["sha256"]
    assert data["routes"]["jpeg"]["sha256"] == saved["sha256"]
    # each family left out of calibration in turn: one model per generator catches the GAN left out (0.900
    # two-class alone, 0.917 combined; a pooled model gave 0.622 and 0.820), and the real reference costs no
    # family it was calibrated on more than 0.01
    held = {h["source"].split(" ")[0]: h for h in ev["held_out_generators"]}
    assert sorted(held) == ["adversarial", "diffusion", "statistical"]
    assert all(len(h["calibrated_on"]) == 2 and h["real_flagged"] <= 0.1 for h in held.values())
    assert all(h["auroc_ci"][0] <= h["auroc"] <= h["auroc_ci"][1] for h in held.values())
    assert all(h["seen"]["auroc"] >= h["seen_two_class"]["auroc"] - 0.01 for h in held.values())
    assert held["adversarial"]["two_class"]["auroc"] >= 0.85 and held["adversarial"]["auroc"] >= 0.88
    assert held["statistical"]["auroc"] >= 0.9 and held["statistical"]["seen"]["auroc"] >= 0.9
    assert held["adversarial"]["seen"]["n_fake"] == 150 and held["diffusion"]["n_fake"] == 750
    card = next(p for p in (demo_site / "cards").glob("*.html") if p.name.startswith("detect-"))
    html = card.read_text(encoding="utf-8")
    assert "AUROC left out" in html and "real reference alone" in html and "AUROC, routed" in html
    assert "flagged at its threshold: real / generated" in html
    # the generator's own training digits look generated: 34 of 300 flagged (11%) against 13 of 297
    # (4.4%) held-out reals
    member = ev["membership"]
    assert (member["training"]["n"], member["real"]["n"]) == (300, 297)
    assert member["real"]["flagged"] == sum(real_flags)
    assert member["training"]["rate_ci"][0] > member["real"]["rate_ci"][1]
    assert member["auroc_training_vs_real"] > 0.7
    assert "own training images" in card.read_text(encoding="utf-8")
