"""Generated images by generator: named ``--fake`` sources, and the evaluation on generators left out.

A user checking images for deepfakes does not know which generator made them. So ``detect calibrate``
and ``detect evaluate`` keep every ``--fake`` source apart (``--fake gan=DIR --fake sd=DIR``), and
``detect evaluate`` reports, for each generator, how a detector calibrated *without* it fares on it
(:func:`held_out_generators`): the figure that predicts the next, unseen generator, beside the one on
generators it was calibrated on (README.md, "Deepfake check", "Generators it never saw").
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from audit.errors import InputError

REAL_SOURCE = "real"  # the source tag of --real images; no generator may take it


def fake_sources(values: list[str]) -> list[tuple[str, str]]:
    """``--fake`` values as (generator name, path), in order; sources with the same name are one generator.

    ``NAME=PATH`` names the generator. A value that exists as a path is a path even if it contains '='.
    A plain path is its own generator, named by the path (one plain path alone: ``generated``)."""
    from audit.io.names import escape_name

    out: list[tuple[str, str]] = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or os.path.lexists(value):
            name, path = ("generated" if len(values) == 1 else escape_name(value.rstrip("/") or value)), value
        name = name.strip()
        if not name or not path:
            raise InputError(
                f"--fake {escape_name(value)}: give NAME=PATH or a path (an empty name or path is neither)"
            )
        if name == REAL_SOURCE:
            raise InputError(f"--fake {escape_name(value)}: '{REAL_SOURCE}' names the --real images; call it otherwise")
        out.append((escape_name(name), path))
    return out


def held_out_generators(
    scorer: Any, feats: np.ndarray, y: np.ndarray, sources: np.ndarray, *, target_fpr: float, folds: int,
    draws: int, seen: np.ndarray | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """For each generator: a detector calibrated on the real images and every *other* generator, cross-fitted
    over the real images (each real image scored by a fold detector that never saw it, stratified by source),
    and each of the left-out generator's images scored by one of those fold detectors in turn (none saw any of
    them). Its AUROC against the same real images (bootstrap interval), the share flagged at each fold
    detector's own threshold, and the real images' flagged share. ``seen``: every image's decision by a
    detector calibrated with every generator (cross-fitted), to set beside it (the generator against the
    same real images). Empty with fewer than 2 generators."""
    from detectors.evaluation import evaluate_scores
    from detectors.job import cross_fit

    sources = np.asarray(sources)
    generators = list(dict.fromkeys(s for s, label in zip(sources, y, strict=True) if label == 1))
    if len(generators) < 2:
        return []
    out = []
    for held in generators:
        pool = sources != held
        crossed = cross_fit(scorer, feats[pool], y[pool], target_fpr=target_fpr, folds=folds, strata=sources[pool])
        held_scores, held_flags = crossed.share_out(feats[sources == held])
        real = y[pool] == 0
        scores = np.concatenate([crossed.decisions[real], held_scores])
        labels = np.concatenate([np.zeros(int(real.sum()), dtype=int), np.ones(len(held_scores), dtype=int)])
        out.append({
            "source": str(held),
            "calibrated_on": [str(g) for g in generators if g != held],
            "folds": len(crossed.fold_models),
            **evaluate_scores(labels, scores, draws=draws),
            "flagged": float(np.mean(held_flags)),
            "real_flagged": float(np.mean(crossed.flags[real])),
        })  # fmt: skip
        if seen is not None:
            mask = (y == 0) | (sources == held)
            out[-1]["seen"] = evaluate_scores(y[mask], seen[mask], draws=draws)
    return out
