"""Impressions -> training rows, negative sampling and teacher summaries: the one definition used by training."""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Container, Sequence
from pathlib import Path

import datasets

from ._io import iter_records, iter_rows, require_columns
from .schema import UNLABELED, DataFormatError

__all__ = [
    "TRAINING_FEATURES",
    "build_training_rows",
    "history_click_rows",
    "load_summaries",
    "sample_negatives",
    "sample_unread",
]

logger = logging.getLogger(__name__)

TRAINING_FEATURES = datasets.Features(
    {
        "user_id": datasets.Value("string"),
        "impression_id": datasets.Value("string"),
        "history": datasets.List(datasets.Value("string")),
        "positive": datasets.Value("string"),
        "negative_pool": datasets.List(datasets.Value("string")),
        "summary": datasets.Value("string"),
    }
)


def build_training_rows(
    impressions: datasets.Dataset,
    *,
    summaries: dict[str, str] | None = None,
    keep_without_negatives: bool = False,
) -> datasets.Dataset:
    """One training row per clicked candidate: the impression's history, the click, and its non-clicked items.

    Columns: `user_id`, `impression_id`, `history`, `positive`, `negative_pool` (the impression's non-clicked
    candidates, from which `sample_negatives` draws each epoch) and `summary` (the user's teacher summary, None
    when `summaries` has none). Clicks of impressions without any non-clicked candidate are skipped and logged
    (`skipped_no_negative`) unless `keep_without_negatives` (in-batch or catalogue negatives give them some),
    as are impressions without clicks (`impression_without_click`). Unlabeled impressions (labels -1) raise
    `ValueError`: they cannot be trained on.
    """
    summaries = summaries or {}
    stats: Counter = Counter()
    rows: dict[str, list] = {name: [] for name in TRAINING_FEATURES}
    chunks: list[datasets.Dataset] = []  # Arrow tables of `_ROWS_PER_CHUNK` rows: Python objects for one chunk only
    for row in iter_rows(impressions):
        labels = row["labels"]
        if UNLABELED in labels:
            raise ValueError(
                f"impression {row['impression_id']!r} is unlabeled (labels -1); cannot build training rows"
            )
        positives = [c for c, y in zip(row["candidates"], labels) if y == 1]
        negatives = [c for c, y in zip(row["candidates"], labels) if y == 0]
        if not positives:
            stats["impression_without_click"] += 1
            continue
        if not negatives and not keep_without_negatives:
            stats["skipped_no_negative"] += len(positives)
            continue
        for positive in positives:
            rows["user_id"].append(row["user_id"])
            rows["impression_id"].append(row["impression_id"])
            rows["history"].append(row["history"])
            rows["positive"].append(positive)
            rows["negative_pool"].append(negatives)
            rows["summary"].append(summaries.get(row["user_id"]))
        if len(rows["positive"]) >= _ROWS_PER_CHUNK:
            chunks.append(_rows_chunk(rows, stats))
    chunks.append(_rows_chunk(rows, stats))
    table = datasets.concatenate_datasets(chunks) if len(chunks) > 1 else chunks[0]
    logger.info("Built %d training rows from %d impressions; %s", len(table), len(impressions), dict(stats))
    return table


_ROWS_PER_CHUNK = 50_000


def history_click_rows(
    rows: datasets.Dataset, catalogue: Sequence[str], *, per_user: int, seed: int = 42
) -> datasets.Dataset:
    """
    The `per_user` most recent history reads of each user of `rows` (training rows, histories most recent first) as
    training clicks of their own, each with the reads before it as its history: a user with reads `[c, b, a]` before
    the click adds the rows `c <- [b, a]` and (`per_user` >= 2) `b <- [a]` (the first read has no history and adds
    none). Once per user and history (impressions that share a history add their reads once). Each row's
    `negative_pool` holds as many items as the user's first row has, drawn uniformly from `catalogue` without the
    user's reads (its history and clicks; seeded by `seed`, the user and the read), as a leave-last-out log draws
    them; its `summary` is None (the teacher wrote it from later reads). Columns as `build_training_rows`'.
    """
    by_history: dict[tuple[str, tuple[str, ...]], dict] = {}  # (user, history) -> its first row and every read
    for user, impression, history, positive, pool in zip(
        rows["user_id"], rows["impression_id"], rows["history"], rows["positive"], rows["negative_pool"]
    ):
        entry = by_history.setdefault(
            (user, tuple(history)), {"impression": impression, "size": len(pool), "reads": set()}
        )
        entry["reads"].update([*history, positive])
    out: dict[str, list] = {name: [] for name in TRAINING_FEATURES}
    for (user, history), entry in by_history.items():
        for position in range(min(per_user, len(history) - 1)):
            key = f"{seed}/{user}/{entry['impression']}/{position}/history-click"
            negatives = sample_unread(catalogue, entry["reads"], entry["size"], key=key)
            out["user_id"].append(user)
            out["impression_id"].append(f"{entry['impression']}/read-{position}")
            out["history"].append(list(history[position + 1 :]))
            out["positive"].append(history[position])
            out["negative_pool"].append(negatives)
            out["summary"].append(None)
    logger.info("Built %d history-click rows from %d training rows", len(out["positive"]), len(rows))
    return datasets.Dataset.from_dict(out, features=TRAINING_FEATURES)


def _rows_chunk(rows: dict[str, list], stats: Counter) -> datasets.Dataset:
    """The rows collected so far as an in-memory Arrow table; empties `rows` and counts `with_summary`."""
    stats["with_summary"] += sum(summary is not None for summary in rows["summary"])
    chunk = datasets.Dataset.from_dict(rows, features=TRAINING_FEATURES)
    for values in rows.values():
        values.clear()
    return chunk


def sample_negatives(pool: list[str], k: int, *, seed: int, epoch: int, index: int) -> list[str]:
    """Draw `k` negatives from `pool`, deterministically in (seed, epoch, index) and differently across epochs.

    Without replacement when `len(pool) >= k`. When the pool is smaller, every pool item is used once and the
    remaining `k - len(pool)` are drawn with replacement, so the loss always sees `k` negatives (and as many
    distinct ones as exist). The order is shuffled. An empty pool with `k > 0` raises `ValueError`.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if k and not pool:
        raise ValueError("cannot sample negatives from an empty pool")
    # A string seed is hashed with SHA-512 by `random`, so it is stable across processes (unlike hash()).
    rng = random.Random(f"{seed}/{epoch}/{index}")
    if len(pool) >= k:
        return rng.sample(pool, k)
    drawn = list(pool) + rng.choices(pool, k=k - len(pool))
    rng.shuffle(drawn)
    return drawn


def sample_unread(catalogue: Sequence[str], exclude: Container[str], k: int, *, key: str) -> list[str]:
    """
    `k` distinct items drawn uniformly from `catalogue`, none of them in `exclude` (a user's reads), deterministically
    in `key` (hashed by `random` with SHA-512: stable across processes); fewer when 20 x `k` draws keep hitting
    `exclude` (a catalogue hardly larger than it). Rejection sampling: a user's reads are few against a catalogue.
    """
    rng = random.Random(key)
    drawn: dict[str, None] = {}
    for _ in range(20 * k):
        if len(drawn) == k:
            break
        item = catalogue[rng.randrange(len(catalogue))]
        if item not in exclude:
            drawn[item] = None
    return list(drawn)


def load_summaries(path_or_dataset: str | Path | datasets.Dataset) -> dict[str, str]:
    """Read teacher summaries (JSON lines or any `iter_records` format with `user_id` and `summary`) into a dict.

    Exact repeats of a user's line are ignored; two different summaries for one user raise `DataFormatError`
    naming the file and line.
    """
    summaries: dict[str, str] = {}
    where: dict[str, str] = {}
    for number, record, source in iter_records(path_or_dataset):
        require_columns(record, ["user_id", "summary"], source, number)
        user_id, summary = str(record["user_id"]), record["summary"]
        if not isinstance(summary, str):
            raise DataFormatError(source, number, f"summary must be a string, got {type(summary).__name__}")
        if summaries.setdefault(user_id, summary) != summary:
            raise DataFormatError(
                source, number, f"second, different summary for user {user_id!r} (first at {where[user_id]})"
            )
        where.setdefault(user_id, f"{source}:{number}")
    return summaries
