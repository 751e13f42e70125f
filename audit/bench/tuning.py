"""``bench --tune``: parametrized schedules chosen on one set of seeds and prompts, reported on another.

Wang et al. (TMLR 2024) warn that parameters tuned for one model do not transfer; the same holds, at a
smaller scale, for parameters tuned on one sample: the best of a grid of clamp floors, pcs exponents or
interval windows on the images it was chosen on is biased towards them. So the run is split
(docs/tuning.md):

* tuning split (``OUT/tune``): seeds ``seed + 1,000,000 + i``, and with prompts the even-numbered ones
  (0, 2, 4, ...); with class labels every label (only the seeds differ);
* held-out split (``OUT``, what the card reports): seeds ``seed + i`` and the odd-numbered prompts.

Every candidate of the grid is run on both. For each parametrized schedule and scale, the candidate with
the lowest FID on the tuning split is the choice; on the held-out split its FID is compared with the
held-out best candidate's (paired, the same images), and the choice *held* when it is the held-out best or
not significantly worse than it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from audit.errors import InputError

TUNE_DIR = "tune"
SEED_OFFSET = 1_000_000


def splits(config: Any) -> tuple[Any, Any]:
    """(tuning config, held-out config) of a ``--tune`` config."""
    analyses = {"tune": False, "training": None, "attributes": None, "pair_negative": False}
    if config.prompts is not None:
        if len(config.prompts) < 2:
            raise InputError("--tune needs at least two prompts (half choose the parameters, half report them)")
        tune = replace(config, prompts=config.prompts[0::2], seed=config.seed + SEED_OFFSET, **analyses)
        held = replace(config, prompts=config.prompts[1::2], tune=False)
    else:
        tune = replace(config, seed=config.seed + SEED_OFFSET, **analyses)
        held = replace(config, tune=False)
    if config.n >= SEED_OFFSET:
        raise InputError(f"--tune needs n below {SEED_OFFSET:,} (the tuning seeds start there)")
    return tune, held


def candidates(cells: list[dict[str, Any]]) -> dict[tuple[str, float], list[dict[str, Any]]]:
    """Cells grouped by (schedule name, scale) where the group has more than one parameter setting."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for cell in cells:
        sched = cell["schedule"]
        if "scale" in sched and sched.get("scale") != 0.0:
            groups.setdefault((sched["name"], sched["scale"]), []).append(cell)
    return {key: group for key, group in groups.items() if len(group) > 1}


def report(tune_cells: list[dict[str, Any]], held_cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Per parametrized schedule and scale: tuning FID of every candidate, the choice, its held-out FID
    against the held-out best (paired difference) and whether the choice held; a sentence."""
    from audit.bench.analysis import metric_differences

    held_by_label = {c["label"]: c for c in held_cells}
    rows = []
    for (name, scale), group in sorted(candidates(tune_cells).items()):
        chosen = min(group, key=lambda c: c["metrics"]["fid"]["value"])
        held = [held_by_label[c["label"]] for c in group if c["label"] in held_by_label]
        if chosen["label"] not in held_by_label or not held:
            continue
        best = min(held, key=lambda c: c["metrics"]["fid"]["value"])
        mine = held_by_label[chosen["label"]]
        diff = metric_differences(mine["metrics"], best["metrics"]).get("fid")
        held_up = chosen["label"] == best["label"] or (diff is not None and diff["verdict"] != "worse")
        tried = [
            {"label": c["label"], "tune_fid": c["metrics"]["fid"]["value"],
             "heldout_fid": held_by_label[c["label"]]["metrics"]["fid"]["value"]}
            for c in group
            if c["label"] in held_by_label
        ]  # fmt: skip
        rows.append(
            {
                "schedule": name,
                "scale": scale,
                "candidates": tried,
                "chosen": chosen["label"],
                "heldout_best": best["label"],
                "chosen_minus_best": diff,
                "held": bool(held_up),
            }
        )
    kept = sum(r["held"] for r in rows)
    if rows:
        sentence = (
            f"Tuning held in {kept} of {len(rows)} (schedule, scale) choices: the parameter chosen on the tuning "
            "split was the best, or not significantly worse than the best, on the held-out split."
        )
        missed = [f"{r['chosen']} (held-out best {r['heldout_best']})" for r in rows if not r["held"]]
        if missed:
            sentence += " It did not hold for " + "; ".join(missed) + "."
    else:
        sentence = "No parametrized schedule had more than one candidate: nothing was tuned."
    sentence += " Parameters tuned on one model need not transfer to another (Wang et al. 2024)."
    return {"rows": rows, "held": kept, "choices": len(rows), "sentence": sentence}
