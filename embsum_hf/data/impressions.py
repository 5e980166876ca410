"""Turning per-user interaction logs into impressions: the one implementation shared by every log-style loader.

Goodreads, MovieLens and custom logs have no impressions of their own, only (user, item, label, time) events.
`build_impressions` groups each user's chronological events into impressions and gives every impression the
user's positives strictly before it as history (most recent first). MIND ships impressions and only reuses
`clean_history`.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ._io import sort_key

Grouping = Literal["window", "day", "time", "impression"]
GROUPINGS: tuple[str, ...] = ("window", "day", "time", "impression")


@dataclass(frozen=True)
class Interaction:
    """One engagement event. `impression_id` is only used (and required) by the "impression" grouping."""

    user_id: str
    item_id: str
    time: datetime
    label: int
    impression_id: str | None = None


RATING_RANGE = (0, 5)
"""The star ratings of Goodreads and MovieLens (0: Goodreads' shelved without a rating)."""


def rating_to_label(rating: float, stats: Counter) -> int | None:
    """The Goodreads protocol (also used for MovieLens): > 3 positive, 1 to < 3 negative, 3 and 0 dropped.

    A rating of 0 is Goodreads' "shelved without rating", not a bad rating, so it is dropped rather than made
    negative. Drops are counted in `stats` as `dropped_neutral_rating` / `dropped_unrated`. A rating outside
    `RATING_RANGE` (e.g. 99, which would become a click) is a `ValueError`; callers add the file and line.
    """
    low, high = RATING_RANGE
    if not low <= rating <= high:
        raise ValueError(f"rating {rating:g} is outside {low}..{high}")
    if rating == 0:
        stats["dropped_unrated"] += 1
        return None
    if rating == 3:
        stats["dropped_neutral_rating"] += 1
        return None
    return 1 if rating > 3 else 0


def clean_history(history: Iterable[str], clicked: set[str], stats: Counter, max_history: int | None) -> list[str]:
    """Finish a most-recent-first history: deduplicate (keep the most recent; counted as `duplicate_history_item`),
    drop the impression's own clicks (counted as `history_leak_removed`), keep the `max_history` most recent, count
    `empty_history`."""
    history = list(history)
    unique = dict.fromkeys(history)
    stats["duplicate_history_item"] += len(history) - len(unique)
    kept = []
    for item_id in unique:
        if item_id in clicked:
            stats["history_leak_removed"] += 1
        else:
            kept.append(item_id)
    if max_history is not None:
        kept = kept[:max_history]
    if not kept:
        stats["empty_history"] += 1
    return kept


def _latest_per_item(events: list[Interaction], stats: Counter) -> list[Interaction]:
    """Keep only the last (latest) event per item, counting the others as `duplicate_interaction_dropped`."""
    last = {event.item_id: position for position, event in enumerate(events)}
    stats["duplicate_interaction_dropped"] += len(events) - len(last)
    return [event for position, event in enumerate(events) if last[event.item_id] == position]


def _group(events: list[Interaction], grouping: str, window_size: int) -> list[list[Interaction]]:
    """Split one user's time-sorted events into impressions, returned in order of their first event."""
    if grouping == "window":
        return [events[start : start + window_size] for start in range(0, len(events), window_size)]
    keys = {
        "day": lambda e: e.time.date(),
        "time": lambda e: sort_key(e.time),
        "impression": lambda e: e.impression_id,
    }[grouping]
    groups: dict = defaultdict(list)
    for event in events:
        groups[keys(event)].append(event)
    return list(groups.values())  # dicts keep insertion order, i.e. the order of each group's first event


def build_impressions(
    interactions: Iterable[Interaction],
    *,
    grouping: Grouping = "window",
    window_size: int = 10,
    max_history: int | None = None,
    stats: Counter,
) -> list[dict]:
    """Group per-user interactions into impression rows (the keys of `schema.IMPRESSION_FEATURES`).

    Each user's events are sorted by time (ties keep input order) and grouped:
        - "window": consecutive chunks of `window_size` events;
        - "day": events on the same calendar day (UTC for timezone-aware times);
        - "time": events with exactly the same timestamp (a logged impression without an id);
        - "impression": events sharing `Interaction.impression_id`.
    Candidates are the group's items with their labels; the history is every positive of the user strictly
    before the group's first event, most recent first, without the group's own clicks. Repeated events
    for one item keep only the latest (`duplicate_interaction_dropped`): per user for "window" (a rating log
    holds one opinion per item), per impression otherwise (an exposure log may show an item again later).
    Impression ids are the explicit ids, else `"{user_id}_{k}"` with k the user's 0-based impression index.
    Rows are returned in chronological order of their first event.
    """
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
    if window_size < 1:
        raise ValueError(f"window_size must be >= 1, got {window_size}")
    by_user: dict[str, list[tuple[int, Interaction]]] = defaultdict(list)
    for order, event in enumerate(interactions):
        by_user[event.user_id].append((order, event))

    rows: list[tuple[float, int, dict]] = []
    for user_id, indexed in by_user.items():
        events = [event for _, event in sorted(indexed, key=lambda pair: (sort_key(pair[1].time), pair[0]))]
        if grouping == "window":
            groups = _group(_latest_per_item(events, stats), grouping, window_size)
        else:
            groups = [_latest_per_item(group, stats) for group in _group(events, grouping, window_size)]
        # Explicit impressions may overlap in time, so the positives are re-sorted (stable) after grouping.
        positives = sorted((e for group in groups for e in group if e.label == 1), key=lambda e: sort_key(e.time))
        positive_times = [sort_key(event.time) for event in positives]
        for index, group in enumerate(groups):
            start = sort_key(group[0].time)  # groups are time-sorted subsequences
            before = positives[: bisect.bisect_left(positive_times, start)]
            clicked = {event.item_id for event in group if event.label == 1}
            history = clean_history((e.item_id for e in reversed(before)), clicked, stats, max_history)
            row = {
                "impression_id": group[0].impression_id if grouping == "impression" else f"{user_id}_{index}",
                "user_id": user_id,
                "time": group[0].time.isoformat(),
                "history": history,
                "candidates": [event.item_id for event in group],
                "labels": [event.label for event in group],
            }
            rows.append((start, len(rows), row))
    rows.sort(key=lambda entry: entry[:2])
    return [row for _, _, row in rows]
