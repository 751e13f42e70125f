"""Peak memory against dataset size: does each job stream its inputs (issue 19, section 6)?

Usage: python benchmarks/streaming_bench.py [--sizes 1000 10000 100000] [--jobs reference whole audit detect]

For each size N, a folder of N small PNGs (32 x 32, ten class folders) is written once under
``--data`` (default /tmp/genaudit-streaming), and each job runs in a fresh child process that reports
its own peak resident memory (``ru_maxrss``) and wall time:

- ``reference``: the bench's reference pass as it runs now: ``reference_chunks`` (256 images at a time)
  through the feature cache with the embedded extractor (``extract_all``);
- ``whole``: the anchor, the reference pass as it ran before: every image decoded into one array,
  then one extraction call;
- ``audit``: ``run_audit`` with the ``opencv-haar`` backend, one worker, on the same images plus the
  packaged face photos (so that the age/gender model, loaded at the first face, is loaded at every N);
- ``detect``: ``detect`` with the embedded noise model and a cheap diffusion-loss scorer (K = 2, one noise
  set; a detector calibrated once, before the timings, on 200 of these images split by class: its
  memory is measured, not its quality).

Peak memory is the larger of the job's process (VmHWM) and its largest worker process (the audit
analyses images in a worker). Flat means the peak does not grow with N beyond what the outputs
themselves need (features: 64 floats per image for the embedded extractor; records: one row per image).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_folder(root: Path, n: int) -> Path:
    """N smooth random 32 x 32 PNGs in ten class folders (written once, reused)."""
    from PIL import Image

    folder = root / f"n{n}"
    done = folder / ".complete"
    if done.is_file():
        return folder
    rng = np.random.default_rng(n)
    for c in range(10):
        (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((32, 32), Image.Resampling.BICUBIC)
        image.save(folder / f"class{i % 10}" / f"{i:06d}.png", compress_level=1)
    done.write_text("ok")
    return folder


def with_faces(folder: Path) -> Path:
    """``folder``'s images (hard links) plus the packaged face photos as a class ``faces``: every audit then
    finds faces and loads the age/gender model, whatever N (a model loaded at one size and not at another
    would be counted as growth)."""
    from PIL import Image

    from audit.dataset.builtin import faces_demo

    out = folder.with_name(folder.name + "-faces")
    done = out / ".complete"
    if done.is_file():
        return out
    for path in sorted(folder.rglob("*.png")):
        target = out / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(path, target)
    (out / "faces").mkdir(exist_ok=True)
    for i, photo in enumerate(faces_demo()):
        Image.fromarray(photo.load()).save(out / "faces" / f"{i:03d}.png")
    done.write_text("ok")
    return out


def child(job: str, folder: str, work: str) -> None:
    import logging

    logging.disable(logging.WARNING)
    start = time.perf_counter()
    if job == "reference":
        from audit.bench.run import reference_chunks
        from audit.features import get_extractor
        from audit.metrics.evaluator import FeatureCache, extract_all

        feats = extract_all(FeatureCache(), get_extractor("embedded"), reference_chunks(folder, {}))
        n = len(feats["features"])
    elif job == "whole":
        from audit.bench.run import load_reference
        from audit.features import get_extractor
        from audit.metrics.evaluator import FeatureCache

        images, _ = load_reference(folder)
        n = len(FeatureCache().extract(get_extractor("embedded"), images)["features"])
    elif job == "audit":
        from audit.dataset.job import run_audit

        run_audit(folder, Path(work) / f"audit-{Path(folder).name}", backend="opencv-haar", workers=1, progress=False)
        with (Path(work) / f"audit-{Path(folder).name}" / "records.jsonl").open("rb") as fh:
            n = sum(1 for _ in fh)  # counted a line at a time: reading the file whole would be measured too
    elif job == "detect":
        from detectors import job as detect_job

        out = Path(work) / f"detect-{Path(folder).name}"
        detect_job.detect([folder], out, detector_file=Path(work) / "detector" / "detector.json", progress=False)
        n = len((out / "detections.csv").read_text().splitlines()) - 1
    else:
        raise SystemExit(f"unknown job {job}")
    print(json.dumps({"job": job, "n": n, "seconds": time.perf_counter() - start, "peak_mib": peak_mib()}))


def peak_mib() -> float:
    """The larger of this process's peak resident memory since exec (VmHWM; ru_maxrss would include the
    parent's image copied at fork) and its largest worker process's (the audit analyses in workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            own = int(line.split()[1]) / 1024
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--jobs", nargs="+", default=["reference", "whole", "audit", "detect"])
    parser.add_argument("--data", default="/tmp/genaudit-streaming")
    parser.add_argument("--child", nargs=3, metavar=("JOB", "FOLDER", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    root = Path(args.data)
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    if "detect" in args.jobs and not (work / "detector" / "detector.json").is_file():
        from detectors import job as detect_job

        small = make_folder(root, 200)  # a detector for these images (its quality is beside the point: its cost)
        halves = [[str(small / f"class{c}") for c in cs] for cs in (range(5), range(5, 10))]
        scorer = {"name": "diffusion-loss", "k": 2, "noise_sets": 1, "classes": "auto"}  # cheap: memory is the point
        detect_job.calibrate(*halves, work / "detector" / "detector.json", scorer_config=scorer)
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'job':10s} {'N':>8s} {'seconds':>9s} {'peak MiB':>9s}")
    for n in args.sizes:
        folder = make_folder(root, n)
        for job in args.jobs:
            for old in (work / f"audit-{folder.name}-faces", work / f"detect-{folder.name}"):
                shutil.rmtree(old, ignore_errors=True)  # every job starts from nothing
            source = with_faces(folder) if job == "audit" else folder
            cmd = [sys.executable, __file__, "--child", job, str(source), str(work)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode:
                print(f"{job:10s} {n:8d} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{job:10s} {row['n']:8d} {row['seconds']:9.1f} {row['peak_mib']:9.0f}", flush=True)


if __name__ == "__main__":
    main()
