"""EmbSumTrainer: the joint click + summary objective on the transformers Trainer (Accelerate underneath)."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import speed_metrics

from ..data.examples import build_training_rows
from ..data.schema import RecommendationData
from ..modeling_embsum import EmbSumModel
from ..processing_embsum import EmbSumProcessor
from .arguments import EmbSumTrainingArguments
from .collator import EmbSumDataCollator, TrainingExamples, tokenize_item_table
from .evaluation import ImpressionEvaluator

# the recipe facts the model card reports (TrainingArguments fields)
CARD_TRAINING_ARGS = (
    "learning_rate", "new_layers_lr_multiplier", "per_device_train_batch_size", "gradient_accumulation_steps",
    "num_train_epochs", "max_steps", "warmup_steps", "weight_decay", "lr_scheduler_type", "seed", "bf16", "fp16",
)

logger = logging.getLogger(__name__)


class EpochSeedCallback(TrainerCallback):
    """
    Sets the epoch of the training rows (which seeds their negatives) from the trainer state at the start of every
    epoch, the resumed one included. Accelerate's `DataLoaderShard.set_epoch` reaches the dataset only when the
    sampler has no `set_epoch` of its own, and not at all on the batch-skipping loader of a resumed epoch, so a
    run resumed after its first epoch would otherwise draw epoch 0's negatives.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        # `state.epoch` is `epoch + steps done / steps in epoch`: its floor is the epoch starting (or resumed) now
        self.dataset.set_epoch(math.floor(state.epoch or 0))


class EmbSumTrainer(Trainer):
    """
    Trains an [`EmbSumModel`] on the impressions of a [`RecommendationData`] split.

    - Training rows: one per click with `config.num_negatives` negatives from the same impression, re-sampled each
      epoch; teacher summaries (`summaries`: user id -> text) become the summary targets.
    - Loss: `ctr_loss + lambda * summary_loss` (the model's own), both parts logged separately.
    - Optimiser: the layers new on top of T5 get `args.new_layers_lr_multiplier` x the learning rate.
    - Evaluation: [`ImpressionEvaluator`] over whole impressions of `eval_data` (each item and user encoded once,
      sharded across ranks); the best checkpoint is chosen by dev AUC. Checkpoints carry the processor, so each is a
      complete model folder.
    """

    def __init__(
        self,
        model: EmbSumModel,
        args: EmbSumTrainingArguments,
        processor: EmbSumProcessor,
        train_data: RecommendationData | None = None,
        eval_data: RecommendationData | None = None,
        summaries: Mapping[str, str] | None = None,
        **kwargs,
    ):
        if not isinstance(args, EmbSumTrainingArguments):
            raise TypeError(f"args must be EmbSumTrainingArguments, got {type(args).__name__}")
        self.processor = processor
        self.summaries = dict(summaries or {})
        train_dataset = None
        collator = None
        if train_data is not None:
            rows = build_training_rows(train_data.impressions, summaries=self.summaries)
            train_dataset = TrainingExamples(rows, num_negatives=model.config.num_negatives, seed=args.seed)
            collator = EmbSumDataCollator(processor, tokenize_item_table(processor, train_data.items))
        self.evaluator = self._evaluator(eval_data, args) if eval_data is not None else None
        self._loss_parts: dict[str, list[torch.Tensor]] = {"ctr_loss": [], "summary_loss": []}
        self.last_evaluation: tuple[str, dict[str, float]] | None = None  # (split, metrics without prefix)
        super().__init__(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_data,
            data_collator=collator,
            processing_class=processor,
            **kwargs,
        )
        if train_dataset is not None:
            self.add_callback(EpochSeedCallback(train_dataset))

    def _evaluator(self, data: RecommendationData, args: EmbSumTrainingArguments) -> ImpressionEvaluator:
        return ImpressionEvaluator(
            data, self.processor, item_batch_size=args.eval_item_batch_size, user_batch_size=args.eval_user_batch_size
        )

    # the model returns a per-batch mean; the Trainer must divide it for gradient accumulation
    loss_is_scaled_for_ga = False

    def _issue_warnings_after_load(self, load_result) -> None:
        # a checkpoint stores tied weights once (`t5.shared`); the Trainer's check ignores the model's ties and would
        # report the tied copies (`embed_tokens`, `lm_head`) as missing although they load through `shared`
        tied = getattr(self.model, "all_tied_weights_keys", None) or {}
        missing = [key for key in load_result.missing_keys if key not in tied]
        super()._issue_warnings_after_load(load_result._replace(missing_keys=missing))

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        """AdamW (or `args.optim`) with four groups: backbone / new layers x decay / no decay."""
        if self.optimizer is not None:
            return self.optimizer
        model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(model))
        prefixes = EmbSumModel.new_layer_prefixes
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        base_lr = optimizer_kwargs.pop("lr", self.args.learning_rate)
        groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                groups.setdefault((name.startswith(prefixes), name in decay), []).append(parameter)
        param_groups = [
            {
                "params": params,
                "lr": base_lr * (self.args.new_layers_lr_multiplier if is_new else 1.0),
                "weight_decay": self.args.weight_decay if decays else 0.0,
            }
            for (is_new, decays), params in sorted(groups.items())
        ]
        self.optimizer = optimizer_cls(param_groups, lr=base_lr, **optimizer_kwargs)
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if model.training:
            self._loss_parts["ctr_loss"].append(outputs.ctr_loss.detach())
            if outputs.summary_loss is not None:
                self._loss_parts["summary_loss"].append(outputs.summary_loss.detach())
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # a training log ("loss" present) also reports the two parts of the joint loss since the last log,
        # averaged across ranks (every rank reaches this line at the same step)
        if "loss" in logs and not any(key.startswith("eval_") for key in logs):
            for name, values in self._loss_parts.items():
                total = torch.stack(values).double().sum() if values else torch.zeros((), dtype=torch.float64)
                local = torch.stack([total.to(self.args.device), torch.tensor(float(len(values)), dtype=torch.float64, device=self.args.device)])
                total, count = self.accelerator.reduce(local, reduction="sum").tolist()
                if count:
                    logs[name] = round(total / count, 4)
                values.clear()
        super().log(logs, start_time)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """MIND metrics of the model on `eval_dataset` (a `RecommendationData`; default: the trainer's `eval_data`)."""
        # the trainer's own split keeps its evaluator (and its tokenised items)
        own = eval_dataset is None or eval_dataset is self.eval_dataset
        evaluator = self.evaluator if own else self._evaluator(eval_dataset, self.args)
        if evaluator is None:
            raise ValueError("EmbSumTrainer.evaluate needs eval_data (a RecommendationData split)")
        start = time.time()
        model = self.accelerator.unwrap_model(self.model)
        metrics = evaluator.evaluate(model, self.accelerator)
        self.last_evaluation = (evaluator.data.split, metrics)
        metrics = {f"{metric_key_prefix}_{key}": value for key, value in metrics.items()}
        metrics.update(speed_metrics(metric_key_prefix, start, num_samples=len(evaluator.impression_ids)))
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def create_model_card(
        self,
        *,
        dataset_name: str | None = None,
        metrics: dict[str, float] | None = None,
        dataset_split: str | None = None,
        teacher: str | None = None,
        summary_rouge: dict[str, float] | None = None,
        **card_kwargs,
    ):
        """
        Write or update `output_dir/README.md` (see [`write_model_card`]) with the recipe and, unless `metrics` and
        `dataset_split` are given, the metrics of the last evaluation. Keyword arguments of the base Trainer's card
        (`model_name`, `language`, ...) that EmbSum's card does not use are ignored.
        """
        from ..hub.model_card import write_model_card

        if not self.is_world_process_zero():
            return None
        if metrics is None and self.last_evaluation is not None:
            dataset_split, metrics = self.last_evaluation
        model = self.accelerator.unwrap_model(self.model)
        # plain JSON values (enums such as lr_scheduler_type become their strings) for the card's YAML
        recipe = json.loads(json.dumps({name: getattr(self.args, name) for name in CARD_TRAINING_ARGS}, default=str))
        recipe.update(summary_loss_weight=model.config.summary_loss_weight, num_negatives=model.config.num_negatives)
        keep = {"base_model", "repo_id", "description", "datasets", "widget", "language", "license", "tags"}
        base_model = model.config.name_or_path or None
        return write_model_card(
            self.args.output_dir,
            metrics=metrics,
            dataset_name=dataset_name,
            dataset_split=dataset_split,
            training_args=recipe,
            teacher=teacher,
            summary_rouge=summary_rouge,
            **{"base_model": base_model, **{k: v for k, v in card_kwargs.items() if k in keep}},
        )
