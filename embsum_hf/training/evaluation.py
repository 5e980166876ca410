"""Impression evaluation the way EmbSum is served: every item and every user encoded once, then batched scoring.

A forward pass per impression would re-encode the same user and items over and over; here the unique candidate
items become one CPE table and the unique (user, history) pairs one UPE table, and each impression's scores are a
gather plus [`poly_relevance`]. Under Accelerate the encoding is sharded across ranks and gathered, so every rank
ends with the same scores and the same metrics as a single process.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from accelerate import Accelerator

from ..data.schema import UNLABELED, RecommendationData
from ..data.users import user_histories
from ..metrics import compute_mind_metrics
from ..modeling_embsum import EmbSumModel, poly_relevance
from ..processing_embsum import EmbSumProcessor
from ..serving.summaries import generate_summaries
from ..utils import evaluating, tqdm
from .collator import tokenize_item_table

logger = logging.getLogger(__name__)


@dataclass
class ImpressionPredictions:
    """Scores of every candidate of every impression, in the data's candidate order."""

    impression_ids: list[str]
    scores: list[list[float]]
    labels: list[list[int]]
    user_ids: list[str]


def _sharded(
    accelerator: Accelerator | None,
    count: int,
    batch_size: int,
    encode: Callable[[list[int]], torch.Tensor],
    desc: str,
) -> torch.Tensor:
    """Rows `encode(indices)` for indices 0..count-1: each rank encodes every world-th index, then all gather."""
    world = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    mine = list(range(rank, count, world))
    per_rank = math.ceil(count / world)
    chunks = []
    show = accelerator is None or accelerator.is_local_main_process
    for start in tqdm(range(0, len(mine), batch_size), desc=desc, disable=not show):
        chunks.append(encode(mine[start : start + batch_size]).float())
    local = torch.cat(chunks) if chunks else None
    if world == 1:
        return local
    # pad to the same row count on every rank, gather, and put rows back in index order
    probe = local if local is not None else encode([0]).float()
    padded = probe.new_zeros(per_rank, *probe.shape[1:])
    if local is not None:
        padded[: len(local)] = local
    gathered = accelerator.gather(padded.to(accelerator.device)).cpu()  # (world * per_rank, ...)
    index = torch.tensor([(i % world) * per_rank + i // world for i in range(count)])
    return gathered[index]


class ImpressionEvaluator:
    """
    Scores the impressions of a [`RecommendationData`] split with an [`EmbSumModel`] and computes the official MIND
    metrics (labelled splits) or just the scores (the unlabelled MIND-large test set, for `prediction.txt`).
    Given to [`EmbSumTrainer`] (`evaluator=`), its metrics join `eval_loss`, prefixed by `name` when it has one.
    """

    def __init__(
        self,
        data: RecommendationData,
        processor: EmbSumProcessor,
        *,
        item_batch_size: int = 128,
        user_batch_size: int = 32,
        impression_batch_size: int = 256,
        name: str | None = None,
    ):
        self.data = data
        self.name = name
        self.processor = processor
        self.item_batch_size = item_batch_size
        self.user_batch_size = user_batch_size
        self.impression_batch_size = impression_batch_size
        impressions = data.impressions
        self.impression_ids = list(impressions["impression_id"])
        self.user_ids = list(impressions["user_id"])
        self.candidates = [list(c) for c in impressions["candidates"]]
        self.labels = [list(y) for y in impressions["labels"]]
        # the unique items and (user history) pairs to encode, and each impression's index into them
        self.item_ids = sorted({item for candidates in self.candidates for item in candidates})
        item_index = {item: i for i, item in enumerate(self.item_ids)}
        self.candidate_index = [[item_index[item] for item in candidates] for candidates in self.candidates]
        history_index: dict[tuple[str, ...], int] = {}
        keys = [tuple(history[: processor.config.max_history_items]) for history in impressions["history"]]
        self.user_index = [history_index.setdefault(key, len(history_index)) for key in keys]
        self.histories = list(history_index)
        self._item_token_ids: dict[str, list[int]] | None = None

    @property
    def item_token_ids(self) -> dict[str, list[int]]:
        if self._item_token_ids is None:
            needed = set(self.item_ids) | {item for history in self.histories for item in history}
            items = self.data.items.filter(
                lambda batch: [i in needed for i in batch], input_columns="item_id", batched=True
            )
            self._item_token_ids = tokenize_item_table(self.processor, items)
        return self._item_token_ids

    def predict(self, model: EmbSumModel, accelerator: Accelerator | None = None) -> ImpressionPredictions:
        """Scores of every impression's candidates (no metrics)."""
        device = next(model.parameters()).device
        tokens = self.item_token_ids
        autocast = accelerator.autocast() if accelerator is not None else torch.autocast(device.type, enabled=False)
        with evaluating(model), autocast:
            # items sorted by length so batches carry little padding
            by_length = sorted(range(len(self.item_ids)), key=lambda i: len(tokens[self.item_ids[i]]))

            def encode_items(indices: list[int]) -> torch.Tensor:
                ids = [tokens[self.item_ids[by_length[i]]] for i in indices]
                cpe = model.encode_item(**self.processor.pad_items(ids).to(device))
                return torch.stack([cpe, model.item_score_keys(cpe)], dim=1)  # (n, 2, M, d)

            table = _sharded(accelerator, len(by_length), self.item_batch_size, encode_items, "Encoding items")
            table[torch.tensor(by_length)] = table.clone()  # back to item_ids order
            cpe, keys = table[:, 0], table[:, 1]  # (I, M, d) each

            def encode_users(indices: list[int]) -> torch.Tensor:
                sessions = [self.processor.pack_sessions([tokens[i] for i in self.histories[j]]) for j in indices]
                batch = self.processor.pad_users(sessions).to(device)
                return model.encode_user(**batch).user_embeddings  # (n, K, d)

            upe = _sharded(accelerator, len(self.histories), self.user_batch_size, encode_users, "Encoding users")
            prior = model.item_prior_scores(model.item_prior_index(self.item_ids)).float().cpu()  # (I,), 0 without

        scores: list[list[float]] = []
        for start in range(0, len(self.candidate_index), self.impression_batch_size):
            rows = self.candidate_index[start : start + self.impression_batch_size]
            width = max(len(row) for row in rows)
            index = torch.tensor([row + [0] * (width - len(row)) for row in rows])  # (B, C)
            users = torch.tensor(self.user_index[start : start + len(rows)])
            batch_scores = poly_relevance(upe[users], cpe[index], keys[index]) + prior[index]  # (B, C)
            scores += [batch_scores[i, : len(row)].tolist() for i, row in enumerate(rows)]
        return ImpressionPredictions(self.impression_ids, scores, self.labels, self.user_ids)

    def evaluate(self, model: EmbSumModel, accelerator: Accelerator | None = None) -> dict[str, float]:
        """Official MIND metrics (`auc`, `mrr`, `ndcg@5`, `ndcg@10`, counts) of the model on this split."""
        predictions = self.predict(model, accelerator)
        return impression_metrics(predictions.scores, predictions.labels, split=self.data.split)


def impression_metrics(
    scores: Sequence[Sequence[float]], labels: Sequence[Sequence[int]], *, split: str = "this split"
) -> dict[str, float]:
    """`compute_mind_metrics` over the labelled impressions (unlabelled ones, all -1, are left out)."""
    labelled = [i for i, row in enumerate(labels) if UNLABELED not in row]
    if not labelled:
        raise ValueError(f"{split} has no labels; use predict() and write_prediction_file()")
    return compute_mind_metrics([scores[i] for i in labelled], [list(labels[i]) for i in labelled])


def baseline_scores(
    data: RecommendationData, train: RecommendationData, kind: str, seed: int = 0
) -> list[list[float]]:
    """
    Scores of a non-learned baseline for every impression of `data`: `"random"` (uniform, seeded) or `"popularity"`
    (clicks of each item in `train`, ties broken by impression count).
    """
    if kind == "random":
        generator = torch.Generator().manual_seed(seed)
        return [torch.rand(len(c), generator=generator).tolist() for c in data.impressions["candidates"]]
    if kind == "popularity":
        clicks: dict[str, float] = {}
        for candidates, labels in zip(train.impressions["candidates"], train.impressions["labels"]):
            for item, label in zip(candidates, labels):
                clicks[item] = clicks.get(item, 0.0) + max(int(label), 0) + 1e-3
        return [[clicks.get(item, 0.0) for item in c] for c in data.impressions["candidates"]]
    raise ValueError(f"unknown baseline {kind!r}; expected 'random' or 'popularity'")


def summary_rouge(
    model: EmbSumModel,
    processor: EmbSumProcessor,
    data: RecommendationData,
    summaries: dict[str, str],
    *,
    max_users: int = 100,
    batch_size: int = 16,
    seed: int = 0,
) -> tuple[dict[str, float], list[tuple[str, str, str]]]:
    """
    [`summary_metrics`] of the model's own summaries against the teacher's for the users of `data` that have one (each
    from the history the teacher saw, at most `max_users`): ROUGE, the constant-sentence baseline (the most typical
    of all `summaries`), the specificity gap and the distinct-summary share. Returns the metrics and
    `(user_id, generated, teacher)` triples.
    """
    from ..metrics import constant_summary, summary_metrics

    histories = {user: history for user, history in user_histories(data) if user in summaries}
    users = sorted(histories)[:max_users]
    if not users:
        return {}, []
    generated = generate_summaries(
        model, processor, [histories[user] for user in users], batch_size=batch_size, progress=True
    )
    teacher = [summaries[user] for user in users]
    constant = constant_summary(list(summaries.values()), seed=seed)
    return summary_metrics(generated, teacher, constant=constant, seed=seed), list(zip(users, generated, teacher))
