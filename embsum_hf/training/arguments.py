"""Training arguments: transformers' own, plus what EmbSum's joint objective and evaluation need."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

DEFAULT_NUM_NEGATIVES = 4  # EmbSum's MIND setting, for data without a paper setting of its own


@dataclass
class EmbSumTrainingArguments(TrainingArguments):
    """
    [`TrainingArguments`] with EmbSum defaults: the best checkpoint is chosen by dev AUC, and the layers new on top
    of T5 (poly-attention codes and projections, the score projection) learn `new_layers_lr_multiplier` times faster
    than the backbone (SPAR used 5x). Each click is contrasted with `num_negatives` non-clicked items of its
    impression, re-sampled every epoch.
    """

    new_layers_lr_multiplier: float = field(
        default=5.0, metadata={"help": "Learning-rate multiplier of the layers added on top of T5."}
    )
    num_negatives: int | None = field(
        default=None,
        metadata={
            "help": "Non-clicked items sampled per click for the NCE loss (default: the data source's paper setting, "
            f"MIND 4 and Goodreads 2; else {DEFAULT_NUM_NEGATIVES})."
        },
    )
    eval_item_batch_size: int = field(default=128, metadata={"help": "Items per encoder batch in evaluation."})
    eval_user_batch_size: int = field(default=32, metadata={"help": "Users per encoder batch in evaluation."})
    metric_for_best_model: str | None = field(default="auc", metadata={"help": "Dev metric that picks the best model."})
    greater_is_better: bool | None = field(default=True, metadata={"help": "Higher `metric_for_best_model` is better."})
    # the collator needs the example's item ids, which are no model inputs
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep False: examples are item ids."})

    def __post_init__(self):
        super().__post_init__()
        if self.new_layers_lr_multiplier <= 0:
            raise ValueError(f"new_layers_lr_multiplier must be > 0, got {self.new_layers_lr_multiplier}")
        if self.num_negatives is not None and self.num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {self.num_negatives}")

    @property
    def negatives_per_click(self) -> int:
        """`num_negatives`, or the default when it is unset."""
        return DEFAULT_NUM_NEGATIVES if self.num_negatives is None else self.num_negatives
