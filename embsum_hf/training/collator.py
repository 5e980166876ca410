"""Training examples (negatives re-sampled every epoch) and the collator that pads them into model inputs."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import datasets
import torch

from ..data.rows import sample_negatives, sample_unread
from ..processing_embsum import EmbSumProcessor


def tokenize_item_table(processor: EmbSumProcessor, items: datasets.Dataset) -> dict[str, list[int]]:
    """Token ids of every item of an items table, computed once (batched `datasets.map`) and looked up by id."""
    columns = [name for name in items.column_names if name != "item_id"]

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        rows = [
            dict(zip(columns, values), item_id=item_id)
            for item_id, *values in zip(batch["item_id"], *(batch[c] for c in columns))
        ]
        return {"input_ids": processor.tokenize_items(rows)}

    tokenized = items.map(tokenize, batched=True, batch_size=1000, remove_columns=columns, desc="Tokenizing items")
    return dict(zip(tokenized["item_id"], tokenized["input_ids"]))


class TrainingExamples(torch.utils.data.Dataset):
    """
    Rows of `build_training_rows` with `num_negatives` negatives drawn per row and epoch by `sample_negatives`
    (deterministic in seed, epoch and row), so a resumed run sees the same negatives as an uninterrupted one.
    The Trainer's dataloader calls `set_epoch` at the start of every epoch.

    With `group_by_impression`, one example is one impression: all its clicks, then `num_negatives` of its
    non-clicks (at most as many as it has), with `labels` saying which is which. The user's history is then encoded
    once for all of the impression's clicks instead of once per click.

    With `catalogue_negatives`, every example also gets that many items drawn uniformly from `catalogue` (none of
    the user's history or clicks), re-drawn every epoch: negatives for rows without non-clicks of their own and, on a
    sparse catalogue, the uniform contrast a leave-last-out test ranks against.
    """

    def __init__(
        self,
        rows: datasets.Dataset,
        num_negatives: int,
        seed: int = 42,
        group_by_impression: bool = False,
        catalogue: Sequence[str] | None = None,
        catalogue_negatives: int = 0,
    ):
        self.rows = rows
        self.num_negatives = num_negatives
        self.seed = seed
        self.epoch = 0
        self.groups: list[list[int]] | None = None
        if catalogue_negatives < 0:
            raise ValueError(f"catalogue_negatives must be >= 0, got {catalogue_negatives}")
        if catalogue_negatives and not catalogue:
            raise ValueError("catalogue_negatives needs a catalogue (the item ids to draw from)")
        self.catalogue = list(catalogue or ())
        self.catalogue_negatives = catalogue_negatives
        if group_by_impression:
            groups: dict[tuple[str, str], list[int]] = {}
            for index, key in enumerate(zip(rows["user_id"], rows["impression_id"])):
                groups.setdefault(key, []).append(index)
            self.groups = list(groups.values())

    def catalogue_sample(self, exclude: set[str], *, epoch: int, index: int | str, k: int | None = None) -> list[str]:
        """`k` (default `catalogue_negatives`) items drawn uniformly from the catalogue, none of them in `exclude`
        (the user's history and clicks), deterministically in (seed, epoch, index), without repeats; fewer when the
        draws keep hitting excluded items (a catalogue hardly larger than `exclude`)."""
        k = self.catalogue_negatives if k is None else k
        return sample_unread(self.catalogue, exclude, k, key=f"{self.seed}/{epoch}/{index}/catalogue")

    def prior_fit_rows(self, history_draws: int = 0) -> datasets.Dataset | dict[str, list]:
        """
        The rows as [`fit_item_prior`] reads them: each row's non-clicks plus one draw of catalogue negatives.

        With `history_draws` > 0, every history item is also a click (once per user and item; these rows come after
        the training rows) against that many items drawn uniformly from the catalogue (none of the user's reads):
        the prior then counts every read, as popularity does, instead of the training clicks alone (on a
        leave-last-out log, one read per user).
        """
        if not self.catalogue_negatives and not history_draws:
            return self.rows
        if history_draws and not self.catalogue:
            raise ValueError("fitting the item prior on history reads needs a catalogue (the item ids to draw from)")
        positives: list[str] = []
        pools: list[list[str]] = []
        read_positives: list[str] = []  # the history reads, after every row
        read_pools: list[list[str]] = []
        counted: dict[str, set[str]] = {}  # user -> items already counted as a read
        columns = zip(self.rows["user_id"], self.rows["history"], self.rows["positive"], self.rows["negative_pool"])
        for index, (user, history, positive, pool) in enumerate(columns):
            reads = {*history, positive}
            positives.append(positive)
            pools.append([*pool, *self.catalogue_sample({*reads, *pool}, epoch=-1, index=index)])
            if not history_draws:
                continue
            done = counted.setdefault(user, set())
            done.add(positive)
            for position, item in enumerate(history):
                if item not in done:
                    done.add(item)
                    read_positives.append(item)
                    draw = self.catalogue_sample(reads, epoch=-1, index=f"{index}/{position}", k=history_draws)
                    read_pools.append(draw)
        return {"positive": positives + read_positives, "negative_pool": pools + read_pools}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows) if self.groups is None else len(self.groups)

    def __getitem__(self, index: int) -> dict:
        if self.groups is not None:
            rows = self.rows[self.groups[index]]  # the impression's click rows (one history, one negative pool)
            pool = rows["negative_pool"][0]
            negatives = sample_negatives(
                pool, min(self.num_negatives, len(pool)), seed=self.seed, epoch=self.epoch, index=index
            )
            exclude = {*rows["history"][0], *rows["positive"], *negatives}
            negatives += self.catalogue_sample(exclude, epoch=self.epoch, index=index)
            candidates = [*rows["positive"], *negatives]
            labels = [1] * len(rows["positive"]) + [0] * len(negatives)
            return {
                "history": rows["history"][0],
                "candidates": candidates,
                "labels": labels,
                "summary": rows["summary"][0],
            }
        row = self.rows[index]
        pool = row["negative_pool"]
        negatives = (
            sample_negatives(pool, self.num_negatives, seed=self.seed, epoch=self.epoch, index=index) if pool else []
        )
        exclude = {*row["history"], row["positive"], *negatives}
        negatives += self.catalogue_sample(exclude, epoch=self.epoch, index=index)
        return {"history": row["history"], "candidates": [row["positive"], *negatives], "summary": row["summary"]}


class EmbSumDataCollator:
    """
    Pads a list of `{"history", "candidates", "summary"}` examples (item ids; optionally `"labels"`, 1 per click and
    0 per non-click) into [`EmbSumModel.forward`] inputs: sessions `(B, G, L)`, candidates `(B, C, Li)` (without
    labels the clicked item first), `candidate_labels` `(B, C)` and summary labels `(B, T)`. Padding is dynamic:
    each batch is as wide as its longest session / item / summary. Given `item_log_q` (item id -> log of its share
    among the training candidates), batches carry `candidate_log_q` `(B, C)` for the in-batch logQ correction (the
    trainer's [`in_batch_click_loss`], no model input); an item that was never a training candidate (e.g. a dev item)
    gets the smallest share, as the rarest item seen.
    """

    def __init__(
        self,
        processor: EmbSumProcessor,
        item_token_ids: Mapping[str, Sequence[int]],
        item_log_q: Mapping[str, float] | None = None,
    ):
        self.processor = processor
        self.item_token_ids = item_token_ids
        self.item_log_q = item_log_q
        self.unseen_log_q = min(item_log_q.values(), default=0.0) if item_log_q is not None else None
        # the model's item prior rows (config.item_prior_ids), 0 for items without one; None: no item prior
        prior_ids = getattr(processor.config, "item_prior_ids", None)
        self.prior_rows = {item: row for row, item in enumerate(prior_ids, start=1)} if prior_ids else None

    def _ids(self, item_ids: Sequence[str]) -> list[Sequence[int]]:
        try:
            return [self.item_token_ids[item_id] for item_id in item_ids]
        except KeyError as error:
            raise KeyError(f"item {error.args[0]!r} is not in the items table given to the collator") from None

    def user_sessions(self, history: Sequence[str]) -> list[list[int]]:
        return self.processor.pack_sessions(self._ids(history[: self.processor.config.max_history_items]))

    def __call__(self, examples: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        batch = self.processor.pad_users(
            [self.user_sessions(example["history"]) for example in examples],
            summaries=[example.get("summary") for example in examples],
        )
        batch.update(self.processor.pad_candidates([self._ids(example["candidates"]) for example in examples]))
        width = batch["candidate_input_ids"].shape[1]
        labels = torch.full((len(examples), width), -100, dtype=torch.long)
        for row, example in enumerate(examples):
            given = example.get("labels") or [1] + [0] * (len(example["candidates"]) - 1)
            labels[row, : len(given)] = torch.tensor(given, dtype=torch.long)
        batch["candidate_labels"] = labels
        if self.prior_rows is not None:
            index = torch.zeros(len(examples), width, dtype=torch.long)
            for row, example in enumerate(examples):
                rows = [self.prior_rows.get(c, 0) for c in example["candidates"]]
                index[row, : len(rows)] = torch.tensor(rows)
            batch["candidate_item_index"] = index
        if self.item_log_q is not None:
            log_q = torch.zeros(len(examples), width)
            for row, example in enumerate(examples):
                log_q[row, : len(example["candidates"])] = torch.tensor(
                    [self.item_log_q.get(c, self.unseen_log_q) for c in example["candidates"]]
                )
            batch["candidate_log_q"] = log_q
        return batch


def candidate_log_q(rows: datasets.Dataset) -> dict[str, float]:
    """Log of each item's share among the training candidates (clicks and negative pools): the logQ correction."""
    counts: Counter = Counter(rows["positive"])
    for pool in rows["negative_pool"]:
        counts.update(pool)
    total = sum(counts.values())
    return {item: math.log(count / total) for item, count in counts.items()}
