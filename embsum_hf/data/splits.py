"""Deterministic evaluation splits of a loaded `RecommendationData`."""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict

from ._io import parse_time, sort_key
from .schema import RecommendationData


def _subset(data: RecommendationData, indices: list[int], split: str) -> RecommendationData:
    return dataclasses.replace(data, impressions=data.impressions.select(indices), split=split, stats=dict(data.stats))


def split_dev_test(
    data: RecommendationData, dev_fraction: float = 0.1, seed: int = 42
) -> tuple[RecommendationData, RecommendationData]:
    """Split impressions at random into Dev and Test: the paper's MINDsmall_dev -> 10% Dev / 90% Test protocol.

    The split is by impression (a user may appear on both sides, as in the paper), deterministic for a seed and
    independent of everything but the number of impressions. Both parts keep the original row order and share the
    items table; their `split` reads e.g. "MINDsmall_dev:dev(10%)" and "MINDsmall_dev:test(90%)".
    """
    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be in (0, 1), got {dev_fraction}")
    order = list(range(len(data.impressions)))
    random.Random(seed).shuffle(order)
    num_dev = round(len(order) * dev_fraction)
    dev_percent = f"{dev_fraction * 100:g}%"
    test_percent = f"{(1 - dev_fraction) * 100:g}%"
    return (
        _subset(data, sorted(order[:num_dev]), f"{data.split}:dev({dev_percent})"),
        _subset(data, sorted(order[num_dev:]), f"{data.split}:test({test_percent})"),
    )


def split_by_time(
    data: RecommendationData, *, dev_impressions: int = 1, test_impressions: int = 1
) -> tuple[RecommendationData, RecommendationData, RecommendationData]:
    """Leave-last-out split per user: each user's last `test_impressions` impressions (by time) go to Test, the
    `dev_impressions` before them to Dev, the rest to Train.

    Users with no more than `dev_impressions + test_impressions` impressions keep all of them in Train, so every
    Dev/Test user was seen in training. Histories are untouched: a Test impression's history already holds the
    user's earlier (Train/Dev) positives, as in a chronological replay. Deterministic; splits are named
    "<split>:train", "<split>:dev", "<split>:test".
    """
    if dev_impressions < 0 or test_impressions < 1:
        raise ValueError("need dev_impressions >= 0 and test_impressions >= 1")
    by_user: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for index, (user_id, time) in enumerate(zip(data.impressions["user_id"], data.impressions["time"])):
        by_user[user_id].append((sort_key(parse_time(time)) if time else 0.0, index))
    parts: dict[str, list[int]] = {"train": [], "dev": [], "test": []}
    held_out = dev_impressions + test_impressions
    for entries in by_user.values():
        indices = [index for _, index in sorted(entries)]
        if len(indices) <= held_out:
            parts["train"] += indices
            continue
        parts["train"] += indices[:-held_out]
        parts["dev"] += indices[len(indices) - held_out : len(indices) - test_impressions]
        parts["test"] += indices[-test_impressions:]
    train, dev, test = (
        _subset(data, sorted(parts[name]), f"{data.split}:{name}") for name in ("train", "dev", "test")
    )
    return train, dev, test
