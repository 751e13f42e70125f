"""Decode throughput of genaudit's loader against a plain single-threaded PIL loop, and streaming memory.

Usage: python benchmarks/io_bench.py [--n 2000] [--sizes 256 512] [--workers 2] [--memory-n 20000]

1. Throughput: N generated JPEG photos-like images (smooth noise, quality 90) decoded to RGB uint8 by
   (a) the anchor, ``np.asarray(Image.open(p).convert("RGB"))`` in a loop, and (b) genaudit's
   ``iter_images(folder_source(dir), workers=W, executor=...)`` in one process, W threads and W
   processes; it also hashes every file, applies EXIF orientation and checks the pixel limit. Each is
   timed best-of-3 in the same run; the speed relative to the anchor is printed.
2. Memory: peak RSS of a fresh process streaming 1/10 of M images and all M images (small PNGs); flat
   means the two peaks are about equal.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_images(folder: Path, n: int, size: int, fmt: str, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
    for i in range(n):
        small = np.roll(base, i, axis=(0, 1)) // 2 + rng.integers(0, 128, base.shape, dtype=np.uint8)
        im = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        im.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        (folder / f"{i:06d}.{fmt.lower().replace('jpeg', 'jpg')}").write_bytes(buf.getvalue())


def anchor_loop(paths: list[Path]) -> int:
    from PIL import Image

    total = 0
    for p in paths:
        with Image.open(p) as im:
            total += np.asarray(im.convert("RGB")).shape[0]
    return total


def genaudit_loop(folder: Path, workers: int, executor: str = "thread") -> int:
    from audit.io import folder_source, iter_images

    total = 0
    for item in iter_images(folder_source(folder), workers=workers, executor=executor):
        assert item.ok, item.result.message
        total += item.result.image.shape[0]
    return total


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


STREAM_CHILD = """
import resource, sys
sys.path.insert(0, {root!r})
from audit.io import folder_source, iter_images
n = 0
for i, item in enumerate(iter_images(folder_source({folder!r}))):
    if i >= {limit}:
        break
    n += item.ok
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_kib(folder: Path, limit: int) -> tuple[int, int]:
    code = STREAM_CHILD.format(root=str(Path(__file__).resolve().parents[1]), folder=str(folder), limit=limit)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--memory-n", type=int, default=20000)
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            folder = Path(tmp) / f"jpeg{size}"
            make_images(folder, args.n, size, "JPEG")
            paths = sorted(folder.iterdir())
            anchor = best_of(lambda p=paths: anchor_loop(p))
            print(f"decode {args.n} JPEG {size}x{size}:")
            print(f"  anchor PIL loop, 1 process         {args.n / anchor:8.1f} img/s")
            for label, workers, executor in (
                ("genaudit, 1 process", 1, "thread"),
                (f"genaudit, {args.workers} threads", args.workers, "thread"),
                (f"genaudit, {args.workers} processes", args.workers, "process"),
            ):
                t = best_of(lambda f=folder, w=workers, e=executor: genaudit_loop(f, w, e))
                print(f"  {label:<33}{args.n / t:8.1f} img/s  speed vs anchor {anchor / t:.2f}x")
        mem = Path(tmp) / "png"
        make_images(mem, args.memory_n, 64, "PNG", seed=1)
        n_small, rss_small = peak_rss_kib(mem, args.memory_n // 10)
        n_all, rss_all = peak_rss_kib(mem, args.memory_n)
        print(
            f"stream 64x64 PNG: peak RSS {rss_small / 1024:.1f} MiB at {n_small} images, "
            f"{rss_all / 1024:.1f} MiB at {n_all} images (ratio {rss_all / rss_small:.3f})"
        )


if __name__ == "__main__":
    main()
