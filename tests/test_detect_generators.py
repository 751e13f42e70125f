"""Named generators (``--fake NAME=DIR``, repeated) through calibration and evaluation, and the evaluation of
each generator left out of calibration against an independent re-computation (sklearn's AUROC)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audit.cli import main
from audit.errors import InputError

CHEAP = ["--k", "2", "--noise-sets", "1", "--classes", "off"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """24 held-out real digits; two "generators": 14 noise images and 14 inverted digits; a hostile name."""
    from PIL import Image

    from audit.zoo import digits

    root = tmp_path_factory.mktemp("generators")
    images, _ = digits.load_split("heldout")
    rng = np.random.default_rng(11)
    out = {name: root / name for name in ("real", "noise", "invert", "a=b")}
    for folder in out.values():
        folder.mkdir()
    for i in range(24):
        Image.fromarray(images[i]).convert("RGB").save(out["real"] / f"r{i:02d}.png")
    for i in range(14):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(out["noise"] / f"n{i:02d}.png")
        Image.fromarray(255 - images[100 + i]).convert("RGB").save(out["invert"] / f"v{i:02d}.png")
        Image.fromarray(images[150 + i]).convert("RGB").save(out["a=b"] / f"x{i:02d}.png")
    return out


def test_fake_values_name_their_generators(sources) -> None:
    from detectors.generators import fake_sources

    assert fake_sources([str(sources["noise"])]) == [("generated", str(sources["noise"]))]
    assert fake_sources([f"gan={sources['noise']}", f"sd={sources['invert']}", f"gan={sources['real']}"]) == [
        ("gan", str(sources["noise"])), ("sd", str(sources["invert"])), ("gan", str(sources["real"]))
    ]  # fmt: skip
    # a path that exists is a path even with '=' in it; several plain paths are named by their paths
    assert fake_sources([str(sources["a=b"]), str(sources["noise"])]) == [
        (str(sources["a=b"]), str(sources["a=b"])), (str(sources["noise"]), str(sources["noise"]))
    ]  # fmt: skip
    assert fake_sources(["<b>x</b>=dir"]) == [("<b>x</b>", "dir")]  # kept as text; the card escapes it
    for bad, match in (("=dir", "empty name"), (f"real={sources['noise']}", "names the --real images")):
        with pytest.raises(InputError, match=match):
            fake_sources([bad])


def test_too_few_images_of_one_generator_is_refused(sources, tmp_path, capsys) -> None:
    from shutil import copy

    (tmp_path / "one").mkdir()
    copy(sources["noise"] / "n00.png", tmp_path / "one" / "n00.png")
    argv = ["-q", "detect", "evaluate", "--real", str(sources["real"]), "--fake", f"gan={sources['noise']}",
            "--fake", f"tiny={tmp_path / 'one'}", *CHEAP, "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 2
    assert "every generator needs at least 2 readable images; too few: tiny (1)" in capsys.readouterr().err


def test_evaluate_reports_each_generator_seen_and_left_out(sources, tmp_path) -> None:
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from detectors.job import _labelled, build_scorer, features, new_detector
    from detectors.noise_model import load_noise_model

    out = tmp_path / "out"
    fakes = [f"noise={sources['noise']}", f"<i>inv</i>={sources['invert']}"]
    argv = ["-q", "detect", "evaluate", "--real", str(sources["real"]), "--fake", fakes[0], "--fake", fakes[1]]
    assert main([*argv, *CHEAP, "--bootstrap", "50", "--out", str(out)]) == 0
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["generators"] == {"noise": 14, "<i>inv</i>": 14}
    assert [s["source"] for s in ev["per_source"]] == ["noise", "<i>inv</i>"]
    held = {h["source"]: h for h in ev["held_out_generators"]}
    assert held["noise"]["calibrated_on"] == ["<i>inv</i>"] and held["noise"]["n_fake"] == 14
    assert held["noise"]["n_real"] == 24

    # the same protocol written out here: folds over real + the other generator, stratified by source,
    # the left-out generator's images dealt out among the fold detectors in turn
    _, _, images, y, src = _labelled([str(sources["real"])], fakes)
    model = load_noise_model("embedded:digits-ddpm")
    scorer = build_scorer({"name": "diffusion-loss", "k": 2, "noise_sets": 1, "classes": False}, model)
    feats, _ = features(model, scorer, images)
    for name in ("noise", "<i>inv</i>"):
        pool = np.flatnonzero(src != name)
        left = np.flatnonzero(src == name)
        real_scores, left_scores, left_flags = np.empty(len(pool)), np.empty(len(left)), np.empty(len(left))
        splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(feats[pool], src[pool]))
        for j, (train, test) in enumerate(splits):
            det = new_detector(scorer, target_fpr=0.05).fit(feats[pool][train], y[pool][train])
            real_scores[test] = det.decision_function(feats[pool][test])
            mine = left[j :: len(splits)]
            left_scores[j :: len(splits)] = det.decision_function(feats[mine])
            left_flags[j :: len(splits)] = left_scores[j :: len(splits)] >= det.threshold_
        is_real = y[pool] == 0
        expected = roc_auc_score([0] * int(is_real.sum()) + [1] * len(left),
                                 np.concatenate([real_scores[is_real], left_scores]))  # fmt: skip
        assert held[name]["auroc"] == pytest.approx(expected, abs=1e-12)
        assert held[name]["flagged"] == pytest.approx(left_flags.mean(), abs=1e-12)
    html = (out / "detect-results.html").read_text(encoding="utf-8")
    assert "AUROC left out" in html and "&lt;i&gt;inv&lt;/i&gt;" in html and "<i>inv</i>" not in html
    # the detector learned one model per generator, and the card's direction table names them
    direction = json.loads((out / "detect-results.json").read_text())["data"]["direction"]
    assert [d["generator"] for d in direction] == ["noise"] * 4 + ["<i>inv</i>"] * 4  # K = 2: 2 errors, 2 norms
    assert "What the detector learned" in html


def test_calibrate_records_each_generator(sources, tmp_path) -> None:
    target = tmp_path / "det.json"
    assert main(["-q", "detect", "calibrate", "--real", str(sources["real"]), "--fake", f"noise={sources['noise']}",
                 "--fake", f"inv={sources['invert']}", *CHEAP, "--out", str(target)]) == 0  # fmt: skip
    meta = json.loads(target.read_text())["meta"]
    assert meta["calibrated_on"]["generators"] == {"noise": 14, "inv": 14}
    assert meta["calibrated_on"]["n_fake"] == 28


def test_evaluate_with_augmented_copies_reports_both_detectors_and_the_reference(sources, tmp_path, capsys) -> None:
    """``--augment 1``: the augmented detector is the one evaluated, the plain one beside it (clean and per
    perturbation); every left-out row carries the two-class detector alone and the reference alone."""
    out = tmp_path / "aug"
    argv = ["-q", "detect", "evaluate", "--real", str(sources["real"]), "--fake", f"noise={sources['noise']}",
            "--fake", f"inv={sources['invert']}", *CHEAP, "--bootstrap", "20", "--augment", "1"]  # fmt: skip
    argv += ["--out", str(out)]
    assert main(argv) == 0
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["compare"]["label"] == "calibrated without augmentation" and ev["augment"]["copies_per_image"] == 1
    assert (ev["compare"]["n_real"], ev["compare"]["n_fake"]) == (24, 28)  # copies are never scored
    assert all(set(p["compare"]) >= {"auroc", "auroc_ci"} for p in ev["perturbations"])
    assert ev["two_class"]["n_fake"] == 28
    for h in ev["held_out_generators"]:
        assert h["reference_only"]["n_real"] == 24 and h["two_class"]["n_fake"] == 14
        assert 0.0 <= h["reference_only"]["real_flagged"] <= 1.0
    html = (out / "detect-results.html").read_text(encoding="utf-8")
    assert "AUROC, calibrated without augmentation" in html and "real reference alone" in html
    assert main(["-q", "detect", "evaluate", "--real", str(sources["real"]), "--fake", str(sources["noise"]),
                 "--detector", str(out / "x.json"), "--augment", "1", "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    assert "--augment calibrates" in capsys.readouterr().err
