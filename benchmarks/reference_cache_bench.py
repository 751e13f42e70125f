"""The reference pass of a bench run, the first time and when an earlier run kept its features.

A folder of N JPEGs of several sizes (photo-like: smooth random fields, 200-320 px a side) is the reference;
the extractor is clean-fid's Inception-v3 architecture with random weights (the same network and clean
resize as ``inception``, loaded through the same loader; no pretrained weights exist offline here). Timed, in
one process, one after another:

- **clean-fid** (the anchor): ``cleanfid.fid.get_folder_features(folder, model, mode="clean")``, the pass a
  clean-fid user makes for a reference (``make_custom_stats`` runs it once, then keeps a mean and covariance);
- **genaudit, first run**: the bench's reference pass (``audit.bench.run._reference_outputs``: the one
  loader, streamed extraction, then the features kept in the cache);
- **genaudit, a later run**: the same call when the kept file exists (the listing is read and stat'ed, the
  file loaded; no image decoded).

Prints each time, the ratio of the first pass to clean-fid's, and the later run's saving.

Usage: python benchmarks/reference_cache_bench.py [--n 400]   (about 4 minutes on 2 cores at 400)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_reference(folder: Path, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        w, h = (int(s) for s in rng.integers(200, 321, 2))
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC).save(folder / f"{i:05d}.jpg", quality=90)


def main() -> None:
    import torch
    from cleanfid import fid as cleanfid

    from audit.bench.run import _reference_outputs
    from audit.features import get_extractor
    from audit.metrics.evaluator import FeatureCache
    from tests.feature_fixtures import save_random_inception_torchscript

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="reference images")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["GENAUDIT_CACHE_DIR"] = str(root / "cache")
        write_reference(root / "ref", args.n)
        weights = save_random_inception_torchscript(root / "weights")
        inception = get_extractor(f"inception:{weights}", device="cpu")
        inception(np.zeros((4, 299, 299, 3), np.uint8))  # warm up the network first: neither side pays for it
        started = time.perf_counter()
        theirs = cleanfid.get_folder_features(str(root / "ref"), model=inception.net, num_workers=0, batch_size=64,
                                              device=torch.device("cpu"), mode="clean", verbose=False)  # fmt: skip
        anchor = time.perf_counter() - started
        started = time.perf_counter()
        first, _, kept = _reference_outputs(str(root / "ref"), inception, FeatureCache())
        cold = time.perf_counter() - started
        started = time.perf_counter()
        again, _, read = _reference_outputs(str(root / "ref"), inception, FeatureCache())
        warm = time.perf_counter() - started
        assert read.startswith("read from") and np.array_equal(again["features"], first["features"])
        gap = np.abs(first["features"] - theirs).max() / np.abs(theirs).max()
        size = Path(read.removeprefix("read from ")).stat().st_size
        print(f"{args.n} JPEGs, 200-320 px; Inception-v3 (random weights), CPU, {torch.get_num_threads()} threads")
        print(f"clean-fid get_folder_features:         {anchor:7.1f} s")
        print(f"genaudit reference pass, first run:    {cold:7.1f} s  ({anchor / cold:.2f}x clean-fid's speed; "
              f"features within {gap:.1e} of clean-fid's, relative)")  # fmt: skip
        print(f"genaudit reference pass, a later run:  {warm:7.2f} s  ({cold / warm:.0f}x faster; kept file "
              f"{size / 1e6:.1f} MB: {kept})")  # fmt: skip


if __name__ == "__main__":
    main()
