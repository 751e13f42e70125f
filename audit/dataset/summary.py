"""From per-image records (``records.jsonl``) to the audit's statistics, through the streamed digest
(:mod:`audit.dataset.digest`)."""

from __future__ import annotations

from typing import Any

from audit.dataset.demographics import DEFAULT_ABSTAIN_BELOW


def summarize_records(records: list[dict[str, Any]], abstain_below: float = DEFAULT_ABSTAIN_BELOW) -> dict[str, Any]:
    """``classes`` and ``overall`` (see :func:`audit.dataset.demographics.aggregate`), plus unreadable
    files by reason and the detection resolutions used."""
    from audit.dataset.digest import digest_list

    return digest_list(records)[0].stats(abstain_below)
