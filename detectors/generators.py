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
    draws: int, seen: np.ndarray | None = None, seen_two_class: np.ndarray | None = None, copies: Any = None,
    siblings: np.ndarray | None = None, route: tuple[np.ndarray, np.ndarray] | None = None, **params: Any,
) -> list[dict[str, Any]]:  # fmt: skip
    """For each generator: a detector calibrated on the real images and every *other* generator, cross-fitted
    over the real images (each real image scored by a fold detector that never saw it, stratified by source),
    and each of the left-out generator's images scored by one of those fold detectors in turn (none saw any of
    them). Its AUROC against the same real images (bootstrap interval), the share flagged at each fold
    detector's own threshold, and the real images' flagged share; under ``two_class`` the same for the
    two-class detector alone (no real reference), and under ``reference_only`` the real-reference detector,
    which sees no generated image at all. ``seen`` / ``seen_two_class``: every image's decision by a detector
    (combined / two-class alone) calibrated with every generator (cross-fitted), to set beside it (the
    generator against the same real images). ``copies``: perturbed copies of the images
    (:class:`detectors.job.Copies`), each calibrating with its original. ``siblings``: images from one seed
    share a number and a fold (:func:`detectors.job.cross_fit`). ``route``: (what the JPEG route calibrates on, a
    row per image (:func:`detectors.job.route_features`), the rows the route takes), for a routed detector
    (``--route-jpeg``): every detector here then has its route, calibrated on those rows in its own folds, and
    scores the rows it takes as the routed detector does
    (docs/detect.md, "Routing"); each row records ``routed_inputs``. ``params``: for every detector but the
    reference-only one (e.g. ``experts=False``). Empty with fewer than 2 generators."""
    from detectors.evaluation import evaluate_scores

    sources = np.asarray(sources)
    generators = list(dict.fromkeys(s for s, label in zip(sources, y, strict=True) if label == 1))
    if len(generators) < 2:
        return []
    reference = reference_only(scorer, feats, y, target_fpr=target_fpr, folds=folds, copies=copies)
    if route is not None:
        from detectors.job import routed_cross_fit

        route_feats, route_rows = route
        by_route = reference_only(scorer, route_feats, y, target_fpr=target_fpr, folds=folds)
        reference = routed_cross_fit(reference, by_route, route_rows, feats)
    out = []
    for held in generators:
        left_out = {"target_fpr": target_fpr, "folds": folds, "draws": draws, "copies": copies, "siblings": siblings,
                    "route": route, **params}  # fmt: skip
        row = {
            "source": str(held),
            "calibrated_on": [str(g) for g in generators if g != held],
            **_left_out(scorer, feats, y, sources, held, **left_out),
            "two_class": _left_out(scorer, feats, y, sources, held, **left_out, reference="off"),
        }
        mask = (y == 0) | (sources == held)
        row["reference_only"] = {
            **evaluate_scores(y[mask], reference.decisions[mask], draws=draws),
            "flagged": float(np.mean(reference.flags[sources == held])),
            "real_flagged": float(np.mean(reference.flags[y == 0])),
        }
        if route is not None:
            row["routed_inputs"] = int(np.sum(np.asarray(route[1], dtype=bool)[mask]))
        for key, decisions in (("seen", seen), ("seen_two_class", seen_two_class)):
            if decisions is not None:
                row[key] = evaluate_scores(y[mask], decisions[mask], draws=draws)
        out.append(row)
    return out


def _left_out(
    scorer: Any, feats: np.ndarray, y: np.ndarray, sources: np.ndarray, held: str, *, target_fpr: float,
    folds: int, draws: int, copies: Any = None, siblings: np.ndarray | None = None,
    route: tuple[np.ndarray, np.ndarray] | None = None, **params: Any,
) -> dict[str, Any]:  # fmt: skip
    """The figures of :func:`held_out_generators` for one left-out generator and one kind of detector
    (``route``: with its JPEG route, as there)."""
    from detectors.evaluation import evaluate_scores
    from detectors.job import cross_fit, routed_cross_fit

    pool, left = sources != held, sources == held
    folding = {"target_fpr": target_fpr, "folds": folds, "strata": sources[pool],
               "siblings": None if siblings is None else np.asarray(siblings)[pool], **params}  # fmt: skip
    crossed = cross_fit(scorer, feats[pool], y[pool], copies=copies.of(pool) if copies is not None else None,
                        **folding)  # fmt: skip
    held_scores, held_flags = crossed.share_out(feats[left])
    if route is not None:  # the route's fold detectors: the same folds, calibrated on the pool's route rows
        route_feats, route_rows = route[0], np.asarray(route[1], dtype=bool)
        by_route = cross_fit(scorer, route_feats[pool], y[pool], **folding)
        crossed = routed_cross_fit(crossed, by_route, route_rows[pool], feats[pool])
        route_scores, route_flags = by_route.share_out(feats[left])  # dealt out in the same turn as above
        held_scores = np.where(route_rows[left], route_scores, held_scores)
        held_flags = np.where(route_rows[left], route_flags, held_flags)
    real = y[pool] == 0
    scores = np.concatenate([crossed.decisions[real], held_scores])
    labels = np.concatenate([np.zeros(int(real.sum()), dtype=int), np.ones(len(held_scores), dtype=int)])
    return {
        "folds": len(crossed.fold_models),
        **evaluate_scores(labels, scores, draws=draws),
        "flagged": float(np.mean(held_flags)),
        "real_flagged": float(np.mean(crossed.flags[real])),
    }


def reference_only(
    scorer: Any, feats: np.ndarray, y: np.ndarray, *, target_fpr: float, folds: int, copies: Any = None
) -> Any:
    """Every image's decision and flag by a real-reference detector (real images only, no generated image):
    cross-fitted over the real images in ``folds`` folds, each real image scored by a detector whose reference
    left it out, the generated images dealt out among the fold detectors in turn (``copies``: perturbed
    copies of the images; those of the real training images join its reference). A
    :class:`detectors.job.CrossFitted`."""
    from sklearn.model_selection import KFold

    from detectors.job import Copies, CrossFitted, new_detector

    real = np.flatnonzero(y == 0)
    fake = np.flatnonzero(y == 1)
    decisions, probs, flags = np.empty(len(y)), np.empty(len(y)), np.empty(len(y), dtype=int)
    fold_models = []
    copies = copies or Copies.none(feats.shape[1])
    splits = list(KFold(min(folds, len(real)), shuffle=True, random_state=0).split(real))
    for j, (train, test) in enumerate(splits):
        zeros = np.zeros(len(train), dtype=int)
        det = new_detector(scorer, target_fpr=target_fpr).fit(
            *copies.of(real[train]).joined(feats[real[train]], zeros, zeros)
        )
        rows = np.concatenate([real[test], fake[j :: len(splits)]])
        decisions[rows] = det.decision_function(feats[rows])
        probs[rows] = det.probability(decisions[rows])
        flags[rows] = decisions[rows] >= det.threshold_
        fold_models.append((rows, det))
    return CrossFitted(decisions, probs, flags, fold_models)
