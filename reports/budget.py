"""The size budget that keeps a card small enough to open anywhere.

Report tools that inline raw data produce pages of tens to hundreds of megabytes that crash browsers.
A genaudit card carries figures (SVG) and thumbnails (PNG, longest side at most
``audit.io.encode.MAX_THUMB_SIDE`` = 128 px), never raw arrays or full-size images; the JSON twin beside
it carries the numbers. A rendered card over :data:`CARD_BUDGET_BYTES` (2 MiB) is an error, raised
before anything is written, so an oversized card never gets published.
"""

from __future__ import annotations

from audit.errors import GenauditError

CARD_BUDGET_BYTES = 2 * 1024 * 1024


class CardTooLargeError(GenauditError):
    """A rendered card exceeds the size budget."""


def check_card(html: str, card_id: str, limit: int = CARD_BUDGET_BYTES) -> int:
    size = len(html.encode("utf-8"))
    if size > limit:
        raise CardTooLargeError(
            f"card {card_id!r} is {size / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB budget: "
            "it must carry thumbnails and figures, not raw data"
        )
    return size
