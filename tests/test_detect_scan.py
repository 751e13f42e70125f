"""``genaudit detect`` in one streamed pass (detectors/scan.py): the same rows as scoring everything at once,
one block in memory at a time, unreadable files last, nothing written when there is nothing to score."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from audit.errors import InputError

SCORER = {"name": "diffusion-loss", "k": 2, "noise_sets": 1, "classes": False}  # cheap: the pass is the point


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> Path:
    """A detector calibrated on 12 real digits and 12 noise images (its quality is beside the point)."""
    from detectors import job

    root = tmp_path_factory.mktemp("scan-detector")
    real, fake = _digits(root / "real", 12, 0), _noise(root / "fake", 12)
    return job.calibrate([str(real)], [str(fake)], root / "detector.json", scorer_config=SCORER)


def _digits(folder: Path, n: int, start: int) -> Path:
    from PIL import Image

    from audit.zoo import digits

    images, _ = digits.load_split("heldout")
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(images[start + i]).convert("RGB").save(folder / f"d{start + i:03d}.png")
    return folder


def _noise(folder: Path, n: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"n{i:03d}.png")
    return folder


def _reference_rows(folder: Path, detector: Path) -> list[list[str]]:
    """The rows as the code before the stream made them: every image listed, scored in one call."""
    from detectors.job import _detections_rows, _saved, features, load_images

    det, _, model, scorer = _saved(detector)
    loaded = load_images([str(folder)])
    feats, _ = features(model, scorer, loaded.images)
    decisions = det.decision_function(feats)
    rows = _detections_rows(loaded.names, decisions, det.probability(decisions),
                            (decisions >= det.threshold_).astype(int), loaded.unreadable)  # fmt: skip
    return [[str(r[k]) for k in ("path", "score", "p_synthetic", "flagged", "reason", "route", "caveat")] for r in rows]


def test_the_stream_writes_the_rows_scoring_everything_at_once_writes(detector, tmp_path) -> None:
    from detectors import job
    from detectors.image_files import CHUNK_IMAGES

    folder = _digits(tmp_path / "in" / "digits", CHUNK_IMAGES + 9, 100)  # two blocks, the second partial
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # sorts first: unreadable, listed last
    (folder / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    job.detect([str(tmp_path / "in")], out, detector_file=detector, progress=False)
    with (out / job.DETECTIONS_FILE).open(newline="", encoding="utf-8") as fh:
        got = list(csv.reader(fh))
    assert got[0] == ["path", "score", "p_synthetic", "flagged", "reason", "route", "caveat"]
    assert got[1:] == _reference_rows(tmp_path / "in", detector)
    assert [r[0].rsplit("/", 2)[1:] for r in got[-2:]] == [["digits", "broken.png"], ["digits", "empty.png"]]
    assert all(r[4] for r in got[-2:]) and not any(r[4] for r in got[1:-2])
    doc = json.loads((out / job.RESULTS_FILE).read_text())
    assert doc["data"]["scored"] == CHUNK_IMAGES + 9
    assert doc["data"]["flagged"] == sum(r[3] == "True" for r in got[1:-2])
    assert len(doc["data"]["detections"]) == 24 and all(d["png"] for d in doc["data"]["detections"])


def test_the_stream_holds_one_block_of_listing_at_a_time(detector, tmp_path, monkeypatch) -> None:
    """Scoring starts after one block's files are listed, not after all of them."""
    from detectors import job
    from detectors.image_files import CHUNK_IMAGES

    folder = _digits(tmp_path / "in", 3 * CHUNK_IMAGES, 0)
    listed, at_scoring = [0], []
    real_iter, real_features = job.iter_inputs, job.features

    def counting(*args, **kwargs):
        for item in real_iter(*args, **kwargs):
            listed[0] += 1
            yield item

    def recording(model, scorer, images, cache=None, journal=None):
        at_scoring.append((listed[0], len(images)))
        return real_features(model, scorer, images, cache, journal)

    monkeypatch.setattr(job, "iter_inputs", counting)
    monkeypatch.setattr(job, "features", recording)
    job.detect([str(folder)], tmp_path / "out", detector_file=detector, progress=False)
    assert at_scoring == [(CHUNK_IMAGES + 1, CHUNK_IMAGES), (2 * CHUNK_IMAGES + 1, CHUNK_IMAGES),
                          (3 * CHUNK_IMAGES, CHUNK_IMAGES)]  # fmt: skip


def test_each_row_names_the_warnings_that_count_it(detector, tmp_path) -> None:
    """A detector without a JPEG route, calibrated on 8-px PNGs only: a scan's recompressed JPEG, q95 JPEG and
    off-size image are each counted in one warning, and their rows name it (a small recompressed JPEG names
    two); a clean digit names none. The rows' caveats and the warnings' counts are the same images."""
    from PIL import Image

    from detectors import job

    folder = _digits(tmp_path / "in", 5, 40)
    digit = Image.open(folder / "d040.png")
    digit.save(folder / "q50.jpg", quality=50)
    digit.save(folder / "q95.jpg", quality=95)
    digit.resize((6, 6)).save(folder / "small.png")
    digit.resize((6, 6)).save(folder / "small-q50.jpg", quality=50)
    path = job.detect([str(folder)], tmp_path / "out", detector_file=detector, progress=False)
    with (tmp_path / "out" / job.DETECTIONS_FILE).open(newline="", encoding="utf-8") as fh:
        caveats = {Path(r["path"]).name: r["caveat"] for r in csv.DictReader(fh)}
    assert caveats == {**{f"d{i:03d}.png": "" for i in range(40, 45)}, "q50.jpg": "recompressed", "q95.jpg":
                       "unseen_jpeg", "small.png": "off_size", "small-q50.jpg": "recompressed;off_size"}  # fmt: skip
    warnings = json.loads(Path(path).read_text())["data"]["warnings"]
    assert [w.split(" scanned")[0] for w in warnings] == ["2 of 9", "1 of 9", "2 of 9"]
    assert "re-encoded below quality 90" in warnings[0] and "quality 90 or more" in warnings[1]
    assert "side outside" in warnings[2]
    doc = json.loads(Path(path).read_text())["data"]
    assert {Path(d["path"]).name: d["caveat"] for d in doc["detections"]} == caveats  # the card's rows, too


def test_a_detector_warns_and_marks_rows_only_for_what_it_never_met() -> None:
    from detectors.scan import warned_caveats

    everything = {"recompressed", "unseen_jpeg", "unseen_lossy", "off_size"}
    assert warned_caveats({"calibration_sides": {"min_side": 8, "max_side": 8}}) == everything  # shares unrecorded
    met = {"recompressed_share": 0.2, "jpeg_share": 0.3, "lossy_share": 0.1}
    assert warned_caveats(met) == set()  # and no calibration range recorded: no size to compare
    assert warned_caveats({"jpeg_share": 0.0, "lossy_share": 0.0, "routes": {"jpeg": {}}}) == {"unseen_jpeg",
                                                                                            "unseen_lossy"}  # fmt: skip
    assert warned_caveats({"augment": 1, "jpeg_share": 0.5, "lossy_share": 0.0}) == {"unseen_lossy"}


def test_nothing_to_score_is_an_error_and_leaves_no_csv(detector, tmp_path) -> None:
    from detectors import job

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    with pytest.raises(InputError, match="no images found"):
        job.detect([str(tmp_path / "in")], tmp_path / "out", detector_file=detector, progress=False)
    assert not (tmp_path / "out" / job.DETECTIONS_FILE).exists()
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_extremes_pick_what_sorting_everything_picks() -> None:
    """The bounded heaps against the full sort they replace (descending score, ties in arrival order),
    with many ties, fewer items than the limit and exactly the limit."""
    from detectors.scan import Extremes

    rng = random.Random(3)
    for n in (0, 1, 5, 12, 24, 25, 300):
        scores = [rng.choice([0.5, -1.0, 2.0, rng.random()]) for _ in range(n)]
        extremes = Extremes(12)
        for i, s in enumerate(scores):
            extremes.add(s, i, i)
        order = sorted(range(n), key=lambda i: -scores[i])
        expected = order[:12] + [i for i in order[-12:] if i not in order[:12]]
        assert extremes.picks() == expected, n


def test_file_names_cannot_run_as_spreadsheet_formulas_in_detections_csv(detector, tmp_path, monkeypatch) -> None:
    """``detect .`` names files as they are; one named like a formula gets a quote in the CSV (OWASP's CSV
    injection advice), and the results (the card's thumbnails) keep its name as it is."""
    from detectors import job

    folder = _digits(tmp_path / "in", 3, 0)
    hostile = ['=HYPERLINK("x.example","y").png', "@SUM(A1).png", "-2+3.png"]
    for src, name in zip(sorted(folder.iterdir()), hostile, strict=True):
        src.rename(folder / name)
    (folder / "+1.png").write_bytes(b"not an image")  # an unreadable one: its row comes last, quoted too
    monkeypatch.chdir(folder)
    job.detect(["."], tmp_path / "out", detector_file=detector, progress=False)
    with (tmp_path / "out" / job.DETECTIONS_FILE).open(newline="", encoding="utf-8") as fh:
        names = [r[0] for r in csv.reader(fh)][1:]
    assert sorted(names[:3]) == sorted("'" + n for n in hostile) and names[3] == "'+1.png"
    doc = json.loads((tmp_path / "out" / job.RESULTS_FILE).read_text())
    assert sorted(d["path"] for d in doc["data"]["detections"]) == sorted(hostile)  # what the card shows


class _Killed(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way catches it."""


def _killed_at_chunk(n: int, monkeypatch) -> list[int]:
    """Scoring dies (once) at its ``n``-th chunk; returns the list every chunk's size is appended to."""
    from detectors import job

    real_chunks = job._features_by_size
    calls: list[int] = []

    def dies(model, scorer, images):
        calls.append(len(images))
        if len(calls) == n and not getattr(dies, "done", False):
            dies.done = True
            raise _Killed
        return real_chunks(model, scorer, images)

    monkeypatch.setattr(job, "_features_by_size", dies)
    return calls


def test_an_evaluation_killed_mid_run_resumes_and_equals_an_uninterrupted_one(tmp_path, monkeypatch) -> None:
    """``detect evaluate`` keeps each pass's features as it goes (main pass, then each perturbation); the
    same command after a kill scores only what was not kept, in the same chunks, and writes the same
    numbers as a run never interrupted."""
    from detectors import feature_shards, job

    real, fake = _digits(tmp_path / "real", 40, 0), _noise(tmp_path / "fake", 40)
    args = ([str(real)], [str(fake)])
    settings = {"scorer_config": SCORER, "draws": 50, "progress": False}
    job.evaluate(*args, tmp_path / "whole", **settings)
    monkeypatch.setattr(feature_shards, "JOURNAL_ROWS", 1)  # every chunk kept at once, as a long run's parts
    # 3 chunks a pass: the main pass and JPEG q95 kept, q75 killed at its last chunk
    calls = _killed_at_chunk(9, monkeypatch)
    with pytest.raises(_Killed):
        job.evaluate(*args, tmp_path / "resumed", **settings)
    assert len(calls) == 9 and calls[:3] == [32, 32, 16]
    calls.clear()
    job.evaluate(*args, tmp_path / "resumed", **settings)
    never_begun = list(job.PERTURBATIONS)[2:]  # after JPEG q95 and q75: q50, both resizes, WebP q75
    assert len(never_begun) == 4 and calls == [16] + [32, 32, 16] * len(never_begun)  # and q75's last chunk
    for name in (job.EVALUATION_FILE, job.DETECTIONS_FILE):
        assert (tmp_path / "resumed" / name).read_text() == (tmp_path / "whole" / name).read_text(), name


def test_a_scan_killed_mid_run_scores_only_the_blocks_it_had_not_kept(detector, tmp_path, monkeypatch) -> None:
    from detectors import feature_shards, job

    _digits(tmp_path / "in", 2 * 32 + 9, 150)  # three blocks: 32, 32 and 9 images
    job.detect([str(tmp_path / "in")], tmp_path / "whole", detector_file=detector, progress=False)
    monkeypatch.setattr(feature_shards, "JOURNAL_ROWS", 1)
    calls = _killed_at_chunk(2, monkeypatch)
    with pytest.raises(_Killed):
        job.detect([str(tmp_path / "in")], tmp_path / "resumed", detector_file=detector, progress=False)
    assert not (tmp_path / "resumed" / job.DETECTIONS_FILE).exists()  # written at the end only, atomically
    calls.clear()
    job.detect([str(tmp_path / "in")], tmp_path / "resumed", detector_file=detector, progress=False)
    assert calls == [32, 9]  # the first block was kept
    whole = (tmp_path / "whole" / job.DETECTIONS_FILE).read_text()
    assert (tmp_path / "resumed" / job.DETECTIONS_FILE).read_text() == whole


def test_a_calibration_into_a_folder_killed_mid_run_resumes_to_the_same_detector(tmp_path, monkeypatch) -> None:
    from detectors import feature_shards, job

    real, fake = _digits(tmp_path / "real", 40, 0), _noise(tmp_path / "fake", 40)
    job.calibrate([str(real)], [str(fake)], f"{tmp_path / 'whole'}/", scorer_config=SCORER)
    monkeypatch.setattr(feature_shards, "JOURNAL_ROWS", 1)
    calls = _killed_at_chunk(3, monkeypatch)
    with pytest.raises(_Killed):
        job.calibrate([str(real)], [str(fake)], f"{tmp_path / 'resumed'}/", scorer_config=SCORER)
    calls.clear()
    job.calibrate([str(real)], [str(fake)], f"{tmp_path / 'resumed'}/", scorer_config=SCORER)
    assert calls == [16]  # the two blocks kept before the kill are read back
    for name in ("detector.json", "detector.safetensors"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert (tmp_path / "resumed" / "shards").is_dir()
    # a .json target: the journal in a hidden folder beside it while it runs, gone once the detector is saved
    calls = _killed_at_chunk(3, monkeypatch)
    with pytest.raises(_Killed):
        job.calibrate([str(real)], [str(fake)], tmp_path / "file.json", scorer_config=SCORER)
    assert (tmp_path / ".file.json.journal" / "shards").is_dir() and not (tmp_path / "file.json").exists()
    calls.clear()
    job.calibrate([str(real)], [str(fake)], tmp_path / "file.json", scorer_config=SCORER)
    assert calls == [16]
    assert (tmp_path / "file.safetensors").read_bytes() == (tmp_path / "whole" / "detector.safetensors").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if "file" in p.name) == ["file.json", "file.safetensors"]
    assert not (tmp_path / "shards").exists()
