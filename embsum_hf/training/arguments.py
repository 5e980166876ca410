"""Training arguments: transformers' own, plus what EmbSum's joint objective and evaluation need."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments


@dataclass
class EmbSumTrainingArguments(TrainingArguments):
    """
    [`TrainingArguments`] with EmbSum defaults: the best checkpoint is chosen by dev AUC, and the layers new on top
    of T5 (poly-attention codes and projections, the score projection) learn `new_layers_lr_multiplier` times faster
    than the backbone (SPAR used 5x).
    """

    new_layers_lr_multiplier: float = field(
        default=5.0, metadata={"help": "Learning-rate multiplier of the layers added on top of T5."}
    )
    group_by_impression: bool = field(
        default=False,
        metadata={
            "help": "One training example per impression (all its clicks against its sampled non-clicks, the history "
            "encoded once) instead of one per click."
        },
    )
    in_batch_negatives: bool = field(
        default=False,
        metadata={
            "help": "Also contrast each click with the other users' candidates of the batch (with group_by_impression, "
            "clicks of impressions without a non-click are then kept: the batch gives them negatives)."
        },
    )
    logq_correction: bool = field(
        default=False,
        metadata={"help": "Subtract log(sampling share) from in-batch negatives' scores (Yi et al., 2019)."},
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
        if self.logq_correction and not self.in_batch_negatives:
            raise ValueError("logq_correction corrects in-batch negatives: set in_batch_negatives too")
