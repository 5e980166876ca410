"""Training examples (negatives re-sampled every epoch) and the collator that pads them into model inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import datasets
import torch

from ..data.examples import sample_negatives
from ..processing_embsum import EmbSumProcessor


def tokenize_item_table(processor: EmbSumProcessor, items: datasets.Dataset) -> dict[str, list[int]]:
    """Token ids of every item of an items table, computed once (batched `datasets.map`) and looked up by id."""
    columns = [name for name in items.column_names if name != "item_id"]

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        rows = [dict(zip(columns, values), item_id=item_id) for item_id, *values in zip(batch["item_id"], *(batch[c] for c in columns))]
        return {"input_ids": processor.tokenize_items(rows)}

    tokenized = items.map(tokenize, batched=True, batch_size=1000, remove_columns=columns, desc="Tokenizing items")
    return dict(zip(tokenized["item_id"], tokenized["input_ids"]))


class TrainingExamples(torch.utils.data.Dataset):
    """
    Rows of `build_training_rows` with `num_negatives` negatives drawn per row and epoch by `sample_negatives`
    (deterministic in seed, epoch and row), so a resumed run sees the same negatives as an uninterrupted one.
    The Trainer's dataloader calls `set_epoch` at the start of every epoch.
    """

    def __init__(self, rows: datasets.Dataset, num_negatives: int, seed: int = 42):
        self.rows = rows
        self.num_negatives = num_negatives
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        negatives = sample_negatives(
            row["negative_pool"], self.num_negatives, seed=self.seed, epoch=self.epoch, index=index
        )
        return {"history": row["history"], "candidates": [row["positive"], *negatives], "summary": row["summary"]}


class EmbSumDataCollator:
    """
    Pads a list of `{"history", "candidates", "summary"}` examples (item ids) into [`EmbSumModel.forward`] inputs:
    sessions `(B, G, L)`, candidates `(B, C, Li)` (the clicked item first) and summary labels `(B, T)`.
    Padding is dynamic: each batch is as wide as its longest session / item / summary.
    """

    def __init__(self, processor: EmbSumProcessor, item_token_ids: Mapping[str, Sequence[int]]):
        self.processor = processor
        self.item_token_ids = item_token_ids

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
        return batch
