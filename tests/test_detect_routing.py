"""The JPEG route (``--route-jpeg``): recompressed and enlarged inputs scored by a detector calibrated on JPEG and
enlarged copies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from audit.errors import InputError, WeightsError

SMALL = {"name": "diffusion-loss", "k": 4, "noise_sets": 1, "classes": False}  # 4 evaluations an image


def _embedded_samples(seeds: range, scale: float) -> np.ndarray:
    """The embedded DDPM's samples of ``seeds`` (digit ``i mod 10`` for the i-th) at static guidance ``scale``."""
    from audit.generators.base import GenerationRequest
    from audit.generators.embedded import EmbeddedDigitsGenerator
    from audit.guidance import get_schedule

    request = GenerationRequest(seeds=tuple(seeds), schedule=get_schedule("static", scale), steps=25,
                                labels=tuple(i % 10 for i in range(len(seeds))))  # fmt: skip
    return EmbeddedDigitsGenerator().generate(request).images


def _folders(root: Path, *names: str) -> dict[str, Path]:
    """Empty folders ``root/NAME``, by name."""
    out = {name: root / name for name in names}
    for folder in out.values():
        folder.mkdir()
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """30 held-out real digits and 30 of the embedded model's samples as PNG; a scan folder of 4 samples as
    JPEG q50 (routed), 2 as JPEG q95 and 2 as PNG (not routed)."""
    from PIL import Image

    from audit.zoo import digits

    real, _ = digits.load_split("heldout")
    fake = _embedded_samples(range(700, 738), 1.0)
    out = _folders(tmp_path_factory.mktemp("routing"), "real", "fake", "scan")
    for i in range(30):
        Image.fromarray(real[i]).convert("RGB").save(out["real"] / f"r{i:02d}.png")
        Image.fromarray(fake[i]).save(out["fake"] / f"f{i:02d}.png")
    for j, (suffix, quality) in enumerate([("jpg", 50)] * 4 + [("jpg", 95)] * 2 + [("png", None)] * 2):
        kwargs = {"quality": quality} if quality else {}
        Image.fromarray(fake[30 + j]).save(out["scan"] / f"s{j}.{suffix}", **kwargs)
    return out


@pytest.fixture(scope="module")
def routed(folders, tmp_path_factory) -> Path:
    from detectors import job

    target = tmp_path_factory.mktemp("routed") / "det"
    target.mkdir()
    return job.calibrate([str(folders["real"])], [str(folders["fake"])], target, scorer_config=SMALL,
                         route_jpeg=True)  # fmt: skip


def test_calibrate_saves_the_route_beside_the_detector_and_names_it_by_hash(routed) -> None:
    from detectors.detector import ReconstructionDetector
    from detectors.routing import copies_record

    main = json.loads(routed.read_text())
    route_file = routed.with_name("detector.jpeg.json")
    route = json.loads(route_file.read_text())
    entry = main["meta"]["routes"]["jpeg"]
    assert entry == {
        "file": "detector.jpeg.json",
        "sha256": route["sha256"],
        "below_quality": 90,
        "takes": ["recompressed", "enlarged"],
    }
    assert route["meta"]["route"] == "jpeg" and route["meta"]["copies"] == copies_record()
    assert route["meta"]["calibrated_on"] == main["meta"]["calibrated_on"]  # the same images, as JPEG copies
    # its own cross-fitted AUROC (weak here: 4 evaluations an image, 60 JPEG copies), not the main detector's
    assert 0.0 <= route["meta"]["cross_fitted_auroc"] <= 1.0
    assert route["meta"]["cross_fitted_auroc"] != main["meta"]["cross_fitted_auroc"]
    assert routed.with_name("detector.jpeg.safetensors").is_file()
    det, _ = ReconstructionDetector.load(route_file)
    assert det.threshold_ == route["threshold"] != main["threshold"]


def test_route_copies_are_jpegs_or_enlargements_made_the_same_whatever_the_order() -> None:
    """Copy i is an enlargement (1.1-2x: 9 to 16 px from an 8 px digit) where copy_enlarges(i) says so, else a
    JPEG of the same size; made again alone, or in another subset, it is the same array."""
    from audit.zoo import digits
    from detectors.routing import RouteCopies, copy_enlarges, route_copy

    images = [np.repeat(im[..., None], 3, axis=2) for im in digits.load_split("heldout")[0][:12]]
    view = RouteCopies(images)
    one_by_one = [view[i] for i in range(12)]
    assert len(view) == 12 and all(np.array_equal(a, b) for a, b in zip(view[:], one_by_one, strict=True))
    enlarged = [copy_enlarges(i) for i in range(12)]
    assert set(enlarged) == {True, False}  # both kinds among these twelve
    for i, copy in enumerate(one_by_one):
        if enlarged[i]:
            assert 9 <= copy.shape[0] == copy.shape[1] <= 16
        else:  # a decoded JPEG: encoding it again at its quality range's ends changes it little, but it is one
            assert copy.shape == images[i].shape and not np.array_equal(copy, images[i])
    assert np.array_equal(route_copy(images[4], 4), view[4])
    assert np.array_equal(RouteCopies(images, rows=[7, 4])[1], view[4])


def test_a_scan_sends_recompressed_jpegs_to_the_route_and_the_rest_to_the_main(folders, routed, tmp_path) -> None:
    from detectors import job

    out = tmp_path / "out"
    path = job.detect([str(folders["scan"])], out, detector_file=routed, progress=False)
    with (out / job.DETECTIONS_FILE).open(newline="", encoding="utf-8") as fh:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    assert {n: r["route"] for n, r in rows.items()} == {
        **{f"s{j}.jpg": "jpeg" for j in range(4)}, "s4.jpg": "main", "s5.jpg": "main", "s6.png": "main",
        "s7.png": "main"}  # fmt: skip
    det, _, model, scorer = job._saved(routed)
    loaded = job.load_images([str(folders["scan"])])
    feats, _ = job.features(model, scorer, loaded.images)
    by_name = dict(zip((Path(n).name for n in loaded.names), feats, strict=True))
    for name, row in rows.items():  # each by its own route's decision, threshold and calibration
        which = det.routes["jpeg"] if row["route"] == "jpeg" else det.main
        decision = float(which.decision_function(by_name[name][None])[0])
        assert float(row["score"]) == pytest.approx(decision, abs=1e-6)
        assert float(row["p_synthetic"]) == pytest.approx(float(which.probability(np.array([decision]))[0]), abs=1e-6)
        assert (row["flagged"] == "True") == (decision >= which.threshold_)
    doc = json.loads(Path(path).read_text())
    # the q50 JPEGs were routed, not warned about; the two q95 ones go to the main detector, which met no JPEG
    (warning,) = doc["data"]["warnings"]
    assert warning.startswith("2 of 8 scanned images are JPEGs of quality 90 or more, and this detector was")
    (note,) = [n for n in doc["data"]["notes"] if "JPEG route" in n]
    assert note.startswith("4 of 8 images were scored, thresholded and given p_synthetic by the detector's JPEG route")
    assert "JPEGs re-encoded below quality 90" in note and "of them (not recompressed)" not in note
    route = doc["data"]["routes"]["jpeg"]
    assert (route["below_quality"], route["webp_below_quality"]) == (90, 80)
    assert doc["data"]["routes"]["jpeg"]["threshold"] == det.routes["jpeg"].threshold_


def test_a_scan_routes_low_quality_webps_and_warns_about_other_lossy_files(folders, routed, tmp_path) -> None:
    """A lossy WebP below quality 80 goes to the JPEG route (it holds its threshold there:
    benchmarks/lossy_codec_probe.py); a q95 WebP and an AVIF go to the main detector with a warning, as this
    detector met no such file; a lossless WebP is scored as a PNG is, without one."""
    from PIL import Image, features

    from detectors import job

    scan = tmp_path / "lossy"
    scan.mkdir()
    pngs = sorted(folders["fake"].glob("*.png"))
    Image.open(pngs[0]).save(scan / "low.webp", quality=50)
    Image.open(pngs[1]).save(scan / "high.webp", quality=95)
    Image.open(pngs[2]).save(scan / "lossless.webp", lossless=True)
    expected = {"low.webp": "jpeg", "high.webp": "main", "lossless.webp": "main"}
    if features.check("avif"):
        Image.open(pngs[3]).save(scan / "photo.avif", quality=75)
        expected["photo.avif"] = "main"
    out = tmp_path / "out"
    path = job.detect([str(scan)], out, detector_file=routed, progress=False)
    with (out / job.DETECTIONS_FILE).open(newline="", encoding="utf-8") as fh:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    assert {name: r["route"] for name, r in rows.items()} == expected
    assert {name: r["caveat"] for name, r in rows.items()} == {  # the warned files: the q95 WebP and the AVIF
        name: "unseen_lossy" if name in ("high.webp", "photo.avif") else "" for name in expected}  # fmt: skip
    data = json.loads(Path(path).read_text())["data"]
    unrouted, n = len(expected) - 2, len(expected)
    (warning,) = data["warnings"]
    assert warning.startswith(f"{unrouted} of {n} scanned images are AVIFs or lossy WebPs of quality 80 or more")
    assert any(note.startswith(f"1 of {n} images were scored, thresholded and given p_synthetic by the detector's JPEG")
               and "lossy WebPs below quality 80" in note for note in data["notes"])  # fmt: skip


def test_lossy_files_are_warned_about_only_when_the_detector_met_none() -> None:
    from detectors.recompression import lossy_not_routed, lossy_share, recompressed, unseen_lossy_warning

    metas = [{"format": "WEBP", "webp_quality": 79}, {"format": "WEBP", "webp_quality": 80},
             {"format": "WEBP", "webp_quality": None}, {"format": "AVIF"},
             {"format": "JPEG", "jpeg_quality": 75}]  # fmt: skip
    assert [recompressed(m) for m in metas] == [True, False, False, False, True]
    assert [lossy_not_routed(m) for m in metas] == [False, True, False, True, False]
    assert lossy_share(metas) == 0.6 and lossy_share([]) == 0.0  # lossy WebPs of any quality and AVIFs
    assert unseen_lossy_warning(2, 5, {"lossy_share": 0.0}).startswith("2 of 5 scanned images are AVIFs or lossy")
    assert unseen_lossy_warning(2, 5, {"lossy_share": 0.2}) is None  # calibrated on some
    assert unseen_lossy_warning(0, 5, {"lossy_share": 0.0}) is None and unseen_lossy_warning(0, 5, {}) is None
    # saved before the share was recorded: it may not have met them, and the warning says it does not know
    older = unseen_lossy_warning(2, 5, {})
    assert older.startswith("2 of 5 scanned images are AVIFs") and "does not record whether" in older


def test_a_route_file_swapped_or_missing_is_refused(routed, tmp_path) -> None:
    import shutil

    from detectors import job

    copy = tmp_path / "copy"
    shutil.copytree(routed.parent, copy)
    route = copy / "detector.jpeg.json"
    doc = json.loads(route.read_text())
    doc["threshold"] += 1.0  # a valid detector of its own, but not the one the main detector was saved with
    from detectors.detector import _document_sha256

    doc["sha256"] = _document_sha256(doc)
    route.write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match=r"is not the JPEG route detector\.json was saved with"):
        job._saved(copy)
    route.unlink()
    with pytest.raises(WeightsError, match="cannot read detector"):
        job._saved(copy)
    main = json.loads((copy / "detector.json").read_text())
    for entry in ({"sha256": "0" * 64}, {"file": "..", "sha256": "0" * 64}):  # forged, hash and all: one clear line
        main["meta"]["routes"]["jpeg"] = entry
        main["sha256"] = _document_sha256(main)
        (copy / "detector.json").write_text(json.dumps(main))
        with pytest.raises(WeightsError, match="its JPEG route entry is unusable"):
            job._saved(copy)


def test_calibrate_refuses_a_route_target_that_is_not_a_detector(folders, tmp_path) -> None:
    from detectors import job

    (tmp_path / "det.jpeg.json").write_text('{"my": "notes"}')
    with pytest.raises(InputError, match=r"saves the route at .*det\.jpeg\.json, which exists and is not"):
        job.calibrate([str(folders["real"])], [str(folders["fake"])], tmp_path / "det.json", scorer_config=SMALL,
                      route_jpeg=True)  # fmt: skip
    assert (tmp_path / "det.jpeg.json").read_text() == '{"my": "notes"}' and not (tmp_path / "det.json").exists()


class _Scaled:
    """A stand-in fold detector: decision ``scale * x``, probability ``decision / 100``."""

    def __init__(self, scale: float, threshold: float) -> None:
        self.scale, self.threshold_ = scale, threshold

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return self.scale * x[:, 0]

    def probability(self, d: np.ndarray) -> np.ndarray:
        return d / 100


def test_routed_decide_takes_each_row_from_its_routes_detector() -> None:
    """Worked by hand: the main detector decides x, the route 10x; thresholds 0.5 and 5."""
    from detectors.routing import Routed

    x = np.array([[1.0], [0.4], [0.4], [0.3]])
    jpeg = np.array([False, False, True, True])
    decisions, probs, flags = Routed(_Scaled(1, 0.5), {"jpeg": _Scaled(10, 5)}).decide(x, jpeg)
    assert decisions.tolist() == [1.0, 0.4, 4.0, 3.0] and probs.tolist() == [0.01, 0.004, 0.04, 0.03]
    assert flags.tolist() == [True, False, False, False]
    plain = Routed(_Scaled(1, 0.5))  # no route: every row the main detector's
    assert plain.decide(x, jpeg)[0].tolist() == [1.0, 0.4, 0.4, 0.3] and plain.threshold_ == 0.5


def test_a_route_takes_larger_inputs_only_when_saved_with_enlarged_copies() -> None:
    """Worked by hand: rows 0-3 recompressed / larger / both / neither. A route whose entry names ``enlarged`` in
    ``takes`` takes the larger rows too; one saved before (no ``takes``) the recompressed ones only."""
    from detectors.routing import Routed, takes_enlarged

    recompressed, larger = np.array([True, False, True, False]), np.array([False, True, True, False])
    now = {"routes": {"jpeg": {"file": "d.jpeg.json", "takes": ["recompressed", "enlarged"]}}}
    before = {"routes": {"jpeg": {"file": "d.jpeg.json", "below_quality": 90}}}
    assert takes_enlarged(now) and not takes_enlarged(before) and not takes_enlarged({})
    x = np.array([[1.0], [0.4], [0.4], [0.3]])
    for meta, names in ((now, ["jpeg", "jpeg", "jpeg", "main"]), (before, ["jpeg", "main", "jpeg", "main"])):
        routed = Routed(_Scaled(1, 0.5), {"jpeg": _Scaled(10, 5)}, takes_enlarged=takes_enlarged(meta))
        assert routed.route_of(recompressed, larger).tolist() == names
        scaled = [10 * v if n == "jpeg" else v for v, n in zip(x[:, 0], names, strict=True)]
        assert routed.decide(x, recompressed, larger)[0].tolist() == pytest.approx(scaled)
    assert Routed(_Scaled(1, 0.5), takes_enlarged=True).route_of(recompressed, larger).tolist() == ["main"] * 4


def test_evaluate_routes_the_sweeps_low_quality_jpegs(folders, tmp_path) -> None:
    from detectors import job

    path = job.evaluate([str(folders["real"])], [str(folders["fake"])], tmp_path / "ev", scorer_config=SMALL,
                        draws=50, route_jpeg=True, progress=False)  # fmt: skip
    ev = json.loads(Path(path).read_text())["data"]["evaluation"]
    assert ev["jpeg_route"]["routed_inputs"] == 0  # PNG inputs: the clean row is the main detector's
    routes = {p["perturbation"]: p["routed"]["route"] for p in ev["perturbations"]}
    assert routes == {"jpeg q95": "main", "jpeg q75": "jpeg", "jpeg q50": "jpeg", "resize 0.5x": "main",
                      "resize 2x": "jpeg", "webp q75": "jpeg"}  # fmt: skip
    n = ev["n_real"] + ev["n_fake"]  # every digit enlarged 2x is larger than the 8 px calibration images
    assert {p["perturbation"]: p["routed"]["routed_images"] for p in ev["perturbations"]} == {
        "jpeg q95": 0, "jpeg q75": n, "jpeg q50": n, "resize 0.5x": 0, "resize 2x": n, "webp q75": n}  # fmt: skip
    for p in ev["perturbations"]:
        if p["routed"]["route"] == "main":  # the same scores: the same metrics
            assert (p["routed"]["auroc"], p["routed"]["auroc_ci"]) == (p["auroc"], p["auroc_ci"])


def test_routed_cross_fit_decides_routed_rows_on_their_own_features_by_the_fold_that_left_them_out() -> None:
    """Worked by hand. The route's own cross-fitted decisions (7) are those of what it was calibrated on (JPEG
    copies); a routed row is the input itself, so it is decided again on its features by the route's fold
    detector that left it out (fold 1: 10x, threshold 5; fold 2: 100x, threshold 50)."""
    from detectors.job import CrossFitted, routed_cross_fit

    halves = [(np.array([0, 1]), None), (np.array([2, 3]), None)]
    a = CrossFitted(np.zeros(4), np.zeros(4), np.zeros(4, dtype=int), halves)
    b = CrossFitted(np.ones(4), np.ones(4), np.ones(4), [(np.array([0, 2]), None), (np.array([1, 3]), None)])
    feats = np.array([[0.4], [0.2], [0.6], [0.3]])
    with pytest.raises(AssertionError, match="other folds"):
        routed_cross_fit(a, b, np.ones(4, dtype=bool), feats)
    folds = [(np.array([0, 1]), _Scaled(10, 5)), (np.array([2, 3]), _Scaled(100, 50))]
    route = CrossFitted(np.full(4, 7.0), np.full(4, 0.07), np.ones(4, dtype=int), folds)
    taken = routed_cross_fit(a, route, np.array([True, False, True, False]), feats)
    assert taken.decisions.tolist() == [4.0, 0, 60.0, 0] and taken.probs.tolist() == [0.04, 0, 0.6, 0]
    assert taken.flags.tolist() == [0, 0, 1, 0] and taken.fold_models is a.fold_models
    assert routed_cross_fit(a, route, np.zeros(4, dtype=bool), feats) is a  # nothing routed: the main detector


def test_the_cli_keeps_route_jpeg_to_calibration(tmp_path) -> None:
    from audit.cli import build_parser
    from detectors.cli import _cmd_detect

    args = build_parser().parse_args(["detect", str(tmp_path), "--route-jpeg"])
    with pytest.raises(InputError, match="--route-jpeg calibrates"):
        _cmd_detect(args)


def test_evaluate_with_a_routed_detector_routes_recompressed_training_images(
    folders, routed, tmp_path, monkeypatch
) -> None:
    """The membership check compares training images with real ones scored the same way: a recompressed JPEG
    among the training images goes to the route, as it would among the real images."""
    from detectors import job, routing

    monkeypatch.setattr(routing, "copies_record", lambda: {"recipe": "this version's, not the saved route's"})

    path = job.evaluate([str(folders["real"])], [str(folders["fake"])], tmp_path / "ev", detector_file=routed,
                        training=[str(folders["scan"])], draws=20, progress=False)  # fmt: skip
    ev = json.loads(Path(path).read_text())["data"]["evaluation"]
    det, _, model, scorer = job._saved(routed)
    loaded = job.load_images([str(folders["scan"])])
    feats, _ = job.features(model, scorer, loaded.images)
    jpeg = np.array([Path(n).name in {f"s{j}.jpg" for j in range(4)} for n in loaded.names])
    flagged = det.decide(feats, jpeg)[2]
    assert jpeg.sum() == 4 and ev["membership"]["training"]["n"] == 8
    assert ev["membership"]["training"]["flagged"] == int(flagged.sum())
    main_only = det.main.decision_function(feats) >= det.main.threshold_
    assert ev["jpeg_route"]["routed_inputs"] == 0 and all(p["routed"] for p in ev["perturbations"])
    # the copies described are the saved route's, as it recorded them, not this version's recipe (patched)
    saved = json.loads(routed.with_name("detector.jpeg.json").read_text())["meta"]["copies"]
    assert ev["jpeg_route"]["copies"] == saved and saved["takes"] == ["recompressed", "enlarged"]
    assert flagged[~jpeg].tolist() == main_only[~jpeg].tolist()
    # the main detector alone flags all four q50 JPEGs (decisions 36-50 against a threshold of 7: to a model of
    # clean images a JPEG is far from anything real); the route flags one: the check can tell them apart
    assert int(main_only.sum()) != int(flagged.sum())


def test_the_sweep_reports_the_shares_flagged_at_the_detectors_own_thresholds(folders, routed, tmp_path) -> None:
    """AUROC is threshold-free; the share of real images over the threshold under a perturbation is the
    false-positive rate a user meets. Worked here from the saved detector's own decisions."""
    from detectors import job
    from detectors.evaluation import PERTURBATIONS
    from detectors.image_files import MappedImages

    path = job.evaluate([str(folders["real"])], [str(folders["fake"])], tmp_path / "ev", detector_file=routed,
                        draws=20, progress=False)  # fmt: skip
    ev = json.loads(Path(path).read_text())["data"]["evaluation"]
    det, _, model, scorer = job._saved(routed)
    real, fake = job.load_images([str(folders["real"])]), job.load_images([str(folders["fake"])])
    images, y = real.images + fake.images, np.repeat([0, 1], [len(real.images), len(fake.images)])
    clean, _ = job.features(model, scorer, images)
    flags = det.main.decision_function(clean) >= det.main.threshold_
    assert (ev["flagged_real"], ev["flagged_generated"]) == (flags[y == 0].mean(), flags[y == 1].mean())
    row = {p["perturbation"]: p for p in ev["perturbations"]}["jpeg q50"]
    feats, _ = job.features(model, scorer, MappedImages(images, PERTURBATIONS["jpeg q50"]))
    for which, got in ((det.main, row), (det.routes["jpeg"], row["routed"])):
        flags = which.decision_function(feats) >= which.threshold_
        assert (got["flagged_real"], got["flagged_generated"]) == (flags[y == 0].mean(), flags[y == 1].mean())


def test_a_scan_warns_about_images_of_a_size_the_detector_never_saw(folders, routed, tmp_path) -> None:
    """The detector records its calibration images' sides (8 px digits here); a scan counts the inputs with a
    side outside that range and warns with the count. A detector saved without the range gets no warning."""
    from PIL import Image

    from detectors import job
    from detectors.calibration_sizes import far_larger, outside, side_range, size_warning

    assert json.loads(routed.read_text())["meta"]["calibration_sides"] == {"min_side": 8, "max_side": 8}
    scan = tmp_path / "scan"
    scan.mkdir()
    for i, png in enumerate(sorted(folders["fake"].glob("*.png"))[:3]):
        image = Image.open(png)
        image.resize((16, 16) if i == 0 else (8, 8)).save(scan / f"{i}.png")  # one upscaled 2x
    image.resize((8, 6)).save(scan / "3.png")  # one side smaller
    image.convert("RGB").resize((16, 16)).save(scan / "4.jpg", quality=95)  # an upscaled JPEG of quality 95
    path = job.detect([str(scan)], tmp_path / "out", detector_file=routed, progress=False)
    data = json.loads(Path(path).read_text())["data"]
    # the upscaled ones went to the route, whose copies model enlarged images: neither the size warning nor the
    # q90+ JPEG one (this detector met no JPEG) counts them; the smaller one is warned about
    (warning,) = data["warnings"]
    assert warning.startswith("1 of 5 scanned images have a side outside the calibration images' (8 px)")
    (note,) = [n for n in data["notes"] if "JPEG route" in n]
    assert note.startswith("2 of 5 images were scored") and "2 of them (not recompressed) for a side larger" in note
    with (tmp_path / "out" / job.DETECTIONS_FILE).open(newline="", encoding="utf-8") as fh:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    assert {name: r["route"] for name, r in rows.items()} == {
        "0.png": "jpeg", "1.png": "main", "2.png": "main", "3.png": "main", "4.jpg": "jpeg"}  # fmt: skip
    assert {name: r["caveat"] for name, r in rows.items() if r["caveat"]} == {"3.png": "off_size"}
    (scan / "5.jpg").write_bytes((scan / "4.jpg").read_bytes())
    image.convert("RGB").save(scan / "4.jpg", quality=95)  # of the calibration size: the main detector's, warned
    data = json.loads(Path(job.detect([str(scan)], tmp_path / "again", detector_file=routed,
                                      progress=False)).read_text())["data"]  # fmt: skip
    assert [w.split(",")[0] for w in data["warnings"]] == [
        "1 of 6 scanned images are JPEGs of quality 90 or more", "1 of 6 scanned images have a side outside the "
        "calibration images' (8 px): the detector never saw images of their size"]  # fmt: skip
    with (tmp_path / "again" / job.DETECTIONS_FILE).open(newline="", encoding="utf-8") as fh:
        caveats = {Path(r["path"]).name: r["caveat"] for r in csv.DictReader(fh) if r["caveat"]}
    assert caveats == {"3.png": "off_size", "4.jpg": "unseen_jpeg"}  # 5.jpg, upscaled, is the route's
    image.resize((32, 32)).save(scan / "6.png")  # 4x: the largest enlargement the route was measured on
    image.resize((33, 20)).save(scan / "7.png")  # past it: routed, and warned about again
    data = json.loads(Path(job.detect([str(scan)], tmp_path / "third", detector_file=routed,
                                      progress=False)).read_text())["data"]  # fmt: skip
    assert any(w.startswith("2 of 8 scanned images have a side outside") for w in data["warnings"])
    with (tmp_path / "third" / job.DETECTIONS_FILE).open(newline="", encoding="utf-8") as fh:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    assert {n: (r["route"], r["caveat"]) for n, r in rows.items() if n in ("5.jpg", "6.png", "7.png")} == {
        "5.jpg": ("jpeg", ""), "6.png": ("jpeg", ""), "7.png": ("jpeg", "off_size")}  # fmt: skip
    assert side_range([{"width": 8, "height": 6}, {"width": 300, "height": 200}]) == {"min_side": 6, "max_side": 300}
    assert side_range([]) is None and not outside(640, 480, None) and size_warning(3, 9, None) is None
    assert outside(5, 100, {"min_side": 6, "max_side": 300}) and not outside(6, 300, {"min_side": 6, "max_side": 300})
    eight = {"min_side": 8, "max_side": 8}
    assert far_larger(33, 20, eight) and far_larger(8, 33, eight) and not far_larger(32, 32, eight)
    assert not far_larger(4000, 4000, None)


def test_high_quality_jpegs_are_warned_about_only_when_the_detector_met_no_jpeg() -> None:
    from detectors.recompression import high_quality_jpeg, jpeg_share, unseen_jpeg_warning

    metas = [{"jpeg_quality": 95}, {"jpeg_quality": 75}, {"format": "PNG"}, {"jpeg_quality": 90}]
    assert [high_quality_jpeg(m) for m in metas] == [True, False, False, True] and jpeg_share(metas) == 0.75
    assert jpeg_share([]) == 0.0
    assert unseen_jpeg_warning(2, 5, {"jpeg_share": 0.0}).startswith("2 of 5 scanned images are JPEGs of quality 90")
    assert unseen_jpeg_warning(2, 5, {"jpeg_share": 0.1}) is None  # calibrated on some JPEGs
    assert unseen_jpeg_warning(0, 5, {"jpeg_share": 0.0}) is None and unseen_jpeg_warning(0, 5, {}) is None
    older = unseen_jpeg_warning(2, 5, {})
    assert older.startswith("2 of 5 scanned images are JPEGs of quality 90") and "does not record whether" in older


def test_the_route_copies_pass_is_kept_and_not_scored_again(folders, tmp_path, monkeypatch) -> None:
    """``detect evaluate --route-jpeg`` keeps the route copies' features in its journal, chunk by chunk (in a
    folder named by the copies' seed, which changes with their recipe): run again into the same folder (as
    after a kill), it scores nothing and reports the same numbers."""
    from detectors import job
    from detectors.routing import COPY_SEED

    def run() -> dict:
        path = job.evaluate([str(folders["real"])], [str(folders["fake"])], tmp_path / "ev", scorer_config=SMALL,
                            draws=20, route_jpeg=True, progress=False)  # fmt: skip
        return json.loads(Path(path).read_text())["data"]["evaluation"]

    first = run()
    assert list((tmp_path / "ev" / "shards").glob(f"detect-*-route-copies-seed-{COPY_SEED}/run-*.npz"))
    calls = []
    real = job._features_by_size
    monkeypatch.setattr(job, "_features_by_size", lambda *a: (calls.append(len(a[2])), real(*a))[1])
    again = run()
    assert calls == []  # the images, the sweep's perturbations and the copies: all read back
    strip = lambda ev: {k: v for k, v in ev.items() if k != "protocol"}  # noqa: E731
    assert strip(again) == strip(first)


def test_the_sweep_routes_each_perturbation_as_a_scan_would_route_its_file() -> None:
    """The metadata the sweep assumes for each re-encoded digit is what the loader reads from such a file, and
    its scale is what the resize does to the digit's size; a resize routes, per image, those it makes larger
    than the calibration images (worked by hand for mixed sizes)."""
    import io

    from PIL import Image

    from audit.io.images import decode_image
    from audit.zoo import digits
    from detectors.evaluation import PERTURBATION_META, PERTURBATIONS
    from detectors.job import routed_perturbation, sweep_taken

    held, _ = digits.load_split("heldout")
    digit = np.stack([held[0]] * 3, axis=-1)
    image = Image.fromarray(digit)
    for name, meta in PERTURBATION_META.items():
        if "scale" in meta:
            assert PERTURBATIONS[name](digit).shape == (8 * meta["scale"], 8 * meta["scale"], 3)
            continue
        buf = io.BytesIO()
        image.save(buf, format=meta["format"], quality=int(name.rpartition("q")[2]))
        read = decode_image(buf.getvalue()).meta
        assert {key: read.get(key) for key in meta} == meta
    assert [routed_perturbation(n) for n in PERTURBATIONS] == [False, True, True, False, True, True]
    assert [routed_perturbation(n, takes_enlarged=False) for n in PERTURBATIONS] == [False, True, True, False, False,
                                                                                      True]  # fmt: skip
    sides, record = np.array([8, 40, 100, 51]), {"min_side": 8, "max_side": 100}  # 2x: 16, 80, 200, 102
    assert sweep_taken("resize 2x", sides, record, True).tolist() == [False, False, True, True]
    assert (
        not sweep_taken("resize 2x", sides, record, False).any()
        and not sweep_taken("resize 0.5x", sides, record, True).any()
    )
    assert sweep_taken("jpeg q50", sides, record, False).all() and not sweep_taken("jpeg q95", sides, record,
                                                                                   True).any()  # fmt: skip


def test_evaluate_routes_the_generators_left_out_as_the_seen_ones(tmp_path) -> None:
    """With --route-jpeg, the detector calibrated without a generator has its route too: a recompressed JPEG
    among the real images or the left-out generator's is scored by that detector's route, as a routed
    detector scores it (checked against the protocol written out here, sklearn's AUROC)."""
    from PIL import Image, ImageFilter
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from audit.zoo import digits
    from detectors import job
    from detectors.noise_model import load_noise_model
    from detectors.recompression import recompressed

    images, _ = digits.load_split("heldout")
    samples = _embedded_samples(range(900, 914), 0.0)
    folders = _folders(tmp_path, "real", "ddpm", "blur")

    def save(array: np.ndarray, path: Path, as_jpeg: bool) -> None:
        image = Image.fromarray(array).convert("RGB")
        image.save(path.with_suffix(".jpg"), quality=50) if as_jpeg else image.save(path.with_suffix(".png"))

    for i in range(24):
        save(images[i], folders["real"] / f"r{i:02d}", i % 3 == 0)
    for i in range(14):  # two generators that are hard to tell from real digits: no AUROC of 1 either way
        save(samples[i], folders["ddpm"] / f"d{i:02d}", i % 3 == 0)
        blurred = Image.fromarray(images[100 + i]).filter(ImageFilter.GaussianBlur(0.6))
        save(np.asarray(blurred), folders["blur"] / f"b{i:02d}", i % 3 == 1)
    fakes = [f"ddpm={folders['ddpm']}", f"blur={folders['blur']}"]
    path = job.evaluate([str(folders["real"])], fakes, tmp_path / "ev", scorer_config=SMALL, draws=20,
                        route_jpeg=True, progress=False)  # fmt: skip
    held = {h["source"]: h for h in json.loads(Path(path).read_text())["data"]["evaluation"]["held_out_generators"]}

    real_set, fake_set, loaded, y, src = job._labelled([str(folders["real"])], fakes)
    rows = np.array([recompressed(m) for m in real_set.meta + fake_set.meta])
    model = load_noise_model("embedded:digits-ddpm")
    scorer = job.build_scorer(SMALL, model)
    feats, _ = job.features(model, scorer, loaded)
    # the route calibrates on each recompressed input as it is and on the route's copy of every other image
    copies = np.where(rows[:, None], feats, job.copy_features(model, scorer, loaded))
    for name in ("ddpm", "blur"):
        pool, left = np.flatnonzero(src != name), np.flatnonzero(src == name)
        pool_scores, left_scores = np.empty(len(pool)), np.empty(len(left))
        splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(feats[pool], src[pool]))
        for j, (train, test) in enumerate(splits):
            main = job.new_detector(scorer, target_fpr=0.05).fit(feats[pool][train], y[pool][train])
            route = job.new_detector(scorer, target_fpr=0.05).fit(copies[pool][train], y[pool][train])

            def decided(idx: np.ndarray, main=main, route=route) -> np.ndarray:  # by the route where it takes them
                return np.where(rows[idx], route.decision_function(feats[idx]), main.decision_function(feats[idx]))

            pool_scores[test] = decided(pool[test])
            left_scores[j :: len(splits)] = decided(left[j :: len(splits)])
        real = y[pool] == 0
        expected = roc_auc_score([0] * int(real.sum()) + [1] * len(left),
                                 np.concatenate([pool_scores[real], left_scores]))  # fmt: skip
        assert held[name]["auroc"] == pytest.approx(expected, abs=1e-12)
        assert held[name]["routed_inputs"] == int(rows[(y == 0) | (src == name)].sum()) == 8 + 5


def test_the_cards_routed_sweep_names_the_limits_its_results_record() -> None:
    """The routed sweep's caption reads the route's limits and copy qualities from the results (results from
    before they were recorded: the limits of then, 90 and 80, and copies at 30-95)."""
    from reports.detect_card import _robustness_table

    metrics = {"auroc": 0.7, "ap": 0.7, "tpr_at_fpr_1pct": 0.1, "tpr_at_fpr_5pct": 0.2}
    ev = {**metrics, "perturbations": [{"perturbation": "jpeg q50", **metrics, "routed": {"route": "jpeg", **metrics}}]}
    copies = {"jpeg": {"quality": [40, 88]}, "below_quality": 85, "webp_below_quality": 70}
    caption = _robustness_table({**ev, "jpeg_route": {"copies": copies}})["caption"]
    assert "JPEG below quality 85" in caption and "WebP below quality 70" in caption and "(quality 40-88" in caption
    older = _robustness_table({**ev, "jpeg_route": {"copies": {"jpeg": {"quality": [30, 95]}}}})["caption"]
    assert "JPEG below quality 90" in older and "WebP below quality 80" in older and "(quality 30-95" in older


def test_the_route_calibrates_on_recompressed_images_as_they_are(folders, tmp_path) -> None:
    """A calibration image that is itself a file the route takes calibrates the route as it is, not through a
    copy of it (a JPEG of it is a second compression no input had; an enlarged one measured worse:
    benchmarks/RESULTS.md); the others through their copies, made for them alone with the seeds they have
    among all images. Calibrated on JPEG q50 files only, the route is fitted on exactly what the main
    detector is: the same threshold and cross-fitted AUROC."""
    from PIL import Image

    from audit.zoo import digits
    from detectors import job
    from detectors.noise_model import load_noise_model

    jpegs = _folders(tmp_path, "real", "fake")
    for side in ("real", "fake"):
        for i, png in enumerate(sorted(folders[side].iterdir())[:12]):
            Image.open(png).save(jpegs[side] / f"{i:02d}.jpg", quality=50)
    saved = job.calibrate([str(jpegs["real"])], [str(jpegs["fake"])], tmp_path / "detector.json", scorer_config=SMALL,
                          route_jpeg=True)  # fmt: skip
    main, route = json.loads(saved.read_text()), json.loads(saved.with_name("detector.jpeg.json").read_text())
    assert route["threshold"] == main["threshold"]
    assert route["meta"]["cross_fitted_auroc"] == main["meta"]["cross_fitted_auroc"]

    model = load_noise_model("embedded:digits-ddpm")
    scorer = job.build_scorer(SMALL, model)

    images = [np.repeat(digit[..., None], 3, axis=2) for digit in digits.load_split("heldout")[0][:6]]
    feats, _ = job.features(model, scorer, images)
    every_copy = job.copy_features(model, scorer, images)
    taken = np.array([True, False, False, True, False, True])
    mixed = job.route_features(model, scorer, images, feats, taken)
    assert np.array_equal(mixed[taken], feats[taken]) and np.array_equal(mixed[~taken], every_copy[~taken])


def test_with_augmented_copies_the_detector_compared_has_the_route_too(folders, tmp_path) -> None:
    """``detect evaluate --augment 1 --route-jpeg``: the detector calibrated without the copies, shown beside the
    augmented one, decides the recompressed inputs by the same route (which has no augmented copies), each by
    the route's fold detector that left it out; the others by itself (written out with cross_fit and
    sklearn's AUROC)."""
    from PIL import Image
    from sklearn.metrics import roc_auc_score

    from detectors import job
    from detectors.noise_model import load_noise_model
    from detectors.recompression import recompressed

    mixed = _folders(tmp_path, "real", "fake")
    for side in ("real", "fake"):
        for i, png in enumerate(sorted(folders[side].iterdir())[:16]):  # every other one a JPEG q50
            kwargs = {"quality": 50} if i % 2 else {}
            Image.open(png).save(mixed[side] / f"{i:02d}.{'jpg' if i % 2 else 'png'}", **kwargs)
    path = job.evaluate([str(mixed["real"])], [str(mixed["fake"])], tmp_path / "ev", scorer_config=SMALL, draws=20,
                        augment=1, route_jpeg=True, progress=False)  # fmt: skip
    ev = json.loads(Path(path).read_text())["data"]["evaluation"]

    real_set, fake_set, images, y, _ = job._labelled([str(mixed["real"])], [str(mixed["fake"])])
    rows = np.array([recompressed(m) for m in real_set.meta + fake_set.meta])
    model = load_noise_model("embedded:digits-ddpm")
    scorer = job.build_scorer(SMALL, model)
    feats, _ = job.features(model, scorer, images)
    calibrated_on = np.where(rows[:, None], feats, job.copy_features(model, scorer, images))
    route = job.cross_fit(scorer, calibrated_on, y, target_fpr=0.05)
    plain = job.cross_fit(scorer, feats, y, target_fpr=0.05)
    expected = roc_auc_score(y, np.where(rows, route.score(feats), plain.decisions))
    assert ev["jpeg_route"]["routed_inputs"] == int(rows.sum()) == 16
    assert ev["compare"]["auroc"] == pytest.approx(expected, abs=1e-12)
