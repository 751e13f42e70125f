"""``genaudit demo``: the main job on the embedded defaults, with no download, published as a site.

For now: one card per embedded model (figures, sample grids of the generator per class). The
benchmark, audit and detection jobs add their cards here as they land.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def run_demo(out: Path) -> Path:
    """Write every results JSON under ``out/results``, then publish the site at ``out``."""
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from audit.zoo import registry
    from audit.zoo.report import zoo_results
    from reports.publish import publish
    from reports.results import write_results

    results_dir = Path(out) / "results"
    with logging_redirect_tqdm():  # log lines above the progress bar, not through it
        for name in tqdm(list(registry.ENTRIES), desc="demo: zoo cards", unit="model"):
            doc = zoo_results(name)
            write_results(results_dir / f"{doc['id']}.json", doc)
            log.info("results %s", results_dir / f"{doc['id']}.json")
    return publish([results_dir], out, title="genaudit demo: embedded defaults")
