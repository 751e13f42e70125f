"""How the embedded caption model's incoherence threshold was chosen (docs/captions.md).

Scores the 297 held-out digits (never seen in training) against their own caption and against every
other digit's, under each of the digits CLIP's eight caption templates, through the audit's own
:class:`audit.dataset.captions.CaptionScorer`, and prints the two distributions' quantiles and the
share of each side of a threshold.

    python benchmarks/caption_threshold.py [--threshold 21.5]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main() -> int:
    from audit.dataset.captions import EMBEDDED_THRESHOLD, CaptionScorer
    from audit.zoo import clip, digits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=EMBEDDED_THRESHOLD)
    args = parser.parse_args()
    images, labels = digits.load_split("heldout")
    rgb = np.repeat(images[..., None], 3, axis=-1)
    scorer = CaptionScorer("embedded")
    own, other = [], []
    for template in clip.CAPTION_TEMPLATES:
        for image, label in zip(rgb, labels, strict=True):
            for caption_label in range(digits.NUM_CLASSES):
                s = scorer.score(image, clip.caption(caption_label, template))
                (own if caption_label == label else other).append(s)
    own_a, other_a = np.array(own), np.array(other)
    qs = (0.01, 0.05, 0.5, 0.95, 0.99)
    for name, values in (("own caption", own_a), ("another digit's caption", other_a)):
        q = ", ".join(f"q{int(p * 100)} {np.quantile(values, p):.1f}" for p in qs)
        sys.stdout.write(f"{name:26s} n={len(values):6d}  {q}\n")
    for t in sorted({10.0, 20.0, 25.0, 30.0, 40.0, args.threshold}):
        mark = "  <- default" if t == args.threshold else ""
        sys.stdout.write(
            f"threshold {t:5.1f}: own captions below {np.mean(own_a < t):6.2%} (false alarms), "
            f"other digits' captions below {np.mean(other_a < t):6.2%} (mismatches found){mark}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
