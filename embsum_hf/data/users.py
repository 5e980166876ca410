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
    import pyarrow.compute as pc

    impressions = data.impressions.select_columns(["user_id", "time", "history"])
    # user -> (history length, time, impression row): the histories themselves are read once, in a second pass,
    # so that only one batch of them is ever held as Python objects (about 1.9 GB for MINDlarge's 1M users)
    best: dict[Any, tuple[int, Any, int]] = {}
    row = 0
    for batch in impressions.with_format("arrow").iter(batch_size=10_000):
        lengths = pc.list_value_length(batch["history"]).fill_null(0).to_pylist()
        for user_id, when, length in zip(batch["user_id"].to_pylist(), batch["time"].to_pylist(), lengths):
            current = best.get(user_id)
            if current is None or (length, when) >= current[:2]:
                best[user_id] = (length, when, row)
            row += 1
    items = {row["item_id"]: row for row in data.items.to_list()}
    chosen = impressions.select_columns(["history"]).select([row for _, _, row in best.values()])
    missing = 0
    users = iter(best)
    for batch in chosen.iter(batch_size=1_000):
        for history in batch["history"]:
            rows = [items[item_id] for item_id in history if item_id in items]
            missing += len(history) - len(rows)
            yield next(users), rows
    if missing:
        logger.warning("%d history items were not found in the items table and were left out", missing)
