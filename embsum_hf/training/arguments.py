"""Training arguments: transformers' own, plus what EmbSum's joint objective and evaluation need."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from transformers import T5Config, TrainingArguments

from ..configuration_embsum import EmbSumConfig
from .item_prior import DEFAULT_PRIOR_STD

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
    group_by_impression: bool = field(
        default=True,
        metadata={
            "help": "One training example per impression (all its clicks against its sampled non-clicks, the "
            "history encoded once) instead of one per click (false: the paper's rows). Measured faster to learn per "
            "CPU-second (README, accuracy ablation)."
        },
    )
    in_batch_negatives: bool = field(
        default=False,
        metadata={
            "help": "Also contrast each click with the other users' candidates of the batch (with "
            "group_by_impression, clicks of impressions without a non-click are then kept: the batch gives them "
            "negatives)."
        },
    )
    catalogue_negatives: int = field(
        default=0,
        metadata={
            "help": "Also contrast each click with this many items drawn uniformly from the whole items table (not "
            "the user's history or clicks), re-drawn every epoch: the contrast of a test that ranks a read among "
            "uniformly drawn unread items."
        },
    )
    logq_correction: bool = field(
        default=False,
        metadata={"help": "Subtract log(sampling share) from in-batch negatives' scores (Yi et al., 2019)."},
    )
    fit_item_prior: bool = field(
        default=True,
        metadata={
            "help": "When the model has an item prior that is still all zeros, fit it to the training rows before the "
            "first step (`fit_item_prior`: each item's MAP bias under the click loss, seconds), so the content model "
            "learns the rest from the start. No effect on models without an item prior."
        },
    )
    item_prior_std: float = field(
        default=DEFAULT_PRIOR_STD,
        metadata={
            "help": "Standard deviation (logits) of the Gaussian prior on each item's bias in `fit_item_prior`: small "
            "keeps rarely seen items near 0; counting every read (`item_prior_history_draws`) wants it wider."
        },
    )
    item_prior_fusion: str = field(
        default="joint",
        metadata={
            "help": "How a model's item prior joins the content model: 'joint' (fitted before the first step, then "
            "trained with the model) or 'late' (the content model trains alone; after training the prior is fitted "
            "and added with the weight that ranks the dev split best, 0 when it does not help: needs a dev split).",
            "choices": ["joint", "late"],
        },
    )
    item_prior_history_draws: int = field(
        default=0,
        metadata={
            "help": "Fit the item prior on every read, not only the training clicks: each history item also counts as "
            "a click against this many items drawn uniformly from the catalogue. For leave-last-out logs (one click "
            "per user), where the histories hold most of the reads. 0: the training clicks alone."
        },
    )
    eval_item_batch_size: int = field(default=128, metadata={"help": "Items per encoder batch in evaluation."})
    eval_user_batch_size: int = field(default=32, metadata={"help": "Users per encoder batch in evaluation."})
    metric_for_best_model: str | None = field(
        default="auc", metadata={"help": "Dev metric that picks the best model."}
    )
    greater_is_better: bool | None = field(
        default=True, metadata={"help": "Higher `metric_for_best_model` is better."}
    )
    # the collator needs the example's item ids, which are no model inputs
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep False: examples are item ids."})

    def __post_init__(self):
        super().__post_init__()
        if self.new_layers_lr_multiplier <= 0:
            raise ValueError(f"new_layers_lr_multiplier must be > 0, got {self.new_layers_lr_multiplier}")
        if self.logq_correction and not self.in_batch_negatives:
            raise ValueError("logq_correction corrects in-batch negatives: set in_batch_negatives too")
        if self.catalogue_negatives < 0:
            raise ValueError(f"catalogue_negatives must be >= 0, got {self.catalogue_negatives}")
        if self.item_prior_std <= 0:
            raise ValueError(f"item_prior_std must be > 0, got {self.item_prior_std}")
        if self.item_prior_fusion not in ("joint", "late"):
            raise ValueError(f"item_prior_fusion must be 'joint' or 'late', got {self.item_prior_fusion!r}")
        if self.item_prior_history_draws < 0:
            raise ValueError(f"item_prior_history_draws must be >= 0, got {self.item_prior_history_draws}")
        if self.num_negatives is not None and self.num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {self.num_negatives}")

    @property
    def negatives_per_click(self) -> int:
        """`num_negatives`, or the default when it is unset."""
        return DEFAULT_NUM_NEGATIVES if self.num_negatives is None else self.num_negatives


# the EmbSumConfig fields a training run sets, and the backbone's shape when it trains from scratch: their defaults
# and help come from the configs themselves (EmbSumConfig: the paper's model; T5Config: t5-small)
MODEL_CONFIG_FIELDS = (
    "num_user_codes",
    "num_item_codes",
    "max_history_items",
    "session_max_tokens",
    "session_max_items",
    "item_max_tokens",
    "summary_max_tokens",
    "summary_loss_weight",
    "summary_mode",
    "summary_history_boost",
    "summary_history_boost_plausibility",
    "summary_copy",
    "summary_slot_lead",
)
BACKBONE_FIELDS = ("d_model", "num_layers", "num_heads", "d_ff", "dropout_rate")


def _config_fields(config_class: type, names: tuple[str, ...], help_prefix: str) -> list[tuple]:
    defaults = {f.name: f.default for f in dataclasses.fields(config_class)}
    types = {f.name: f.type for f in dataclasses.fields(config_class)}

    def help(name: str) -> str:
        # the first line of the field's entry in the config's docstring (`name (`type`, ...):\n    text`)
        found = re.search(rf"\n\s*{name} \(.*\):\n\s*(.+)", config_class.__doc__ or "")
        return f"{help_prefix}{name}" + (f": {found.group(1).strip()}" if found else ".")

    return [
        # the default's own type: HfArgumentParser takes no `float | int` union (an optional field keeps its own)
        (
            name,
            types[name] if defaults[name] is None else type(defaults[name]),
            field(default=defaults[name], metadata={"help": help(name)}),
        )
        for name in names
    ]


def _config_overrides(self) -> dict:
    """The `EmbSumConfig` keyword arguments of these arguments."""
    return {name: getattr(self, name) for name in MODEL_CONFIG_FIELDS}


def _t5_overrides(self) -> dict:
    """The `T5Config` keyword arguments of a backbone trained from scratch."""
    return {name: getattr(self, name) for name in BACKBONE_FIELDS}


ModelArguments = dataclasses.make_dataclass(
    "ModelArguments",
    _config_fields(EmbSumConfig, MODEL_CONFIG_FIELDS, "EmbSumConfig.")
    + _config_fields(T5Config, BACKBONE_FIELDS, "From-scratch backbone: T5Config."),
    namespace={"config_overrides": _config_overrides, "t5_overrides": _t5_overrides, "__module__": __name__},
)
ModelArguments.__doc__ = (
    "The model shape of a training run: the `EmbSumConfig` fields it sets and, when it trains from scratch, the T5 "
    "backbone's; every default is the config's own (one home per default)."
)
