"""Scale-out: shards (``--shard K/N``) and the Ray executor give the one-process run's results, every number,
through kills of a shard process, a Ray worker and the Ray driver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from audit.errors import InputError
from audit.scale.shards import Shard, ShardMarker

BACKEND = "dlib-agegender"


def test_shards_cover_every_index_once_in_contiguous_ranges() -> None:
    for total in (0, 1, 7, 100, 101):
        for n in (1, 2, 3, 8):
            ranges = [Shard(k, n).range(total) for k in range(n)]
            assert [i for r in ranges for i in r] == list(range(total))
            assert all(len(r) in (total // n, total // n + 1) for r in ranges)
    assert Shard.parse(" 2/ 5") == Shard(2, 5) and Shard(2, 5).name == "00002-of-00005"
    for bad in ("5/5", "1/0", "-1/3", "a/b", "3"):
        with pytest.raises(InputError, match=r"K/N|0\.\.N-1"):
            Shard.parse(bad)


def test_a_ray_rerun_keeps_the_first_shard_count_and_says_so_when_told_otherwise(tmp_path, caplog) -> None:
    from audit.scale.ray_executor import shard_count

    assert shard_count(tmp_path, "records", 6) == 6  # the first run chooses, and records its choice
    with caplog.at_level("WARNING", logger="audit.scale.ray_executor"):
        assert shard_count(tmp_path, "records", 4) == 6  # default count from fewer workers: silently kept
        assert not caplog.records
        assert shard_count(tmp_path, "records", 4, explicit=True) == 6
    assert "--ray-shards 4 ignored" in caplog.text and "cut into 6 shards" in caplog.text
    assert shard_count(tmp_path, "detect-x", 3, explicit=True) == 3  # another job has its own plan


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """147 items: the 49 images of builtin:faces-demo written once and listed three times in a manifest (a
    file listed twice is two records), so that a shard takes a few seconds and can be killed mid-way."""
    from PIL import Image

    from audit.dataset.builtin import faces_demo

    root = tmp_path_factory.mktemp("scale-data")
    names = []
    for b in faces_demo():
        path = root / f"{b.relpath.rsplit('.', 1)[0]}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(b.load()).save(path)
        names.append((path.relative_to(root).as_posix(), b.label))
    lines = ["path,label"] + [f"{p},{label}" for _ in range(3) for p, label in names]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def one_process(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The reference: the plain one-process audit of the dataset."""
    from audit.dataset.job import run_audit

    out = tmp_path_factory.mktemp("one") / "out"
    run_audit(str(dataset), out, backend=BACKEND, workers=1, progress=False)
    return _outcome(out)


def _outcome(out: Path) -> dict:
    """Everything a run computes (the results' data, audit.json's numbers, every record), provenance aside."""
    doc = json.loads((out / "audit-results.json").read_text())
    audit = json.loads((out / "audit.json").read_text())
    records = sorted((json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()),
                     key=lambda r: r["index"])  # fmt: skip
    return {
        "data": doc["data"], "classes": audit["classes"], "overall": audit["overall"], "records": records,
        "classes_csv": (out / "classes.csv").read_text(), "datasheet": (out / "datasheet.md").read_text(),
    }  # fmt: skip


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "audit.cli", "-q", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def test_three_shard_processes_at_once_then_the_merge_equal_one_process(dataset, one_process, tmp_path) -> None:
    out = tmp_path / "shared"
    args = ("audit", str(dataset), "--backend", BACKEND, "--workers", "1", "--out", str(out))
    procs = [subprocess.Popen(_cli(*args, "--shard", f"{k}/3"), env=_env(), stderr=subprocess.PIPE, text=True)
             for k in range(3)]  # fmt: skip
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read() if p.stderr else ""
    parts = {k: [json.loads(x)["index"] for x in (out / "shards" / "records" / f"{Shard(k, 3).name}.jsonl")
                 .read_text().splitlines()] for k in range(3)}  # fmt: skip
    assert parts == {0: list(range(0, 49)), 1: list(range(49, 98)), 2: list(range(98, 147))}
    assert all(ShardMarker(out, "records", Shard(k, 3)).read()["records"] == 49 for k in range(3))
    assert not (out / "records.jsonl").exists()  # shards never write the shared files
    merge = subprocess.run(_cli(*args), env=_env(), capture_output=True, text=True, timeout=300)
    assert merge.returncode == 0, merge.stderr
    assert _outcome(out) == one_process


def test_a_shard_killed_mid_way_and_run_again_gives_the_uninterrupted_result(dataset, one_process, tmp_path) -> None:
    out = tmp_path / "shared"
    args = ("audit", str(dataset), "--backend", BACKEND, "--workers", "1", "--out", str(out))
    procs = {k: subprocess.Popen(_cli(*args, "--shard", f"{k}/3"), env=_env()) for k in range(3)}
    part = out / "shards" / "records" / f"{Shard(1, 3).name}.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not part.is_file() or part.read_text().count("\n") < 5):
        time.sleep(0.02)
    procs[1].send_signal(signal.SIGKILL)
    assert procs[1].wait(timeout=60) == -signal.SIGKILL
    written = part.read_text().count("\n")
    assert 5 <= written < 49 and not ShardMarker(out, "records", Shard(1, 3)).done()
    assert procs[0].wait(timeout=300) == 0 and procs[2].wait(timeout=300) == 0
    rerun = subprocess.run(_cli(*args, "--shard", "1/3"), env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    indices = [json.loads(x)["index"] for x in part.read_text().splitlines()]
    assert sorted(indices) == list(range(49, 98)) and len(indices) == 49  # none lost, none twice
    # a finished shard is left alone: its marker and part are not rewritten
    marker = ShardMarker(out, "records", Shard(0, 3)).path
    stamp = marker.stat().st_mtime_ns
    again = subprocess.run(_cli(*args, "--shard", "0/3"), env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and marker.stat().st_mtime_ns == stamp
    merge = subprocess.run(_cli(*args), env=_env(), capture_output=True, text=True, timeout=300)
    assert merge.returncode == 0, merge.stderr
    assert _outcome(out) == one_process


def test_the_merge_does_what_no_shard_did_and_refuses_shards_of_another_dataset(dataset, one_process, tmp_path) -> None:
    from audit.dataset.job import run_audit

    out = tmp_path / "partial"
    run_audit(str(dataset), out, backend=BACKEND, workers=1, progress=False, shard=Shard(2, 4))  # only 1 of 4
    run_audit(str(dataset), out, backend=BACKEND, workers=2, progress=False)  # the rest, then the merge
    assert _outcome(out) == one_process
    changed = r"started with other inputs or settings \(backend: 'dlib\+agegender' -> 'opencv-haar"
    with pytest.raises(InputError, match=changed):
        run_audit(str(dataset), out, backend="opencv-haar", workers=1, progress=False, shard=Shard(0, 2))
    # a part that names another file at an index (a hand-copied shard of another dataset) is refused
    other = tmp_path / "other"
    run_audit(str(dataset), other, backend=BACKEND, workers=1, progress=False, shard=Shard(0, 8))
    part = other / "shards" / "records" / f"{Shard(0, 8).name}.jsonl"
    rows = [json.loads(x) for x in part.read_text().splitlines()]
    rows[3]["image"] = "elsewhere/x.png"
    part.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"item 3 was 'elsewhere/x\.png' and is now 'portrait/tom_hanks\.png'"):
        run_audit(str(dataset), other, backend=BACKEND, workers=1, progress=False)


# ------------------------------------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray of 2 CPUs for this module's Ray tests, with a small object store."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, object_store_memory=80 * 1024 * 1024, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}})  # fmt: skip
    yield ray
    ray.shutdown()


def _worker_pids(title: str = r"ray::MapWorker\(MapBatches\(ShardRecorder\)\)") -> list[int]:
    """Ray worker processes by title (a regular expression): the audit's Ray Data actors by default."""
    found = subprocess.run(["pgrep", "-f", title], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


@pytest.mark.ray
@pytest.mark.slow
def test_ray_with_a_worker_killed_mid_run_equals_one_process(
    dataset, one_process, ray_cluster, tmp_path, monkeypatch
) -> None:
    """Records leave the actors two at a time (blocks of one batch), so the kill lands in a shard part of whose
    records the driver already holds: Ray retries it on the restarted actor, which must yield the same
    blocks again (it lists against the part as it was planned), and every index is written once."""
    from audit.dataset.job import run_audit
    from audit.scale.ray_executor import RayOptions

    monkeypatch.setattr("audit.scale.ray_data_audit.RECORD_BLOCK_BYTES", 1)
    out = tmp_path / "ray"
    options = RayOptions(workers=2, shards=6, batch_size=2)
    sizes = [len(Shard(k, 6).range(147)) for k in range(6)]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_audit(str(dataset), out, backend=BACKEND, workers=1, progress=False, executor=options)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    parts = out / "shards" / "records"
    deadline = time.monotonic() + 120
    killed, at_kill = None, []
    while time.monotonic() < deadline and killed is None:
        at_kill = [_lines(parts / f"{Shard(k, 6).name}.jsonl") for k in range(6)]
        pids = _worker_pids()
        if sum(at_kill) >= 5 and pids:
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    thread.join(timeout=600)
    assert killed is not None and not errors, errors
    assert any(0 < n < size for n, size in zip(at_kill, sizes, strict=True)), at_kill  # records came mid-shard
    assert all(ShardMarker(out, "records", Shard(k, 6)).done() for k in range(6))
    lines = [json.loads(x)["index"] for p in parts.glob("*.jsonl") for x in p.read_text().splitlines()]
    assert sorted(lines) == list(range(147))  # no row lost or written twice across the restart
    assert _outcome(out) == one_process


def _lines(path: Path) -> int:
    try:
        return path.read_text().count("\n")
    except OSError:
        return 0


@pytest.mark.ray
@pytest.mark.slow
def test_ray_data_reads_webdataset_and_parquet_as_a_local_run_does(ray_cluster, tmp_path) -> None:
    """The audit on Ray Data over a tar of image + cls members and a folder of Parquet files of image bytes
    (with an empty cell, a member that is not an image and a file cut in half): every record and statistic
    equals the local run's."""
    import io
    import tarfile

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from audit.dataset.builtin import faces_demo
    from audit.dataset.job import run_audit
    from audit.scale.ray_executor import RayOptions

    pngs = []
    for b in faces_demo():
        buf = io.BytesIO()
        Image.fromarray(b.load()).save(buf, format="PNG")
        pngs.append((buf.getvalue(), b.label))
    pngs.append((b"not an image", "junk"))
    captions = [f"a photo of {label} number {i}" for i, (_, label) in enumerate(pngs)]  # scored on Ray as locally
    with tarfile.open(tmp_path / "people.tar", "w") as tar:
        for i, (data, label) in enumerate(pngs):
            members = ((f"{i:03d}.png", data), (f"{i:03d}.cls", label.encode()), (f"{i:03d}.txt", captions[i].encode()))
            for name, payload in members:
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    rows = [{"image": data, "label": label, "caption": c} for (data, label), c in zip(pngs, captions, strict=True)]
    rows.append({"image": b"", "label": "empty", "caption": "nothing"})
    (tmp_path / "tables").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "tables" / "people.parquet", row_group_size=7)
    whole = (tmp_path / "tables" / "people.parquet").read_bytes()
    (tmp_path / "tables" / "torn.parquet").write_bytes(whole[: len(whole) // 2])  # one record, not the run's end
    import ray.data

    context = ray.data.DataContext.get_current()  # the caller's settings, left as they were
    settings = (context.target_max_block_size, context.execution_options.preserve_order, context.enable_progress_bars)
    for spec in ("people.tar", "tables"):
        local, on_ray = tmp_path / f"local-{spec}", tmp_path / f"ray-{spec}"
        run_audit(str(tmp_path / spec), local, backend="opencv-haar", workers=1, progress=False)
        run_audit(str(tmp_path / spec), on_ray, backend="opencv-haar", workers=1, progress=False,
                  executor=RayOptions(workers=2, shards=3, batch_size=4))  # fmt: skip
        expected = _outcome(local)
        assert len(expected["records"]) == len(pngs) + 2 * (spec == "tables")
        assert expected["data"]["overall"]["faces"] > 0 and expected["data"]["unreadable"]["count"] >= 1
        assert sum("caption_score" in r for r in expected["records"]) == len(pngs) - 1  # every readable image
        assert _outcome(on_ray) == expected, spec
    assert (context.target_max_block_size, context.execution_options.preserve_order,
            context.enable_progress_bars) == settings  # fmt: skip


@pytest.mark.ray
def test_ray_data_missing_weights_are_the_local_one_line(dataset, ray_cluster, tmp_path) -> None:
    """An actor whose backend cannot be built fails the run with the error a local run gives, not an actor's
    death and Ray Data's traceback."""
    from audit.dataset.job import run_audit
    from audit.errors import WeightsError
    from audit.scale.ray_executor import RayOptions

    with pytest.raises(WeightsError, match=r"^mtcnn weights folder \S+ has no pnet\.pt \(needs pnet, rnet, onet\)$"):
        run_audit(str(dataset), tmp_path / "out", backend=f"mtcnn:{tmp_path / 'none'}", workers=1, progress=False,
                  executor=RayOptions(workers=1, shards=2))  # fmt: skip


def test_a_job_error_comes_out_of_rays_wrappers_as_its_own_one_line() -> None:
    """Ray raises a remote error as a class that subclasses both its own wrapper and the error's class, its
    text the whole remote traceback, the original in ``cause``; Ray Data appends its retry note to the
    message. What reaches the user is the error's class and its own line."""
    from audit.errors import WeightsError
    from audit.scale.ray_executor import job_error

    own = WeightsError("mtcnn weights folder /w has no pnet.pt (needs pnet, rnet, onet)")
    own.args = (
        f"{own.args[0]}\nFailed to apply UDF transform after 1/1 attempts (total backoff 0.0s).\nTo change retry "
        "attempts, configure `ray.data.DataContext.get_current()` if you believe this to be transient.",
    )

    class RemoteWeightsError(RuntimeError, WeightsError):  # the shape of ray.exceptions.RayTaskError(WeightsError)
        def __init__(self, cause: BaseException) -> None:
            super().__init__(f'ray::MapWorker.submit() (pid=1)\n  File "x.py", line 1\n{type(cause).__name__}')
            self.cause = cause

    found = job_error(RemoteWeightsError(own))
    assert type(found) is WeightsError
    assert str(found) == "mtcnn weights folder /w has no pnet.pt (needs pnet, rnet, onet)"
    # Ray Data's traceback text alone: the error's line in it
    text = RuntimeError("Traceback ...\naudit.errors.InputError: shard 0-of-2: item 3 was 'a' and is now 'b'\nmore")
    assert (type(job_error(text)), str(job_error(text))) == (InputError, "shard 0-of-2: item 3 was 'a' and is now 'b'")
    assert job_error(RuntimeError("a Ray error of its own")) is None


@pytest.mark.ray
@pytest.mark.slow
def test_ray_driver_killed_then_rerun_does_only_unfinished_shards(dataset, one_process, tmp_path) -> None:
    out = tmp_path / "driver"
    args = ("audit", str(dataset), "--backend", BACKEND, "--out", str(out), "--executor", "ray",
            "--ray-workers", "2", "--ray-shards", "6")  # fmt: skip
    driver = subprocess.Popen(_cli(*args), env=_env(), start_new_session=True)
    folder = out / "shards" / "records"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list(folder.glob("*.done"))) < 2:
        time.sleep(0.02)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
    driver.wait(timeout=60)
    done_before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.done")}
    assert 2 <= len(done_before) < 6
    rerun = subprocess.run(_cli(*args), env=_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    after = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.done")}
    assert len(after) == 6 and all(after[name] == stamp for name, stamp in done_before.items())
    assert _outcome(out) == one_process


def test_ray_errors_are_one_line(dataset, tmp_path) -> None:
    unreachable = subprocess.run(
        _cli("audit", str(dataset), "--out", str(tmp_path / "x"), "--executor", "ray:127.0.0.1:9"),
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith("genaudit: error: cannot start or reach Ray at 127.0.0.1:9")
    assert unreachable.stderr.count("\n") == 1
    both = subprocess.run(_cli("audit", str(dataset), "--shard", "0/2", "--executor", "ray"), env=_env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert both.returncode == 2 and "give one of them" in both.stderr


# ----------------------------------------------------------------------------------------------------- bench


def _bench_numbers(path: Path) -> dict:
    """Every number of a bench results document but its provenance and timings."""
    doc = json.loads(path.read_text())
    data = doc["data"]
    for cell in data["cells"]:
        cell.pop("seconds", None)
        cell.pop("generated_now", None)
    return data


@pytest.fixture(scope="module")
def bench_config():
    from audit.bench import BenchConfig

    return BenchConfig(
        generator="embedded:digits-ddpm", schedules=({"name": "static"}, {"name": "linear"}), scales=(2.0,),
        n=140, steps=4, bootstrap=10, training="builtin:digits-train",
    )  # fmt: skip


def test_a_bench_shard_refuses_an_n_no_cell_could_be_scored_with_before_sampling(bench_config, tmp_path) -> None:
    from dataclasses import replace

    from audit.bench import run_bench

    small = replace(bench_config, n=128, training=None)  # the embedded extractor's 128-d space: n must exceed it
    with pytest.raises(InputError, match=r"n = 128 images per cell cannot give a FID .* use --n 129 or more"):
        run_bench(small, tmp_path, shard=Shard(1, 3), progress=False)
    assert not (tmp_path / "cells").exists() and not list(tmp_path.rglob("*.png"))  # nothing was sampled


@pytest.fixture(scope="module")
def bench_one_process(bench_config, tmp_path_factory) -> dict:
    from audit.bench import run_bench

    return _bench_numbers(run_bench(bench_config, tmp_path_factory.mktemp("bench") / "one", progress=False))


def test_bench_shards_then_the_merge_equal_one_process_and_extract_each_image_once(
    bench_config, bench_one_process, tmp_path, monkeypatch
) -> None:
    from audit.bench import run_bench
    from audit.generators.embedded import EmbeddedDigitsGenerator
    from audit.metrics.evaluator import FeatureCache

    out = tmp_path / "sharded"
    for k in (2, 0, 1):  # any order
        assert run_bench(bench_config, out, shard=Shard(k, 3), progress=False) is None
    assert all(ShardMarker(out, "bench", Shard(k, 3)).done() for k in range(3))
    parts = sorted((out / "shards" / "bench").glob("*.features.npz"))
    # 3 cells (baseline too) and every third of the 297 held-out reference digits
    assert [len(FeatureCache(p)._rows) for p in parts] == [46 * 3 + 99, 47 * 3 + 99, 47 * 3 + 99]
    # and every third of the 1,500 training digits, kept apart for the memorization check
    training = sorted((out / "shards" / "bench").glob("*.training.npz"))
    assert [len(FeatureCache(p)._rows) for p in training] == [500, 500, 500]
    extracted = []
    original = FeatureCache.extract

    def counting(self, extractor, images):
        before = self.extracted
        result = original(self, extractor, images)
        extracted.append(self.extracted - before)
        return result

    def not_here(*args, **kwargs):
        raise AssertionError("the merge sampled an image (the shards kept every cell's step weights)")

    monkeypatch.setattr(FeatureCache, "extract", counting)
    monkeypatch.setattr(EmbeddedDigitsGenerator, "generate", not_here)
    results = run_bench(bench_config, out, progress=False)  # the merge: no --resume needed after shards
    monkeypatch.undo()
    assert sum(extracted) == 0  # every generated, reference and training image came from a shard
    assert _bench_numbers(results) == bench_one_process
    assert bench_one_process["memorization"]["training"]["images"] == 1500
    assert len(FeatureCache(out / "features.npz")._rows) == 3 * 140 + 297  # no training features in the cache
    weights = [json.loads((d / "step-weights.json").read_text()) for d in sorted((out / "cells").glob("*/*"))]
    assert len(weights) == 3 and all(len(w) == bench_config.steps for w in weights)


def test_a_damaged_training_part_is_skipped_not_fatal(tmp_path, caplog) -> None:
    from audit.bench.run import _training_cache
    from audit.metrics.evaluator import FeatureCache

    good = FeatureCache(tmp_path / "0-of-2.training.npz")
    good._rows = {"a": {"features": np.ones(3, np.float32)}, "b": {"features": np.zeros(3, np.float32)}}
    good.save()
    (tmp_path / "1-of-2.training.npz").write_bytes(b"PK\x03\x04 cut short")
    cache = _training_cache(tmp_path)
    assert sorted(cache._rows) == ["a", "b"]
    np.testing.assert_array_equal(cache._rows["a"]["features"], np.ones(3))
    assert "1-of-2.training.npz is unreadable" in caplog.text  # FeatureCache's warning, never fatal


@pytest.mark.ray
@pytest.mark.slow
def test_bench_on_ray_equals_one_process(bench_config, bench_one_process, ray_cluster, tmp_path, monkeypatch) -> None:
    """Sampling, extraction and scoring all on Ray: the driver's own evaluator is never called."""
    from audit.bench import run_bench
    from audit.metrics import evaluator
    from audit.scale.ray_executor import RayOptions

    def not_here(*args, **kwargs):
        raise AssertionError("a cell was scored on the driver")

    monkeypatch.setattr(evaluator, "evaluate_features", not_here)  # patched in this process only, not in workers
    results = run_bench(bench_config, tmp_path / "ray", executor=RayOptions(workers=2, shards=4), progress=False)
    assert all(ShardMarker(tmp_path / "ray", "bench", Shard(k, 4)).done() for k in range(4))
    assert _bench_numbers(results) == bench_one_process


# ---------------------------------------------------------------------------------------------------- detect


@pytest.fixture(scope="module")
def digit_folders(tmp_path_factory) -> dict[str, Path]:
    """24 held-out real digits and 24 of the embedded model's samples, as PNG files."""
    from PIL import Image

    from audit.generators.base import GenerationRequest
    from audit.generators.embedded import EmbeddedDigitsGenerator
    from audit.guidance import get_schedule
    from audit.zoo import digits

    root = tmp_path_factory.mktemp("detect-scale")
    real, _ = digits.load_split("heldout")
    request = GenerationRequest(seeds=tuple(range(500, 524)), schedule=get_schedule("static", 1.0), steps=10,
                                labels=tuple(i % 10 for i in range(24)))  # fmt: skip
    fake = EmbeddedDigitsGenerator().generate(request).images
    folders = {"real": root / "real", "fake": root / "fake"}
    for folder in folders.values():
        folder.mkdir()
    for i in range(24):
        Image.fromarray(real[i]).convert("RGB").save(folders["real"] / f"r{i:02d}.png")
        Image.fromarray(fake[i]).save(folders["fake"] / f"f{i:02d}.png")
    (folders["fake"] / "broken.png").write_bytes(b"not an image")
    return folders


SCORER = {"name": "diffusion-loss", "k": 4, "noise_sets": 1, "classes": "auto"}


def _evaluation(out: Path) -> dict:
    return {**_evaluation_or_detections(out), "evaluation": json.loads((out / "evaluation.json").read_text())}


def test_detect_evaluate_shards_then_the_merge_equal_one_process(digit_folders, tmp_path, monkeypatch) -> None:
    from detectors import job
    from detectors.feature_shards import feature_job, feature_journal

    kw = dict(scorer_config=SCORER, draws=50)
    real, fake = [str(digit_folders["real"])], [str(digit_folders["fake"])]
    job.evaluate(real, fake, tmp_path / "one", **kw)
    out = tmp_path / "sharded"
    for k in (1, 0, 2):
        assert job.evaluate(real, fake, out, shard=Shard(k, 3), **kw) is None
    from detectors.noise_model import load_noise_model

    model = load_noise_model(job.DEFAULT_MODEL)
    scorer = job.build_scorer(SCORER, model)
    assert len(feature_journal(out, model, scorer).rows()) == 48  # every readable image, once (the broken one: none)
    assert all(ShardMarker(out, feature_job(model, scorer), Shard(k, 3)).done() for k in range(3))
    scored = []
    original = job._features_by_size
    monkeypatch.setattr(job, "_features_by_size", lambda m, s, ims: scored.append(len(ims)) or original(m, s, ims))
    job.evaluate(real, fake, out, **kw)
    monkeypatch.undo()
    unperturbed = sum(scored) - 48 * len(job.PERTURBATIONS)
    assert unperturbed == 0  # the merge scores only the perturbation sweep's re-encoded copies
    assert _evaluation(out) == _evaluation(tmp_path / "one")


def test_detect_with_a_saved_detector_in_shards_equals_one_process(digit_folders, tmp_path) -> None:
    from detectors import job

    det = job.calibrate([str(digit_folders["real"])], [str(digit_folders["fake"])], tmp_path / "det.json",
                        scorer_config=SCORER)  # fmt: skip
    inputs = [str(digit_folders["fake"]), str(digit_folders["real"])]
    job.detect(inputs, tmp_path / "one", detector_file=det)
    for k in range(2):
        job.detect(inputs, tmp_path / "sharded", detector_file=det, shard=Shard(k, 2))
    job.detect(inputs, tmp_path / "sharded", detector_file=det)
    one, sharded = _evaluation_or_detections(tmp_path / "one"), _evaluation_or_detections(tmp_path / "sharded")
    assert one == sharded and "broken.png" in one["detections"]
    with pytest.raises(InputError, match="detect --shard needs a calibrated detector"):
        job.detect(inputs, tmp_path / "fresh", shard=Shard(0, 2))
    # the same images as members of one webdataset tar shard (read by offset) get the same scores
    import tarfile

    with tarfile.open(tmp_path / "images.tar", "w") as tar:
        for folder in (digit_folders["fake"], digit_folders["real"]):
            for path in sorted(folder.iterdir()):
                tar.add(path, arcname=path.name)
    job.detect([str(tmp_path / "images.tar")], tmp_path / "tar", detector_file=det, shard=Shard(1, 2))
    job.detect([str(tmp_path / "images.tar")], tmp_path / "tar", detector_file=det)

    def scores(out: Path) -> dict[str, str]:
        import csv

        rows = csv.DictReader((out / "detections.csv").open())
        return {Path(r["path"]).name.split(".")[0]: (r["score"], r["reason"]) for r in rows}

    assert scores(tmp_path / "tar") == scores(tmp_path / "one") and len(scores(tmp_path / "one")) == 49
    with pytest.raises(InputError, match="not compressed tars: decompress first"):
        job.detect([str(tmp_path / "images.tar.gz")], tmp_path / "gz", detector_file=det)
    # and as rows of a Parquet table (HuggingFace {bytes, path} structs in a column named "img", row groups of
    # 10), read back by row when scored: the same scores, sharded or not, and a row without bytes gets a reason
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"key": p.name, "img": {"bytes": p.read_bytes(), "path": p.name}}
        for folder in (digit_folders["fake"], digit_folders["real"])
        for p in sorted(folder.iterdir())
    ]
    rows.append({"key": "nothing.png", "img": None})  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "images.parquet", row_group_size=10)
    table = [str(tmp_path / "images.parquet")]
    job.detect(table, tmp_path / "parquet", detector_file=det, shard=Shard(0, 2), image_column="img")
    job.detect(table, tmp_path / "parquet", detector_file=det, image_column="img")
    from_table = scores(tmp_path / "parquet")
    assert from_table.pop("nothing") == ("", "empty")
    assert from_table == scores(tmp_path / "one")
    with pytest.raises(InputError, match="no image column 'image'"):
        job.detect(table, tmp_path / "parquet-wrong", detector_file=det)


def _evaluation_or_detections(out: Path) -> dict:
    data = json.loads((out / "detect-results.json").read_text())["data"]
    for cost in data.get("costs", []):
        cost.pop("seconds", None)
        cost.pop("images_per_second", None)
    return {"data": data, "detections": (out / "detections.csv").read_text()}


@pytest.mark.ray
@pytest.mark.slow
def test_detect_evaluate_on_ray_equals_one_process(digit_folders, ray_cluster, tmp_path) -> None:
    import torch

    from audit.scale.ray_executor import RayOptions
    from detectors import job

    kw = dict(scorer_config=SCORER, draws=50)
    real, fake = [str(digit_folders["real"])], [str(digit_folders["fake"])]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker runs: float32 convolutions round by their thread count
    try:
        job.evaluate(real, fake, tmp_path / "one", **kw)
    finally:
        torch.set_num_threads(threads)
    job.evaluate(real, fake, tmp_path / "ray", executor=RayOptions(workers=2, shards=4), progress=False, **kw)
    assert _evaluation(tmp_path / "ray") == _evaluation(tmp_path / "one")


def test_ray_missing_extra_and_missing_gpus_are_one_clear_error(monkeypatch) -> None:
    from audit.scale import ray_executor
    from audit.scale.ray_executor import RayOptions, plan

    class Cluster:
        def __init__(self, **resources: float) -> None:
            self.resources = resources

        def cluster_resources(self) -> dict[str, float]:
            return self.resources

    with pytest.raises(InputError, match=r"has 1 GPU\(s\); 4 worker\(s\) x 0.5 GPU\(s\) were asked for"):
        plan(Cluster(CPU=16, GPU=1), RayOptions(workers=4, gpus=0.5))
    assert plan(Cluster(CPU=16, GPU=2), RayOptions(gpus=0.5)) == (4, {"num_gpus": 0.5, "num_cpus": 1})
    assert plan(Cluster(CPU=2), RayOptions()) == (2, {"num_cpus": 1})
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(InputError, match=r'pip install "genaudit\[ray\]"'):
        ray_executor._ray()
