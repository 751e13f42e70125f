"""``genaudit bench``: the sweep's cache and resume, the analysis by hand, the card, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audit.bench import BenchConfig, analysis, parse_schedule, run_bench
from audit.bench.run import RESULTS_FILE
from audit.errors import InputError
from tests import generator_fixtures

SMALL = dict(
    generator="python:tests.generator_fixtures:counting_digits",
    schedules=({"name": "static"}, {"name": "linear"}, {"name": "cosine"}),
    scales=(1.0, 3.0),
    n=140,
    steps=4,
    bootstrap=20,
)


def metric_values(path: Path) -> dict[str, dict[str, float]]:
    doc = json.loads(path.read_text())
    return {
        c["label"]: {k: v["value"] for k, v in c["metrics"].items() if isinstance(v, dict)}
        for c in doc["data"]["cells"]
    }


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "run"
    generator_fixtures.GENERATED.clear()
    return run_bench(BenchConfig(**SMALL), out, progress=False)


def test_a_killed_run_resumes_without_recomputing_finished_work(straight_run, tmp_path, monkeypatch) -> None:
    import audit.metrics.evaluator as evaluator

    out = tmp_path / "run"
    real_evaluate = evaluator.evaluate_features
    calls = []

    def dies_on_third_cell(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a kill after the third cell's images, before its metrics
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(evaluator, "evaluate_features", dies_on_third_cell)
    generator_fixtures.GENERATED.clear()
    with pytest.raises(KeyboardInterrupt):
        run_bench(BenchConfig(**SMALL), out, progress=False)
    assert sum(generator_fixtures.GENERATED) == 3 * 140  # three cells sampled, two scored
    assert not (out / RESULTS_FILE).exists()
    # a half-written cell: two images lost, no manifest
    cell = out / "cells" / "static" / "3.0"
    assert (cell / "manifest.csv").is_file()
    (cell / "manifest.csv").unlink()
    (cell / "images" / "00007.png").unlink()
    (cell / "images" / "00100.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")

    monkeypatch.setattr(evaluator, "evaluate_features", real_evaluate)
    generator_fixtures.GENERATED.clear()
    with pytest.raises(InputError, match="--resume"):
        run_bench(BenchConfig(**SMALL), out, progress=False)
    path = run_bench(BenchConfig(**SMALL), out, resume=True, progress=False)
    # 4 untouched cells sampled now, plus exactly the 2 damaged images of the third cell
    assert sum(generator_fixtures.GENERATED) == 4 * 140 + 2
    assert metric_values(path) == metric_values(straight_run)  # same numbers as a run that was never killed
    generator_fixtures.GENERATED.clear()
    run_bench(BenchConfig(**SMALL), out, resume=True, progress=False)
    assert generator_fixtures.GENERATED == []  # finished: nothing recomputed


def test_a_cell_image_counts_only_when_whole(tmp_path) -> None:
    """The merge's check (PIL's verify, no decoding) still refuses a cut file, a flipped byte and a stranger."""
    from audit.bench.store import CellStore
    from audit.guidance import get_schedule

    store = CellStore(tmp_path, get_schedule("static", 1.0))
    store.images_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    store.write_images([0, 1, 2, 3], rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8))
    whole = (store.images_dir / store.image_name(1)).read_bytes()
    (store.images_dir / store.image_name(1)).write_bytes(whole[: len(whole) // 2])  # cut
    flipped = bytearray(whole)
    flipped[whole.index(b"IDAT") + 8] ^= 0xFF  # a byte of the pixel data: its chunk's CRC no longer matches
    (store.images_dir / store.image_name(2)).write_bytes(bytes(flipped))
    (store.images_dir / store.image_name(3)).write_text("<html>not an image</html>")
    assert [store.has_image(i) for i in range(5)] == [True, False, False, False, False]
    assert store.missing(5) == [1, 2, 3, 4]


def test_resume_refuses_a_folder_made_with_another_config(straight_run) -> None:
    with pytest.raises(InputError, match=r"n: 140 -> 150"):
        run_bench(BenchConfig(**{**SMALL, "n": 150}), straight_run.parent, resume=True, progress=False)


def test_resume_refuses_other_versions(straight_run, tmp_path) -> None:
    """Beyond the config, bench.run.json records the reference's identity and the versions that change
    numbers: a resume under another numpy (here: an edited record of it) is refused, and so is a folder
    without the record (made by an older genaudit)."""
    import shutil

    from audit.bench.run import IDENTITY_FILE

    copy = tmp_path / "run"
    shutil.copytree(straight_run.parent, copy)
    identity = json.loads((copy / IDENTITY_FILE).read_text())
    assert identity["reference"] == {"spec": "embedded:digits-heldout"} and "numpy" in identity["versions"]
    (copy / IDENTITY_FILE).write_text(json.dumps({**identity, "versions": {**identity["versions"], "numpy": "1.0"}}))
    with pytest.raises(InputError, match=r"versions\.numpy: '1\.0' -> '\d"):
        run_bench(BenchConfig(**SMALL), copy, resume=True, progress=False)
    (copy / IDENTITY_FILE).unlink()
    with pytest.raises(InputError, match=r"without bench\.run\.json"):
        run_bench(BenchConfig(**SMALL), copy, resume=True, progress=False)


def test_the_cells_folder_is_a_folder_generator_with_the_same_numbers(straight_run, tmp_path) -> None:
    generator_fixtures.GENERATED.clear()
    config = BenchConfig(**{**SMALL, "generator": f"folder:{straight_run.parent / 'cells'}"})
    path = run_bench(config, tmp_path / "again", progress=False)
    assert generator_fixtures.GENERATED == []
    assert metric_values(path) == metric_values(straight_run)


def test_results_document_pairs_cells_and_records_what_was_applied(straight_run) -> None:
    doc = json.loads(straight_run.read_text())
    data = doc["data"]
    labels = [c["label"] for c in data["cells"]]
    assert labels == ["static @ 0", "static @ 1", "static @ 3", "linear @ 1", "linear @ 3", "cosine @ 1", "cosine @ 3"]
    linear3 = next(c for c in data["cells"] if c["label"] == "linear @ 3")
    assert linear3["step_weights"] == pytest.approx([0.0, 2.0, 4.0, 6.0])  # 2 w0 p at p = 0, 1/3, 2/3, 1
    assert {r["label"] for r in data["paired_vs_static"]} == {"linear @ 1", "linear @ 3", "cosine @ 1", "cosine @ 3"}
    manifest = (straight_run.parent / "cells" / "linear" / "3.0" / "manifest.csv").read_text().splitlines()
    assert manifest[0] == "path,label,seed,negative_prompt,schedule,steps,step_weights"
    assert manifest[1].startswith("images/00000.png,0,0,")
    assert doc["provenance"]["config"]["n"] == 140
    assert {m["id"] for m in doc["provenance"]["models"]} >= {"embedded:digits-classifier", "embedded:digits-clip"}
    for cell in data["cells"]:
        for name, m in cell["metrics"].items():
            if isinstance(m, dict):
                assert m["ci95"][0] <= m["value"] <= m["ci95"][1], (cell["label"], name)


def test_card_renders_every_section(straight_run) -> None:
    from reports.render import render_card

    html = render_card(json.loads(straight_run.read_text()))
    for title in (
        "Verdict",
        "Fidelity against prompt adherence",
        "Diversity against prompt adherence",
        "IS against FID",
        "The schedules",
        "Paired differences to static guidance",
        "Where the metrics disagree",
        "All cells",
        "Samples: same conditions and seeds in every row",
    ):
        assert f"<h2>{title}</h2>" in html
    assert html.count("<img") >= 9


def test_pareto_front_by_hand() -> None:
    fid = [1.0, 2.0, 1.5, 3.0, 2.0]
    clip = [70.0, 72.0, 71.0, 71.5, 71.0]
    # cell 3 (3.0, 71.5) is dominated by cell 1 (2.0, 72.0); cell 4 (2.0, 71.0) by cell 2 (1.5, 71.0)
    assert analysis.pareto_front(fid, clip) == [0, 2, 1]


def _cell(label: str, name: str, scale: float, fid_draws: list[float], clip_draws: list[float]) -> dict:
    return {
        "label": label,
        "schedule": {"name": name, "scale": scale},
        "metrics": {
            "fid": {"value": float(np.mean(fid_draws))},
            "clip_score": {"value": float(np.mean(clip_draws))},
            "draws": {"fid": fid_draws, "clip_score": clip_draws},
        },
    }


def test_paired_differences_and_the_verdict_by_hand() -> None:
    rng = np.random.default_rng(0)
    common = rng.normal(0, 1.0, 200)  # shared resampling noise: large unpaired, cancels in the pair
    cells = [
        _cell("static @ 1", "static", 1.0, list(5 + common), list(70 + common)),
        _cell("linear @ 1", "linear", 1.0, list(4.9 + common + rng.normal(0, 0.01, 200)), list(70 + common)),
        _cell("cosine @ 1", "cosine", 1.0, list(5.2 + common + rng.normal(0, 0.01, 200)), list(70 + common)),
    ]
    paired = analysis.paired_differences(cells)
    by_label = {r["label"]: r["metrics"]["fid"] for r in paired}
    assert by_label["linear @ 1"]["diff"] == pytest.approx(-0.1, abs=0.01)
    assert by_label["linear @ 1"]["ci95"][1] < 0 and by_label["linear @ 1"]["verdict"] == "better"
    assert by_label["cosine @ 1"]["verdict"] == "worse"
    verdict = analysis.increasing_verdict("gen", paired, "clip_score")
    assert verdict["answer"] == "mixed"  # one better, one significantly worse
    assert verdict["beats"] == ["linear @ 1"] and verdict["worse"] == ["cosine @ 1"]
    assert "FID was significantly worse in 1 (cosine @ 1)" in verdict["sentence"]


def test_schedule_arguments_parse_and_fail_clearly() -> None:
    assert parse_schedule("clamp-linear:c=2") == {"name": "clamp-linear", "c": 2.0}
    assert parse_schedule("python:tests.m:f") == {"name": "python:tests.m:f"}
    with pytest.raises(InputError, match="unknown guidance schedule"):
        parse_schedule("wiggly")
    with pytest.raises(InputError, match="key=value"):
        parse_schedule("pcs:2")
    with pytest.raises(InputError, match="at least 20"):
        BenchConfig(n=5)


def test_cli_refuses_too_few_images_for_the_feature_space_before_sampling(tmp_path, capsys) -> None:
    from audit.cli import main

    generator_fixtures.GENERATED.clear()
    code = main(
        [
            "bench",
            "--generator",
            "python:tests.generator_fixtures:counting_digits",
            "--n",
            "100",
            "--out",
            str(tmp_path / "b"),
        ]
    )
    assert code == 2
    assert "use --n 129 or more" in capsys.readouterr().err
    assert generator_fixtures.GENERATED == []
    # a reference with too few readable images: refused before any sampling too, naming what was skipped
    from PIL import Image

    (tmp_path / "ref").mkdir()
    for i in range(20):
        Image.new("RGB", (8 + i % 3, 8), (i * 10, 0, 0)).save(tmp_path / "ref" / f"{i:02d}.png")
    (tmp_path / "ref" / "broken.png").write_bytes(b"not a png")
    args = ["bench", "--generator", "python:tests.generator_fixtures:counting_digits", "--n", "130"]
    code = main([*args, "--reference", str(tmp_path / "ref"), "--out", str(tmp_path / "c")])
    assert code == 2
    assert "20 readable images (1 skipped) cannot give a FID" in capsys.readouterr().err
    assert generator_fixtures.GENERATED == []


def test_readme_python_example_runs(capsys) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "'ci95'" in printed and "'ci_method': 'bootstrap'" in printed


def test_cli_bench_on_a_text_to_image_pipeline_with_a_folder_reference(tmp_path, capsys) -> None:
    """The whole command on a tiny random Stable Diffusion pipeline: prompts file, negative prompt, a
    reference folder written by ``zoo export``, the embedded extractor (any image size works)."""
    import csv

    from audit.cli import main
    from tests.diffusers_fixtures import save_tiny_sd

    pipe = save_tiny_sd(tmp_path / "sd")
    assert main(["zoo", "export", "digits", "--split", "heldout", "--out", str(tmp_path / "ref")]) == 0
    capsys.readouterr()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text('a photo of the digit 3\n<b>"quoted"</b> & ünïcode\n\n', encoding="utf-8")
    out = tmp_path / "run"
    code = main([
        "bench", "--generator", f"diffusers:{pipe}", "--prompts", str(prompts), "--negative-prompt", "blurry",
        "--reference", str(tmp_path / "ref"), "--schedules", "static", "clamp-linear:c=0.5", "--scales", "2",
        "--n", "140", "--steps", "3", "--bootstrap", "10", "--batch-size", "35", "--out", str(out),
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == str(out / "bench-results.html")
    doc = json.loads((out / "bench-results.json").read_text())
    assert [c["label"] for c in doc["data"]["cells"]] == ["static @ 0", "static @ 2", "clamp-linear(c=0.5) @ 2"]
    assert doc["data"]["reference"]["n"] == 297 and doc["data"]["conditioning_metric"] == "clip_score"
    with (out / "cells" / "clamp-linear_c=0.5" / "2.0" / "manifest.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 140 and rows[1]["prompt"] == '<b>"quoted"</b> & ünïcode'
    assert rows[0]["negative_prompt"] == "blurry"
    assert json.loads(rows[0]["step_weights"]) == pytest.approx([0.5, 2.0, 4.0])  # max(c, 2 w0 p)
    html = (out / "bench-results.html").read_text(encoding="utf-8")
    assert "<b>" not in html and "&lt;b&gt;" in html  # the prompt is in the provenance, as text only


def test_a_kill_between_the_last_image_and_the_manifest_records_the_applied_weights(tmp_path) -> None:
    """A noise-level interval's weights depend on the sampler's sigmas: they must come from the sampler."""
    window = {"name": "interval", "sigma_lo": 0.5, "sigma_hi": 3.0}
    config = BenchConfig(
        **{**SMALL, "generator": "embedded:digits-ddpm", "scales": (2.0,), "baseline": False, "schedules": (window,)}
    )
    out = tmp_path / "run"
    first = json.loads(run_bench(config, out, progress=False).read_text())["data"]["cells"][0]["step_weights"]
    assert 0.0 in first and 2.0 in first  # both inside and outside the window at 4 steps
    cell = out / "cells" / "interval_sigma_lo=0.5_sigma_hi=3.0" / "2.0"
    (cell / "manifest.csv").unlink()
    (cell / "metrics.json").unlink()
    stamp = (cell / "images" / "00000.png").stat().st_mtime_ns
    again = json.loads(run_bench(config, out, resume=True, progress=False).read_text())["data"]["cells"][0]
    assert again["step_weights"] == first and again["generated_now"] == 0
    assert (cell / "images" / "00000.png").stat().st_mtime_ns == stamp  # nothing rewritten


def test_python_generator_with_a_noise_level_schedule_records_unknown_weights() -> None:
    from audit.generators import GenerationRequest, get_generator
    from audit.guidance import get_schedule

    schedule = get_schedule("interval", 2.0, sigma_lo=0.5, sigma_hi=3.0)
    batch = get_generator("python:tests.generator_fixtures:grey_squares").generate(
        GenerationRequest(seeds=(1, 2), schedule=schedule, labels=(0, 1))
    )
    assert batch.step_weights == [] and "unknown" in batch.info["step_weights"]


def test_the_card_names_block_resampling_only_when_a_cell_used_it(straight_run) -> None:
    from reports import bench_card

    doc = json.loads(straight_run.read_text())

    def notes(d: dict) -> str:
        card = bench_card.build(d)
        return " ".join(n for s in card["sections"] for n in s.get("notes", []))

    assert "resampled by blocks" not in notes(doc)  # 140 images a cell: image-by-image draws
    doc["data"]["cells"][0]["metrics"]["fid"]["ci_method"] = "block-bootstrap"
    assert "resampled by blocks of generated images" in notes(doc)


def test_results_compare_every_schedule_with_static_at_the_same_clip_score(straight_run) -> None:
    data = json.loads(straight_run.read_text())["data"]
    found = data["matched_vs_static"]["clip_score"]
    cells = {c["label"]: c for c in data["cells"]}
    static = [c for c in data["cells"] if c["schedule"]["name"] == "static"]
    static.sort(key=lambda c: c["schedule"]["scale"])
    curve = [(c["metrics"]["clip_score"]["value"], c["metrics"]["fid"]["value"]) for c in static]
    rising = [curve[0]]
    for a, f in curve[1:]:  # the rising part of static's curve, by hand
        if a > rising[-1][0]:
            rising.append((a, f))
    compared = {r["label"] for r in found["rows"]} | {o["label"] for o in found["outside"]}
    assert compared == {"linear @ 1", "linear @ 3", "cosine @ 1", "cosine @ 3"}
    for row in found["rows"]:
        a = cells[row["label"]]["metrics"]["clip_score"]["value"]
        assert row["static_fid"] == pytest.approx(np.interp(a, *zip(*rising, strict=True)))
        assert row["diff"] == pytest.approx(cells[row["label"]]["metrics"]["fid"]["value"] - row["static_fid"])
    for outside in found["outside"]:
        assert not rising[0][0] <= outside["adherence"] <= rising[-1][0]
    assert found["readings"]["sentence"] in data["verdict"]["sentence"]
    assert data["verdict"]["sentence"].index("at the same scale") < data["verdict"]["sentence"].index("At the same")


def test_cli_pairs_every_cell_with_and_without_a_three_branch_negative_prompt(tmp_path, capsys) -> None:
    """--negative-prompt with --negative-weight (three branches) and --pair-negative on a tiny random Stable
    Diffusion pipeline: the cells without the negative prompt are a run of their own with the same seeds, and
    each cell's differences are the two runs' values subtracted."""
    import csv

    from audit.cli import main
    from tests.diffusers_fixtures import save_tiny_sd

    pipe = save_tiny_sd(tmp_path / "sd")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of the digit 3\na photo of the digit 7\n", encoding="utf-8")
    out = tmp_path / "run"
    common = ["bench", "--generator", f"diffusers:{pipe}", "--prompts", str(prompts), "--schedules", "static",
              "--scales", "2", "--no-baseline", "--n", "130", "--steps", "3", "--bootstrap", "10",
              "--batch-size", "65"]  # fmt: skip
    args = [*common, "--negative-prompt", "<i>blurry</i>", "--negative-weight", "1.5", "--pair-negative"]
    assert main([*args, "--out", str(out)]) == 0, capsys.readouterr().err
    data = json.loads((out / "bench-results.json").read_text())["data"]
    without = json.loads((out / "without-negative" / "bench-results.json").read_text())["data"]
    pairs = data["negative_pairs"]
    assert pairs["negative_weight"] == 1.5 and pairs["form"] == "three-branch"
    (row,) = pairs["rows"]
    fid_with, fid_without = data["cells"][0]["metrics"]["fid"]["value"], without["cells"][0]["metrics"]["fid"]["value"]
    assert row["label"] == "static @ 2" and row["metrics"]["fid"]["diff"] == pytest.approx(fid_with - fid_without)
    lo, hi = row["metrics"]["fid"]["ci95"]
    assert lo <= row["metrics"]["fid"]["diff"] <= hi
    with (out / "cells" / "static" / "2.0" / "manifest.csv").open(encoding="utf-8") as fh:
        first = next(csv.DictReader(fh))
    assert first["negative_prompt"] == "<i>blurry</i>" and float(first["negative_weight"]) == 1.5
    # the cells without the negative prompt are exactly a plain run's images (same conditions and seeds)
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    for i in (0, 77, 129):
        name = f"cells/static/2.0/images/{i:05d}.png"
        assert (out / "without-negative" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()
    first_image = "cells/static/2.0/images/00000.png"
    assert (out / first_image).read_bytes() != (tmp_path / "plain" / first_image).read_bytes()  # guided away
    html = (out / "bench-results.html").read_text(encoding="utf-8")
    assert "With and without the negative prompt" in html and "<i>blurry</i>" not in html


def test_a_reference_of_many_sizes_scores_as_the_images_at_one_size(tmp_path) -> None:
    """The held-out digits kept at 8, 16 and 24 px (each pixel a block) are the held-out digits to an extractor
    that resizes each image from its own size: every cell's metrics equal those against the built-in reference."""
    from PIL import Image

    from audit.zoo import digits

    held, _ = digits.load_split("heldout")
    (tmp_path / "ref").mkdir()
    for i, image in enumerate(held):
        k = 1 + i % 3
        Image.fromarray(np.kron(image, np.ones((k, k), dtype=np.uint8))).save(tmp_path / "ref" / f"{i:03d}.png")
    common = {
        "schedules": ({"name": "static"},),
        "scales": (1.0,),
        "n": 130,
        "steps": 4,
        "bootstrap": 0,
        "baseline": False,
    }
    metrics = []
    for name, reference in (("builtin", "embedded:digits-heldout"), ("mixed", str(tmp_path / "ref"))):
        path = run_bench(BenchConfig(**common, reference=reference), tmp_path / name, progress=False)
        data = json.loads(Path(path).read_text())["data"]
        metrics.append(data["cells"][0]["metrics"])
    assert data["reference"]["sizes"] == 3 and data["reference"]["n"] == len(held)
    assert metrics[1]["fid"]["value"] == pytest.approx(metrics[0]["fid"]["value"], rel=1e-6)
    for name, value in metrics[0].items():
        if isinstance(value, dict):
            assert metrics[1][name]["value"] == pytest.approx(value["value"], rel=1e-6, abs=1e-9), name
        else:
            assert metrics[1][name] == value, name  # n_real, n_fake, extractor, seed
