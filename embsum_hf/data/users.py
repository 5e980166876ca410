"""Each user's history as item dicts: what the teacher summarises and what user-embedding jobs encode."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

UserHistory = tuple[Any, Sequence[Mapping[str, Any]]]


def user_histories(data: Any) -> Iterator[UserHistory]:
    """`(user_id, history item dicts)` of every user of a `RecommendationData`, in order of first appearance.

    A user's history is the longest among their impressions (the latest on ties, by `time`), i.e. everything known
    before their last impression. Item dicts are rows of `data.items` (with `item_id`); ids missing from the items
    table are dropped and counted in a warning.
    """
    impressions = data.impressions.select_columns(["user_id", "time", "history"])
    best: dict[Any, tuple[int, Any, list]] = {}  # user -> (history length, time, history ids)
    for batch in impressions.iter(batch_size=10_000):
        for user_id, when, history in zip(batch["user_id"], batch["time"], batch["history"]):
            current = best.get(user_id)
            if current is None or (len(history), when) >= current[:2]:
                best[user_id] = (len(history), when, history)
    items = {row["item_id"]: row for row in data.items.to_list()}
    missing = 0
    for user_id, (_, _, history) in best.items():
        rows = [items[item_id] for item_id in history if item_id in items]
        missing += len(history) - len(rows)
        yield user_id, rows
    if missing:
        logger.warning("%d history items were not found in the items table and were left out", missing)
