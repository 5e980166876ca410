"""MovieLens 100K for the benchmarks: where it is, the demo's tiny from-scratch shape on it, and the "reads" protocol
(the book data's leave-last-out protocol rebuilt from MovieLens, with an optional cold-start test)."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import datasets

from embsum_hf.data import iter_fields, load_custom, load_movielens, split_by_time
from embsum_hf.data.schema import RecommendationData
from embsum_hf.training.recipe import EmbSumRunArguments, demo_run_arguments

logger = logging.getLogger(__name__)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ml-100k"
# the full movielens item text: "<sos>" + at most 45-47 tokens under the recipe's tokenizer (its training is not
# bit-reproducible, so the lengths are logged with the number of truncated items on every run); padding is per batch
ITEM_MAX_TOKENS = 64


def movielens_run_arguments(folder: Path, **overrides) -> EmbSumRunArguments:
    """The demo's tiny from-scratch shape on MovieLens 100K (its data fields, template and item budget)."""
    values = dict(
        dataset="movielens",
        train_data=str(folder),
        eval_data=None,
        paper_split=False,
        summaries=None,
        dataset_name="MovieLens-100K",
        item_template="movielens",
        item_max_tokens=ITEM_MAX_TOKENS,
    )
    return demo_run_arguments(folder, **{**values, **overrides})


def load_reads(
    folder: Path, reads_per_user: int, negatives: int, cold_fraction: float = 0.0
) -> tuple[RecommendationData, RecommendationData, RecommendationData | None]:
    """The "reads" protocol (module docstring): (train, test, cold-start test or None) through `load_custom`, one
    impression per read. With `cold_fraction`, that share of the films (drawn once, the same for every seed) never
    appears in training, in a history or among the test's unread films; the cold-start test gives each test user
    whose ratings include one the latest of them among `negatives` unread cold films, with the test's history."""
    movies = load_movielens(folder).items
    catalogue = list(movies["item_id"])
    cold = set(random.Random("reads/cold").sample(catalogue, round(cold_fraction * len(catalogue))))
    warm = [item for item in catalogue if item not in cold]
    by_user: dict[str, list[tuple[int, int, str]]] = {}
    for number, fields in iter_fields(folder / "u.data", 4):
        by_user.setdefault(fields[0], []).append((int(fields[3]), number, fields[1]))
    logs = {name: [] for name in ("user_id", "item_id", "label", "timestamp", "impression_id")}
    cold_reads: dict[str, tuple[str, list[str]]] = {}  # user -> (latest cold read, unread cold films)
    for user, reads in by_user.items():
        rated = {item for _, _, item in reads}
        unrated = [item for item in warm if item not in rated]
        reads = sorted(reads)
        if latest_cold := [item for _, _, item in reads if item in cold]:
            cold_reads[user] = latest_cold[-1], [item for item in catalogue if item in cold and item not in rated]
        reads = [read for read in reads if read[2] not in cold][-reads_per_user:]
        previous = -1
        for k, (timestamp, number, item) in enumerate(reads):
            previous = timestamp = max(timestamp, previous + 1)  # ties broken by file order: a strict history
            rng = random.Random(f"reads/{user}/{number}")
            impression = [(item, 1), *((other, 0) for other in rng.sample(unrated, negatives))]
            rng.shuffle(impression)  # the read's place says nothing (a tie must not rank it first)
            for candidate, label in impression:
                for name, value in zip(logs, (user, candidate, label, timestamp, f"{user}/{k}")):
                    logs[name].append(value)
    data = load_custom(
        movies,
        datasets.Dataset.from_dict(logs),
        impression_column="impression_id",
        domain="movielens",
        split=f"{folder.name}-reads",
    )
    train, _, test = split_by_time(data, dev_impressions=0)
    if not cold:
        return train, test, None
    rows = []
    for row in test.impressions:
        if row["user_id"] not in cold_reads:
            continue
        item, unread = cold_reads[row["user_id"]]
        rng = random.Random(f"reads/cold/{row['user_id']}")
        impression = [(item, 1), *((other, 0) for other in rng.sample(unread, min(negatives, len(unread))))]
        rng.shuffle(impression)
        candidates, labels = map(list, zip(*impression))
        rows.append({**row, "impression_id": f"{row['user_id']}/cold", "candidates": candidates, "labels": labels})
    cold_test = RecommendationData.from_rows(movies, rows, "movielens", f"{folder.name}-reads:cold", {})
    logger.info(
        "cold start: %d of %d films held out of training; %d test users read one", len(cold), len(catalogue), len(rows)
    )
    return train, test, cold_test
