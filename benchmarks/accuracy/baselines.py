"""The baselines that learn nothing under the budget: TF-IDF, MovieLens' item mean rating and the fitted item prior
alone (`random` and `popularity` are the package's `baseline_scores`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from embsum_hf.data import build_training_rows, iter_fields
from embsum_hf.data.schema import RecommendationData
from embsum_hf.processing_embsum import EmbSumProcessor
from embsum_hf.training.item_prior import fit_item_prior

logger = logging.getLogger(__name__)


def tfidf_scores(tests: Sequence[RecommendationData], processor: EmbSumProcessor) -> list[list[list[float]]]:
    """For each test (sharing one items table): cosine between each candidate's TF-IDF vector and the mean TF-IDF
    vector of the user's history window. One fit for all of them."""
    item_ids = list(tests[0].items["item_id"])
    matrix = TfidfVectorizer().fit_transform([processor.format_item(row) for row in tests[0].items])
    index = {item: i for i, item in enumerate(item_ids)}
    window = processor.config.max_history_items
    per_test = []
    for test in tests:
        scores = []
        for history, candidates in zip(test.impressions["history"], test.impressions["candidates"]):
            items = matrix[[index[c] for c in candidates]]
            if not history:
                scores.append([0.0] * len(candidates))
                continue
            profile = np.asarray(matrix[[index[h] for h in history[:window]]].mean(axis=0))
            profile /= max(np.linalg.norm(profile), 1e-12)
            scores.append((items @ profile.T).ravel().tolist())  # rows are L2-normalised: dot = cosine
        per_test.append(scores)
    return per_test


def item_mean_rating_scores(folder: Path, train: RecommendationData, test: RecommendationData, prior: float = 5.0):
    """Each item's mean star rating over the train impressions' ratings, damped towards the global mean."""
    ratings = {}
    for _, fields in iter_fields(folder / "u.data", 4):
        ratings[(fields[0], fields[1])] = float(fields[2])
    total, count = {}, {}
    for user, candidates in zip(train.impressions["user_id"], train.impressions["candidates"]):
        for item in candidates:
            total[item] = total.get(item, 0.0) + ratings[(user, item)]
            count[item] = count.get(item, 0) + 1
    mean = sum(total.values()) / sum(count.values())
    damped = {item: (total[item] + prior * mean) / (count[item] + prior) for item in total}
    return [[damped.get(item, mean) for item in row] for row in test.impressions["candidates"]]


def item_prior_fit_scores(train: RecommendationData, tests: Sequence[RecommendationData]) -> list[list[list[float]]]:
    """`fit_item_prior` alone (what EmbSum + item prior starts from), fitted once: for each test, each candidate's
    fitted bias, 0 if unseen. Also logs how many of each test's candidates were never a training candidate (cold
    start: their prior is 0)."""
    items = sorted({item for candidates in train.impressions["candidates"] for item in candidates})
    bias = fit_item_prior(build_training_rows(train.impressions), items)
    rows = {item: row for row, item in enumerate(items, start=1)}
    per_test = []
    for test in tests:
        candidates = test.impressions["candidates"]
        cold = sum(item not in rows for row in candidates for item in row)
        total = sum(map(len, candidates))
        logger.info("%s: %d of %d candidates never were a training candidate", test.split, cold, total)
        per_test.append([[float(bias[rows.get(item, 0)]) for item in row] for row in candidates])
    return per_test
