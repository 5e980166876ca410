"""EmbSumTrainer: the joint click + summary objective on the transformers Trainer (Accelerate underneath).

Its shape follows sentence-transformers' trainer: datasets of training rows in, evaluators whose metrics join the
base Trainer's `eval_loss` in `evaluation_loop`.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence

import datasets
import torch
from torch.utils.data import DataLoader
from transformers import Trainer, TrainerCallback

from ..hub.repo import SavesHubRepo
from ..modeling_embsum import EmbSumModel, EmbSumOutput
from .arguments import PAPER_TRAINING_LEVERS, EmbSumTrainingArguments
from .collator import TrainingExamples
from .evaluation import ImpressionEvaluator
from .item_prior import ItemPriorFitCallback
from .text_pretraining import TextPretrainingCallback

logger = logging.getLogger(__name__)


def default_hp_space(trial) -> dict:
    """
    The search space of [`EmbSumTrainer.hyperparameter_search`] (an Optuna trial): the learning rate (1e-4 to 5e-3,
    log), the new layers' multiplier (1 to 10, log), negatives per click (1 to 8) and weight decay (0 to 0.1).
    """
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 5e-3, log=True),
        "new_layers_lr_multiplier": trial.suggest_float("new_layers_lr_multiplier", 1.0, 10.0, log=True),
        "num_negatives": trial.suggest_int("num_negatives", 1, 8),
        "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1),
    }


def in_batch_click_loss(
    model: EmbSumModel,
    outputs: EmbSumOutput,
    inputs: Mapping[str, torch.Tensor],
    candidate_log_q: torch.Tensor | None = None,
) -> torch.Tensor:
    """
    The click loss with in-batch negatives (`args.in_batch_negatives`, a training choice, off in the paper), from what
    `model`'s forward returned for `inputs` (the collator's batch): each click against its user's non-clicks and
    every other user's candidates of the batch, except items equal to one of the user's own candidates (an item is
    its token row), averaged as the model's `ctr_loss` ([`EmbSumModel.click_loss`]). Given `candidate_log_q` `(B, C)`,
    the log of each candidate's share among the training candidates ([`candidate_log_q`]), an in-batch score is
    lowered by the log of the item's expected count among the batch's candidates (logQ correction, Yi et al., 2019).
    """
    ids, labels = inputs["candidate_input_ids"], inputs["candidate_labels"]
    batch, num_candidates = ids.shape[:2]
    present = inputs["candidate_attention_mask"].bool().any(-1)  # (B, C)
    clicked, negative = (labels == 1) & present, (labels == 0) & present
    others = model.score(outputs.user_embeddings, outputs.item_embeddings.flatten(0, 1))  # (B, B*C)
    if model.item_prior is not None and inputs.get("candidate_item_index") is not None:
        others = others + model.item_prior_scores(inputs["candidate_item_index"]).reshape(1, -1)
    if candidate_log_q is not None:
        # log of each item's expected count among the batch's candidates: its share times their number
        expected = candidate_log_q.reshape(1, -1) + torch.log(present.sum().to(candidate_log_q.dtype))
        others = others - expected.to(others.dtype)
    _, item_index = torch.unique(ids.flatten(0, 1), dim=0, return_inverse=True)  # (B*C,)
    item_index = item_index.masked_fill(~present.flatten(), -1).view(batch, num_candidates)
    mine = (item_index.view(1, -1)[:, None, :] == item_index[:, :, None]).any(1)  # (B, B*C)
    user = torch.arange(batch, device=ids.device)
    keep = present.reshape(1, -1) & ~mine & (user[:, None] != user.repeat_interleave(num_candidates)[None, :])
    own_negatives = outputs.logits.masked_fill(~negative, float("-inf"))  # (B, C)
    negatives = torch.cat([own_negatives, others.masked_fill(~keep, float("-inf"))], dim=1)
    return model.click_loss(outputs.logits, clicked, negatives)


class EpochSeedCallback(TrainerCallback):
    """
    Sets the epoch of the training rows (which seeds their negatives) from the trainer state at the start of every
    epoch, the resumed one included. Accelerate's `DataLoaderShard.set_epoch` reaches the dataset only when the
    sampler has no `set_epoch` of its own, and not at all on the batch-skipping loader of a resumed epoch, so a
    run resumed after its first epoch would otherwise draw epoch 0's negatives.
    """

    def __init__(self, dataset: TrainingExamples):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        # `state.epoch` is `epoch + steps done / steps in epoch`: its floor is the epoch starting (or resumed) now
        self.dataset.set_epoch(math.floor(state.epoch or 0))


class EmbSumTrainer(SavesHubRepo, Trainer):
    """
    Trains an [`EmbSumModel`] on training rows (one per click, from [`build_training_rows`]).

    Args:
        model: the [`EmbSumModel`].
        args: [`EmbSumTrainingArguments`]; `args.negatives_per_click` negatives per click are drawn from each row's
            `negative_pool`, re-sampled every epoch (deterministic in `args.seed`, the epoch and the row).
        train_dataset: a `datasets.Dataset` of training rows (`history`, `positive`, `negative_pool`, `summary`).
        eval_dataset: training rows of the dev split (or a dict of them) for `eval_loss`; optional.
        evaluator: an [`ImpressionEvaluator`] or a list of them: their metrics join `eval_loss` at every evaluation
            (keys prefixed by each evaluator's `name`, if it has one); the best checkpoint is chosen by dev AUC.
        data_collator: an [`EmbSumDataCollator`] over the items of every row (train and eval).
        processing_class: the [`EmbSumProcessor`]; saved with every checkpoint, so each is a complete model folder.

    Loss: `ctr_loss + lambda * summary_loss` (the model's own), both parts logged separately. Optimiser: the layers
    new on top of T5 get `args.new_layers_lr_multiplier` x the learning rate.

    Saving ([`SavesHubRepo`]): the output folder and every checkpoint are complete Hub repos (processor, remote code,
    pipeline, endpoint handler, card); the card's facts are recorded while training (`model_card_data`).

    Click-loss choices ([`EmbSumTrainingArguments`]): `group_by_impression` (one example per impression, all its
    clicks against its negatives), `in_batch_negatives` ([`in_batch_click_loss`] in the click loss's place; with
    `logq_correction`, corrected by the collator's `candidate_log_q`). `summary_warmup_steps`: lambda rises from 0
    over the first steps.
    A model with an item prior gets it fitted to the training rows before the first step (`fit_item_prior`).
    """

    def __init__(
        self,
        model: EmbSumModel | None = None,
        args: EmbSumTrainingArguments | None = None,
        train_dataset: datasets.Dataset | None = None,
        eval_dataset: datasets.Dataset | dict[str, datasets.Dataset] | None = None,
        evaluator: ImpressionEvaluator | Sequence[ImpressionEvaluator] | None = None,
        data_collator=None,
        processing_class=None,
        **kwargs,
    ):
        if args is None:
            args = EmbSumTrainingArguments(output_dir="embsum_trainer")
        if not isinstance(args, EmbSumTrainingArguments):
            raise TypeError(f"args must be EmbSumTrainingArguments, got {type(args).__name__}")
        unset = {name: paper for name, paper in PAPER_TRAINING_LEVERS.items() if getattr(args, name) is None}
        if unset:  # left unset (no `choose_data_levers`): the paper's, on a copy (the caller's args stay as given)
            args = copy.copy(args)
            for name, paper in unset.items():
                setattr(args, name, paper)
        if (train_dataset is not None or eval_dataset is not None) and data_collator is None:
            raise ValueError(
                "EmbSumTrainer needs data_collator=EmbSumDataCollator(processor, tokenize_item_table(processor, "
                "items)) over the items of its training rows"
            )
        if evaluator is None:
            evaluator = []
        self.evaluators = list(evaluator) if isinstance(evaluator, Sequence) else [evaluator]
        names = [getattr(e, "name", None) for e in self.evaluators]
        if len(set(names)) != len(names):
            raise ValueError(f"evaluators need distinct names to keep their metrics apart, got {names}")
        self._loss_parts: dict[str, list[torch.Tensor]] = {"ctr_loss": [], "summary_loss": []}
        self.last_evaluation: tuple[str, dict[str, float]] | None = None  # (split, metrics without prefix)
        # evaluators alone make evaluation possible: a placeholder passes the base Trainer's "no eval_dataset" check
        placeholder = eval_dataset is None and bool(self.evaluators)
        # catalogue negatives are drawn from the items the collator can tokenise
        draws_catalogue = args.catalogue_negatives or args.item_prior_history_draws
        catalogue = list(getattr(data_collator, "item_token_ids", None) or ()) if draws_catalogue else None
        self._catalogue = catalogue
        super().__init__(
            model=model,
            args=args,
            train_dataset=self._examples(train_dataset, args, catalogue),
            eval_dataset=[] if placeholder else self._examples(eval_dataset, args, catalogue),
            data_collator=data_collator,
            processing_class=processing_class,
            **kwargs,
        )
        if placeholder:
            self.eval_dataset = None
        if self.train_dataset is not None:
            self.add_callback(EpochSeedCallback(self.train_dataset))
            prior = getattr(self.model, "item_prior", None)
            if prior is not None and (args.fit_item_prior or args.item_prior_fusion == "late"):
                rows = self.train_dataset.prior_fit_rows(history_draws=args.item_prior_history_draws)
                dev = next((e for e in self.evaluators if isinstance(e, ImpressionEvaluator)), None)
                fit = ItemPriorFitCallback(rows, args.item_prior_std, fusion=args.item_prior_fusion, evaluator=dev)
                self.add_callback(fit)
            if prior is not None and args.item_prior_fusion == "late":
                prior.weight.requires_grad_(False)  # the content model trains alone; the prior joins at the end
            if args.text_pretraining_steps:
                texts = list((getattr(data_collator, "item_token_ids", None) or {}).values())
                tokenizer = getattr(processing_class, "tokenizer", None)
                if tokenizer is None or tokenizer.unk_token_id is None:
                    raise ValueError(
                        "text_pretraining_steps needs processing_class=EmbSumProcessor (its tokenizer's <unk> masks "
                        "the spans)"
                    )
                self.add_callback(TextPretrainingCallback(texts, args.text_pretraining_steps, tokenizer.unk_token_id))

    @staticmethod
    def _examples(rows, args: EmbSumTrainingArguments, catalogue: Sequence[str] | None = None):
        """Training rows -> [`TrainingExamples`] drawing `args.negatives_per_click` non-clicks and
        `args.catalogue_negatives` catalogue items (a dict: each value)."""
        if rows is None or isinstance(rows, TrainingExamples):
            return rows
        if isinstance(rows, dict):
            return {name: EmbSumTrainer._examples(value, args, catalogue) for name, value in rows.items()}
        return TrainingExamples(
            rows,
            num_negatives=args.negatives_per_click,
            seed=args.seed,
            group_by_impression=args.group_by_impression,
            catalogue=catalogue,
            catalogue_negatives=args.catalogue_negatives,
        )

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """`eval_loss` on `eval_dataset` (training rows; default the trainer's) and the evaluators' metrics."""
        rows = self._examples(eval_dataset, self.args, self._catalogue)
        return super().evaluate(rows, ignore_keys, metric_key_prefix)

    def get_eval_dataloader(self, eval_dataset=None) -> DataLoader:
        if eval_dataset is None and self.eval_dataset is None and self.evaluators:
            return DataLoader([])  # evaluators only: no rows for eval_loss
        return super().get_eval_dataloader(eval_dataset)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        # EmbSum's metrics come from the evaluators; evaluation rows only give the loss
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        # with several eval datasets the Trainer evaluates each as `eval_<name>`: the evaluators run once, with the
        # first one, under the plain prefix
        if isinstance(self.eval_dataset, dict) and metric_key_prefix.startswith("eval_"):
            if metric_key_prefix[len("eval_") :] != next(iter(self.eval_dataset)):
                return output
            metric_key_prefix = "eval"
        model = self.accelerator.unwrap_model(self.model)
        for evaluator in self.evaluators:
            metrics = evaluator.evaluate(model, self.accelerator)
            if evaluator is self.evaluators[0]:
                self.last_evaluation = (evaluator.data.split, metrics)
            name = getattr(evaluator, "name", None)
            prefix = f"{metric_key_prefix}_{name}_" if name else f"{metric_key_prefix}_"
            output.metrics.update({prefix + key: value for key, value in metrics.items()})
        return output

    def hyperparameter_search(
        self,
        hp_space=None,
        compute_objective=None,
        n_trials: int = 20,
        direction: str = "maximize",
        backend: str = "optuna",
        **kwargs,
    ):
        """
        transformers' search (`model_init=` needed, Optuna by default) with EmbSum's defaults: the search space
        [`default_hp_space`] (learning rate, new-layer multiplier, negatives per click, weight decay) and the dev
        metric that picks the best checkpoint (`args.metric_for_best_model`, AUC) as the objective, maximised.
        """
        metric = f"eval_{self.args.metric_for_best_model}"

        def objective(metrics: dict[str, float]) -> float:
            if metric not in metrics:
                raise ValueError(f"the search objective {metric} is missing: give the trainer an evaluator")
            return metrics[metric]

        return super().hyperparameter_search(
            hp_space=hp_space or default_hp_space,
            compute_objective=compute_objective or objective,
            n_trials=n_trials,
            direction=direction,
            backend=backend,
            **kwargs,
        )

    def _hp_search_setup(self, trial) -> None:
        super()._hp_search_setup(trial)
        # the training rows draw as many negatives as the trial's arguments say
        if isinstance(self.train_dataset, TrainingExamples):
            self.train_dataset.num_negatives = self.args.negatives_per_click

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
        inputs = dict(inputs)
        log_q = inputs.pop("candidate_log_q", None)  # the in-batch loss's, no model input
        outputs = model(**inputs)
        loss, ctr_loss = outputs.loss, outputs.ctr_loss
        if model.training and self.args.in_batch_negatives:
            with self.accelerator.autocast():  # as the forward ran (accelerate autocasts only the forward)
                ctr_loss = in_batch_click_loss(self.accelerator.unwrap_model(model), outputs, inputs, log_q)
            loss = loss - outputs.ctr_loss + ctr_loss  # the model's joint loss with this click loss in its place
        warmup = self.args.summary_warmup_steps
        if model.training and warmup and outputs.summary_loss is not None and self.state.global_step < warmup:
            # the summary loss's weight rises from 0 to lambda over the first `summary_warmup_steps` steps
            weight = self.accelerator.unwrap_model(model).config.summary_loss_weight
            loss = loss - (1 - self.state.global_step / warmup) * weight * outputs.summary_loss
        if model.training:
            self._loss_parts["ctr_loss"].append(ctr_loss.detach())
            if outputs.summary_loss is not None:
                self._loss_parts["summary_loss"].append(outputs.summary_loss.detach())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # a training log ("loss" present) also reports the two parts of the joint loss since the last log,
        # averaged across ranks (every rank reaches this line at the same step)
        if "loss" in logs and not any(key.startswith("eval_") for key in logs):
            for name, values in self._loss_parts.items():
                total = torch.stack(values).double().sum() if values else torch.zeros((), dtype=torch.float64)
                count = torch.tensor(float(len(values)), dtype=torch.float64, device=self.args.device)
                local = torch.stack([total.to(self.args.device), count])
                total, count = self.accelerator.reduce(local, reduction="sum").tolist()
                if count:
                    logs[name] = round(total / count, 4)
                values.clear()
        super().log(logs, start_time)
