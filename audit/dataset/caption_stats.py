"""Captions and labels in an audit's results: caption coherence per class and offensive terms per class.

Computed from a :class:`audit.dataset.digest.RecordDigest` after the records are read (docs/captions.md):

- per class and overall: captions, captions scored, the score's quantiles and mean, and the share below
  the threshold with a Wilson 95% interval;
- the least coherent showable captions (the card shows them as blurred thumbnails);
- class names and captions holding terms of the offensive-term list, counted per class with the terms.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audit.dataset.demographics import wilson_interval

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
LEAST_COHERENT_SHOWN = 16


def _score_summary(label: str, captions: int, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    below = int(np.count_nonzero(scores < threshold))
    ci = wilson_interval(below, len(scores))
    return {
        "class": label,
        "captions": captions,
        "scored": len(scores),
        "mean": float(scores.mean()) if len(scores) else None,
        "quantiles": {f"q{int(q * 100)}": float(np.quantile(scores, q)) for q in QUANTILES} if len(scores) else None,
        "below_threshold": below,
        "below_share": below / len(scores) if len(scores) else None,
        "below_share_ci": list(ci) if ci else None,
    }


def flagged_classes(labels: list[str], terms: Any) -> dict[str, list[str]]:
    """Class name -> the offensive terms it holds (only the classes that hold one)."""
    if terms is None:
        return {}
    found = {label: terms.find(label) for label in labels}
    return {label: hits for label, hits in sorted(found.items()) if hits}


def caption_results(digest: Any, threshold: float, model: dict[str, Any] | None) -> dict[str, Any] | str:
    """The ``captions`` block of the results, or a sentence when the dataset has no captions."""
    total = sum(digest.captioned.values())
    if not total:
        return "no captions (a manifest's caption column, a webdataset txt, or --caption-column give them)"
    codes, scores = digest.caption_columns()
    order = np.argsort(codes, kind="stable")  # each class's scores in one slice: O(N log N), not O(N x classes)
    sorted_codes, sorted_scores = codes[order], scores[order]

    def of(label: str) -> np.ndarray:
        code = digest.labels.get(label, -1)
        lo, hi = np.searchsorted(sorted_codes, [code, code + 1])
        return sorted_scores[lo:hi]

    classes = [_score_summary(c, digest.captioned[c], of(c), threshold) for c in sorted(digest.captioned)]
    hidden = set(flagged_classes(sorted(digest.captioned), digest.terms))
    return {
        "model": model,
        "threshold": threshold,
        "overall": _score_summary("overall", total, scores, threshold),
        "classes": classes,
        "least_coherent": [
            {k: r[k] for k in ("index", "image", "class", "caption", "caption_score")}
            for r in digest.least_coherent(hidden)[:LEAST_COHERENT_SHOWN]
        ],
    }


def term_results(digest: Any, labels: list[str]) -> dict[str, Any] | str:
    """The ``offensive_terms`` block: flagged class names, captions with terms per class, examples."""
    if digest.terms is None:
        return "not checked"
    by_class = []
    for label in sorted(digest.captioned):
        n, hits = digest.captioned[label], digest.captions_with_terms[label]
        ci = wilson_interval(hits, n)
        by_class.append(
            {
                "class": label,
                "captions": n,
                "captions_with_terms": hits,
                "share": hits / n if n else None,
                "share_ci": list(ci) if ci else None,
                "terms": dict(sorted(digest.term_counts.get(label, {}).items(), key=lambda kv: (-kv[1], kv[0]))),
            }
        )
    return {
        "list": digest.terms.describe(),
        "classes_flagged": [{"class": c, "terms": t} for c, t in flagged_classes(labels, digest.terms).items()],
        "captions_checked": sum(digest.captioned.values()),
        "captions_with_terms": sum(digest.captions_with_terms.values()),
        "by_class": by_class,
        "examples": digest.term_examples(),
    }
