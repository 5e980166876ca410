"""Training arguments: transformers' own, plus what EmbSum's joint objective and evaluation need."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from transformers import T5Config, TrainingArguments

from ..configuration_embsum import EmbSumConfig
from .item_prior import DEFAULT_PRIOR_STD

# argparse settings of a `bool | None` lever (None: chosen by `embsum train`): a bare `--flag` is `--flag true`, as
# for a plain bool field (HfArgumentParser passes a field's metadata to `add_argument`)
TRI_STATE_FLAG = {"nargs": "?", "const": True}
# the training levers `embsum train` from scratch chooses from the data when unset (`recipe.choose_data_levers`), at
# their paper values: what an `EmbSumTrainer` used without the recipe trains with
PAPER_TRAINING_LEVERS: dict[str, bool | int] = {
    "in_batch_negatives": False,
    "logq_correction": False,
    "summary_warmup_steps": 0,
    "history_clicks": 0,
}
# the model levers `embsum train` from scratch chooses from the data when unset, at the config's defaults (the
# paper's): what a model built from `ModelArguments` without the recipe gets
PAPER_MODEL_LEVERS: dict[str, bool | float] = {
    name: getattr(EmbSumConfig, name)
    for name in ("summary_copy", "summary_loss_weight", "summary_history_boost", "summary_session_positions")
}
# the `ModelArguments` fields that are unset (None) by default and resolved by the recipe: the model levers chosen from
# the data, and the dropout of a backbone trained from scratch (`recipe.FROM_SCRATCH_DROPOUT_RATE`)
RECIPE_RESOLVED_FIELDS = frozenset({*PAPER_MODEL_LEVERS, "dropout_rate"})
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
    in_batch_negatives: bool | None = field(
        default=None,
        metadata={
            "help": "Also contrast each click with the other users' candidates of the batch (with "
            "group_by_impression, clicks of impressions without a non-click are then kept: the batch gives them "
            "negatives). Default (unset): `embsum train` from scratch chooses it from the training data "
            "(`recipe.choose_data_levers`: on for a sparse catalogue), otherwise off (the paper's)."
        }
        | TRI_STATE_FLAG,
    )
    summary_warmup_steps: int | None = field(
        default=None,
        metadata={
            "help": "The summary loss joins gradually: its weight rises linearly from 0 to the model's "
            "summary_loss_weight over the first N optimiser steps, so the click objective starts alone. 0: the full "
            "weight from the first step (the paper's). Default (unset): `embsum train` from scratch chooses it from "
            "the training data (`recipe.choose_data_levers`: 300 on a sparse catalogue), otherwise 0."
        },
    )
    text_pretraining_steps: int = field(
        default=0,
        metadata={
            "help": "Before the joint objective, train the encoder-decoder this many steps on the items' own text "
            "(`text_pretraining.pretrain_on_text`: spans covering 15 percent of an item's tokens, each replaced by "
            "<unk>, the decoder writing the text back; the run's batch size, learning rate and seed). For a model "
            "trained from scratch; its CPU time is part of the run's. 0: none (the paper's)."
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
    history_clicks: int | None = field(
        default=None,
        metadata={
            "help": "Also train on each user's N most recent history reads as clicks of their own, each with the "
            "reads before it as its history and negatives drawn uniformly from the training items "
            "(`rows.history_click_rows`): on a leave-last-out log the histories hold most of the reads. 0: the "
            "paper's rows (one per click). Default (unset): `embsum train` from scratch chooses it from the training "
            "data (`recipe.choose_data_levers`: 1 on a sparse catalogue), otherwise 0."
        },
    )
    logq_correction: bool | None = field(
        default=None,
        metadata={
            "help": "Subtract log(sampling share) from in-batch negatives' scores (Yi et al., 2019). Default (unset): "
            "as in_batch_negatives."
        }
        | TRI_STATE_FLAG,
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
        if self.logq_correction is None and self.in_batch_negatives is not None:
            self.logq_correction = self.in_batch_negatives  # unset: as in_batch_negatives
        if self.logq_correction and not self.in_batch_negatives:
            raise ValueError("logq_correction corrects in-batch negatives: set in_batch_negatives too")
        if self.summary_warmup_steps is not None and self.summary_warmup_steps < 0:
            raise ValueError(f"summary_warmup_steps must be >= 0, got {self.summary_warmup_steps}")
        if self.text_pretraining_steps < 0:
            raise ValueError(f"text_pretraining_steps must be >= 0, got {self.text_pretraining_steps}")
        if self.history_clicks is not None and self.history_clicks < 0:
            raise ValueError(f"history_clicks must be >= 0, got {self.history_clicks}")
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


def config_field(name: str, config_class: type = EmbSumConfig) -> Any:
    """
    A [`ModelArguments`] field whose default and help are `config_class`'s own, written once there: the default is
    the config's class attribute, the help the field's entry in the config's docstring (`Args:`, the lines under
    `name (`type`, ...):`). `config_class` is `EmbSumConfig`, or `T5Config` for the shape of a from-scratch backbone.
    A field of `RECIPE_RESOLVED_FIELDS` defaults to None instead (unset: resolved by the recipe).
    """
    prefix = "" if config_class is EmbSumConfig else "From-scratch backbone: "
    entry = docstring_entry(config_class, name)
    text = f"{prefix}{config_class.__name__}.{name}" + (f": {entry}" if entry else ".")
    if name in PAPER_MODEL_LEVERS:  # unset (None): chosen from the data, like the training levers
        text += (
            " Default (unset): `embsum train` from scratch chooses it from the training data "
            "(`recipe.choose_data_levers`: the summary recipe on a sparse catalogue), otherwise the config's "
            f"{PAPER_MODEL_LEVERS[name]}."
        )
        flag = TRI_STATE_FLAG if isinstance(PAPER_MODEL_LEVERS[name], bool) else {}
        return field(default=None, metadata={"help": text, **flag})
    if name == "dropout_rate":
        text += (
            " Default (unset): the recipe's `FROM_SCRATCH_DROPOUT_RATE` (no dropout), not T5's "
            f"{getattr(config_class, name)}."
        )
        return field(default=None, metadata={"help": text})
    return field(default=getattr(config_class, name), metadata={"help": text})


def docstring_entry(config_class: type, name: str) -> str:
    """The text of `name`'s entry in `config_class`'s docstring, on one line ("" when it has none)."""
    lines = (config_class.__doc__ or "").splitlines()
    for at, line in enumerate(lines):
        if line.strip().startswith(f"{name} (") and line.rstrip().endswith(":"):
            indent = len(line) - len(line.lstrip())
            text = []
            for following in lines[at + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                text.append(following)
            return " ".join(" ".join(text).split())
    return ""


# the EmbSumConfig fields (the others of ModelArguments are the backbone's T5Config fields)
_EMBSUM_FIELDS = frozenset(f.name for f in dataclasses.fields(EmbSumConfig))


@dataclass
class ModelArguments:
    """
    The model shape of a training run: the `EmbSumConfig` fields it sets and, when it trains from scratch, the T5
    backbone's. Defaults, help and validation are the configs' own (see [`config_field`]): a model knob is a field
    of `EmbSumConfig` (its default, its docstring entry, its check in `_check_values`), and `embsum train` takes it
    once it has its line here.
    """

    num_user_codes: int = config_field("num_user_codes")
    num_item_codes: int = config_field("num_item_codes")
    max_history_items: int = config_field("max_history_items")
    session_max_tokens: int = config_field("session_max_tokens")
    session_max_items: int | None = config_field("session_max_items")
    item_max_tokens: int = config_field("item_max_tokens")
    summary_max_tokens: int = config_field("summary_max_tokens")
    summary_loss_weight: float | None = config_field("summary_loss_weight")
    summary_mode: str = config_field("summary_mode")
    summary_history_boost: float | None = config_field("summary_history_boost")
    summary_history_boost_plausibility: float = config_field("summary_history_boost_plausibility")
    summary_copy: bool | None = config_field("summary_copy")
    summary_session_positions: bool | None = config_field("summary_session_positions")
    summary_slot_lead: str | None = config_field("summary_slot_lead")
    d_model: int = config_field("d_model", T5Config)
    num_layers: int = config_field("num_layers", T5Config)
    num_heads: int = config_field("num_heads", T5Config)
    d_ff: int = config_field("d_ff", T5Config)
    dropout_rate: float | None = config_field("dropout_rate", T5Config)

    def __post_init__(self):
        # the one validation of these fields is the configs' own: building the config now fails as the arguments
        # are parsed, with one line naming the field (`embsum train` exits with status 2)
        EmbSumConfig(t5_config=self.t5_overrides(), **self.config_overrides())

    def config_overrides(self) -> dict:
        """The `EmbSumConfig` keyword arguments of these arguments (a lever left unset: the config's default)."""
        return {name: value for name, value in self._given().items() if name in _EMBSUM_FIELDS}

    def _given(self) -> dict:
        """Every field's value, less those of `RECIPE_RESOLVED_FIELDS` left unset."""
        fields = (f.name for f in dataclasses.fields(ModelArguments))
        values = {name: getattr(self, name) for name in fields}
        return {name: v for name, v in values.items() if v is not None or name not in RECIPE_RESOLVED_FIELDS}

    def t5_overrides(self) -> dict:
        """
        The `T5Config` keyword arguments of a backbone trained from scratch: the fields that are not `EmbSumConfig`'s
        (an unset dropout left out: the recipe's), and `d_kv` = `d_model / num_heads` (a `num_heads` below 1 is left
        for the config to name).
        """
        overrides = {name: value for name, value in self._given().items() if name not in _EMBSUM_FIELDS}
        return {**overrides, "d_kv": self.d_model // max(self.num_heads, 1)}
