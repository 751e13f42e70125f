"""A user's images that are all JPEGs already: ``detect evaluate --route-jpeg`` on them (issue 20, point 3).

Images from the web arrive as JPEGs, real and generated alike. This check saves every image of
``builtin:digits-mixed`` (297 held-out real digits; the embedded DDPM under five schedules, the GAN and the
Gaussian mixture, 150 a source) as a JPEG of one quality, one folder per generator family, and runs the
product's ``detect evaluate --route-jpeg`` on the folders as a user would (the default scorer, 5 folds, the
robustness sweep, each generator left out). Every input is a recompressed JPEG, so every input goes to the
JPEG route; the figures say how the route fares on files that were recompressed before calibration.

Usage: python benchmarks/jpeg_inputs_check.py [--quality 75] [--out DIR]   (about 3 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def export(root: Path, quality: int) -> dict[str, Path]:
    """Every image of ``builtin:digits-mixed`` as a JPEG of ``quality`` in ``root/FAMILY/``, by family."""
    from PIL import Image

    from detectors.builtin import OTHER_FAMILIES, REAL, digits_mixed

    data = digits_mixed(150)
    folders: dict[str, Path] = {}
    for i, (image, source) in enumerate(zip(data.images, data.source, strict=True)):
        family = "real" if source == REAL else (source if source in OTHER_FAMILIES else "ddpm")
        folder = folders.setdefault(family, root / family)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.jpg", quality=quality)
    return folders


def main() -> None:
    from detectors import job

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", type=int, default=75)
    parser.add_argument("--out", type=Path, help="where the evaluation goes (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folders = export(Path(scratch) / "images", args.quality)
        out = args.out or Path(scratch) / "evaluation"
        fakes = [f"{name}={path}" for name, path in folders.items() if name != "real"]
        job.evaluate([str(folders["real"])], fakes, out, route_jpeg=True, progress=False)
        ev = json.loads((out / job.EVALUATION_FILE).read_text())
    print(f"all inputs JPEG q{args.quality}; inputs the route took: {ev['jpeg_route']['routed_inputs']}")
    print(f"AUROC {ev['auroc']:.3f} {[round(c, 3) for c in ev['auroc_ci']]}, two-class {ev['two_class']['auroc']:.3f}; "
          f"flagged real {ev['flagged_real']:.3f}, generated {ev['flagged_generated']:.3f}")  # fmt: skip
    for row in ev["per_source"]:
        print(f"seen      {row['source']:8s} {row['auroc']:.3f}")
    for row in ev["held_out_generators"]:
        print(f"left out  {row['source']:8s} {row['auroc']:.3f} (two-class {row['two_class']['auroc']:.3f}, "
              f"reference alone {row['reference_only']['auroc']:.3f})")  # fmt: skip
    for row in ev["perturbations"]:
        routed = row["routed"]
        print(f"sweep {row['perturbation']:12s} main {row['auroc']:.3f}, "
              f"routed ({routed['route']}) {routed['auroc']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
