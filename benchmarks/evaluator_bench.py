"""The one-pass evaluator against torchmetrics' separate metric objects, on the same images and extractor.

Usage: python benchmarks/evaluator_bench.py [--n 600] [--bootstrap 100] [--arch ViT-B-32]

Extractor: an open_clip image tower of ``--arch`` with random weights (the same compute as the
pretrained model; no download), clean PIL preprocessing; ``features`` = the image embedding and
``probs`` = softmax of the embedding (only so that IS has the same cost on both sides; its value means
nothing here). n must exceed the embedding size for FID.

Timed in the same run, each once after a warm-up:
  (a) one extraction pass over the real and generated images (the floor);
  (b) genaudit's ``evaluate``: extraction once + FID, FD, KID, IS, precision, recall, density,
      coverage, Vendi, each with a 95% interval from ``--bootstrap`` draws;
  (c) torchmetrics: ``FrechetInceptionDistance``, ``KernelInceptionDistance`` and ``InceptionScore``
      with the same feature module, each fed the images it needs (so the extractor runs per metric).
Prints (b)/(a) (goal <= 1.2) and (c)/(b) (goal >= 2), and the three values from both sides.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_images(n: int, seed: int, size: int = 64) -> np.ndarray:
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        out.append(np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)))
    return np.stack(out)


class BenchExtractor:
    """An open_clip image tower as a genaudit extractor with ``features`` and ``probs``."""

    outputs = ("features", "probs")

    def __init__(self, arch: str) -> None:
        import open_clip
        import torch

        torch.manual_seed(0)
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(arch, pretrained=None)
        self.model.eval()
        self.id = f"bench:{arch}:random"

    def embed(self, images: np.ndarray) -> np.ndarray:
        import torch
        from PIL import Image

        with torch.no_grad():
            out = []
            for start in range(0, len(images), 64):
                batch = torch.stack([self.preprocess(Image.fromarray(im)) for im in images[start : start + 64]])
                out.append(self.model.encode_image(batch).double().numpy())
        return np.concatenate(out)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        emb = self.embed(images)
        probs = np.exp(emb - emb.max(axis=1, keepdims=True))
        return {"features": emb, "probs": probs / probs.sum(axis=1, keepdims=True)}


def torchmetrics_stack(ext: BenchExtractor, real: np.ndarray, fake: np.ndarray, subset_size: int) -> dict:
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    class Features(torch.nn.Module):
        def __init__(self, logits: bool) -> None:
            super().__init__()
            self.logits = logits
            self.num_features = 512  # read by torchmetrics to size its running sums

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(ext.embed(x.permute(0, 2, 3, 1).numpy().astype(np.uint8)))

    def batches(images: np.ndarray):
        for start in range(0, len(images), 64):
            yield torch.from_numpy(images[start : start + 64]).permute(0, 3, 1, 2)

    fid = FrechetInceptionDistance(feature=Features(False), reset_real_features=False).double()
    kid = KernelInceptionDistance(feature=Features(False), subsets=100, subset_size=subset_size)
    inception = InceptionScore(feature=Features(True), splits=10)
    for b in batches(real):
        fid.update(b, real=True)
        kid.update(b, real=True)
    for b in batches(fake):
        fid.update(b, real=False)
        kid.update(b, real=False)
        inception.update(b)
    kid_mean, _ = kid.compute()
    is_mean, _ = inception.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "is": float(is_mean)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="real and generated images each")
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--arch", default="ViT-B-32")
    args = parser.parse_args()
    import torch

    from audit.metrics.evaluator import FeatureCache, evaluate

    real, fake = make_images(args.n, 0), make_images(args.n, 1)
    ext = BenchExtractor(args.arch)
    ext(real[:8])  # warm-up
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; n = {args.n} + {args.n} images, {args.arch} random weights"
    )

    t = time.perf_counter()
    ext(real)
    ext(fake)
    extraction = time.perf_counter() - t
    print(f"(a) one extraction pass:        {extraction:8.1f} s")

    t = time.perf_counter()
    ours = evaluate(real, fake, ext, cache=FeatureCache(), bootstrap=args.bootstrap, kid_subset_size=args.n // 2)
    suite = time.perf_counter() - t
    print(f"(b) genaudit evaluate (all):    {suite:8.1f} s   = {suite / extraction:.2f}x one pass (goal <= 1.2)")

    t = time.perf_counter()
    theirs = torchmetrics_stack(ext, real, fake, subset_size=args.n // 2)
    stack = time.perf_counter() - t
    print(f"(c) torchmetrics FID+KID+IS:    {stack:8.1f} s   = {stack / suite:.2f}x genaudit (goal >= 2)")
    print(
        f"values  genaudit: FID {ours['fid']['value']:.6g}  KID {ours['kid']['value']:.6g}  "
        f"IS {ours['inception_score']['value']:.6g}"
    )
    print(f"        torchmetrics: FID {theirs['fid']:.6g}  KID {theirs['kid']:.6g}  IS {theirs['is']:.6g}")
    print(
        "(FID and IS match up to float precision; KID draws different random subsets, so it agrees "
        "within its subset std only; IS shuffles differently)"
    )


if __name__ == "__main__":
    main()
