"""The facts of a model card, recorded while training; the card data IS the card template's context (the
sentence-transformers design).

[`EmbSumModelCardData`] is held by the model (`model_card_data(model)`, stored as `model.model_card_data`);
[`ModelCardCallback`] fills it during training (hyperparameters, dataset sizes, framework versions, each evaluation
with its split, the training log) and every save renders it into the folder's card ([`write_model_card`]). Its fields
are the variables of `templates/embsum_card_template.md`: `to_dict()` is what the template renders, `to_yaml()` the
card's Hub metadata. The facts a later regeneration needs are kept next to the card in `embsum_card.json`
(`CARD_DATA_NAME`), not repeated in its YAML, so a regeneration can update one part, e.g. add the metrics of a new
evaluation, without restating the rest. A model loaded from a checkpoint of a run (a resume) takes the facts of that
checkpoint's card, so its base model stays the run's backbone (or "trained from scratch"), not the checkpoint folder.

The data's license terms and citation come from its source's entry (`embsum_hf.data.sources.SOURCES`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
import transformers
from huggingface_hub import CardData, EvalResult, ModelCard, ModelCardData
from transformers import TrainerCallback

from ..data.sources import SOURCES
from ..version import __version__

# the card's recorded facts, next to README.md
CARD_DATA_NAME = "embsum_card.json"
FROM_SCRATCH = "none (T5 trained from scratch)"
TAGS = ["recommendation", "content-based-recommendation", "embsum", "t5", "poly-attention", "custom_code"]
# where the package installs from: the one definition (setup.cfg's url and the README's Install section repeat it,
# tests/test_snippets.py checks that they agree)
REPOSITORY = "https://github.com/embsum-hf/embsum_hf"
INSTALL = f'pip install "embsum_hf @ git+{REPOSITORY}"'

EMBSUM_CITATION = """@inproceedings{zhang2024embsum,
  title     = {EmbSum: Leveraging the Summarization Capabilities of Large Language Models for
               Content-Based Recommendations},
  author    = {Zhang, Chiyu and Sun, Yifei and Wu, Minghao and Chen, Jun and Lei, Jie and Abdul-Mageed, Muhammad and
               Jin, Rong and Liu, Angli and Zhu, Ji and Park, Sem and Yao, Ning and Long, Bo},
  booktitle = {Proceedings of the 18th ACM Conference on Recommender Systems},
  year      = {2024},
  eprint    = {2405.11441},
  archivePrefix = {arXiv}
}"""

RANKING_TASK = {"task_type": "text-ranking", "task_name": "Recommendation (click prediction)"}
SUMMARY_TASK = {"task_type": "summarization", "task_name": "User-interest summarisation"}
RANKING_METRICS = {"auc": "AUC", "mrr": "MRR", "ndcg@5": "nDCG@5", "ndcg@10": "nDCG@10"}
SUMMARY_METRICS = {
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "rougeLsum": "ROUGE-Lsum",
    # what ROUGE cannot tell (embsum_hf.metrics.summary_metrics): a constant sentence's ROUGE, how user-specific
    "constant_rouge1": "ROUGE-1 of one constant sentence (baseline)",
    "constant_rouge2": "ROUGE-2 of one constant sentence (baseline)",
    "constant_rougeL": "ROUGE-L of one constant sentence (baseline)",
    "rougeL_other_user": "ROUGE-L against a random other user's teacher summary",
    "specificity_gap": "Specificity gap (ROUGE-L own minus other user's; about 0 = collapsed)",
    "distinct_summaries": "Distinct summaries (share of users)",
    "distinct_1": "Distinct-1",
    "distinct_2": "Distinct-2",
    "repeated_token_rate": "Repeated-token rate",
    "malformed_rate": "Malformed summaries (an empty or stop-word interest slot, or a word repeated)",
}
SIGNED_METRICS = {"specificity_gap"}  # differences of two fractions: in [-1, 1]

# the TrainingArguments fields the card's hyper-parameter table reports
CARD_TRAINING_ARGS = (
    "learning_rate", "new_layers_lr_multiplier", "per_device_train_batch_size", "gradient_accumulation_steps",
    "num_train_epochs", "max_steps", "warmup_steps", "weight_decay", "lr_scheduler_type", "seed", "bf16", "fp16",
    "group_by_impression", "in_batch_negatives", "logq_correction", "summary_warmup_steps", "history_clicks",
    "text_pretraining_steps", "catalogue_negatives",
)  # fmt: skip
# the log columns of the card's training-log table
LOG_COLUMNS = ("epoch", "step", "loss", "ctr_loss", "summary_loss", "learning_rate")


def _recorded(factory: type | None = None) -> Any:
    """A fact a run records: kept in `CARD_DATA_NAME`, so a regeneration that does not state it keeps it."""
    if factory is None:
        return field(default=None, metadata={"recorded": True})
    return field(default_factory=factory, metadata={"recorded": True})


@dataclass
class EmbSumModelCardData(CardData):
    """
    What the card of an EmbSum model states: its fields are the card template's variables, and `model_cards/*.yaml`
    (card inputs) and [`write_model_card`] take the same names. A field left unset (`None`, empty) keeps what the
    folder's card recorded.

    Args:
        repo_id: the Hub repo: the card's title, model-index name and usage snippets (without one: the folder name).
        description: a first paragraph about this model.
        base_model: the pretrained backbone (Hub id or path), or `FROM_SCRATCH` for a T5 trained from scratch.
        dataset_name: the training data, e.g. `"MIND-small"`; also what `metrics` and `summary_rouge` were measured on.
        dataset_split: the split `metrics` and `summary_rouge` were measured on, e.g. `"MINDsmall_dev:test(90%)"`
            (required with either: every reported number names its split).
        data_domain: the data source (`data.sources.SOURCES`: `"mind"`, `"goodreads"`, ...): its entry gives the
            license terms and the citation.
        teacher: the LLM that wrote the training summaries, or `"heuristic"`.
        license: Hub license id; defaults to the data's terms (its source's `license`), else `"unknown"`.
        license_terms: a sentence about the license terms for the card's body.
        training_args: the training recipe (hyper-parameter name -> value), shown as a table.
        dataset_sizes: rows per split, e.g. `{"train (clicks)": 1200, "MINDsmall_dev:dev(10%)": 730}`.
        evaluations: `{"split", "step", "metrics"}` per evaluation, metrics as fractions; each becomes results for its
            split.
        training_logs: one row per training log (`LOG_COLUMNS`).
        framework_versions: Python, torch, transformers, embsum_hf.
        citations: BibTeX entries (default: EmbSum's, then the data's).
        summary_rows: training rows with a teacher summary (0: trained on clicks alone; `None`: not recorded).
        widget: examples `{"example_title": ..., "inputs": {"history": [...], "candidates": [...]}}`; the first
            is the usage example (no `widget` metadata: the Hub's widget does not run custom code).
        language, license_name, license_link, tags, datasets: Hub metadata (kept in the card's YAML); `tags` are added
            to the EmbSum tags, the first of `datasets` is the model-index dataset id.
        metrics: new ranking metrics as fractions in [0, 1], as `compute_mind_metrics` returns them (`num_*` counts
            are ignored); shown x100, like the papers. They replace the results for the same dataset, split and
            metric and keep the others.
        summary_rouge: ROUGE of the model's summaries against the teacher's and the other `summary_metrics` keys.
    """

    # the facts a run records (`CARD_DATA_NAME`); the order is the file's
    repo_id: str | None = _recorded()
    description: str | None = _recorded()
    dataset_name: str | None = _recorded()
    dataset_split: str | None = _recorded()
    teacher: str | None = _recorded()
    training_args: dict[str, Any] = _recorded(dict)
    base_model: str | None = _recorded()
    data_domain: str | None = _recorded()
    license: str | None = _recorded()
    license_terms: str | None = _recorded()
    evaluations: list[dict[str, Any]] = _recorded(list)
    training_logs: list[dict[str, Any]] = _recorded(list)
    dataset_sizes: dict[str, int] = _recorded(dict)
    framework_versions: dict[str, str] = _recorded(dict)
    citations: list[str] = _recorded(list)
    summary_rows: int | None = _recorded()
    widget: list[dict[str, Any]] = _recorded(list)
    # Hub metadata, kept in the card's YAML
    language: str | list[str] | None = None
    license_name: str | None = None
    license_link: str | None = None
    tags: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    # new results, kept in the card's model-index
    metrics: dict[str, float] | None = None
    summary_rouge: dict[str, float] | None = None
    # what the folder holds (set by `write_model_card`): the model's details, the card's metadata and results (the
    # model-index: those of the earlier card, updated with what this one reports)
    model_details: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    card_metadata: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    eval_results: list[EvalResult] = field(default_factory=list, init=False, repr=False)

    def given(self) -> dict[str, Any]:
        """The fields this card states (neither `None` nor empty)."""
        values = {item.name: getattr(self, item.name) for item in fields(self) if item.init}
        return {name: value for name, value in values.items() if _is_set(value)}

    def recorded(self) -> dict[str, Any]:
        """The recorded facts this card states, as `CARD_DATA_NAME` keeps them."""
        return {name: value for name, value in self.given().items() if name in RECORDED_FIELDS}

    def updated(self, card: EmbSumModelCardData | None = None, /, **values: Any) -> EmbSumModelCardData:
        """A copy whose fields are replaced by those `card` and then `values` state; unset ones keep these."""
        given = card.given() if card is not None else {}
        given.update({name: value for name, value in values.items() if _is_set(value)})
        new = replace(self, **given)
        for item in fields(self):
            if not item.init:  # what the folder holds
                setattr(new, item.name, getattr(self, item.name))
        return new

    def resolved(self) -> EmbSumModelCardData:
        """
        This card with what its facts imply: the license, terms and citation of its data source's entry when it states
        no license (resp. citations), and the split of its last evaluation as the reported split.
        """
        values: dict[str, Any] = {}
        source = SOURCES.get(self.data_domain) if self.data_domain is not None else None
        if source is not None and source.license is not None and self.license is None:
            terms = source.license
            values.update(license=terms.license, license_terms=terms.terms)
            values.update(license_name=terms.license_name, license_link=terms.license_link)
        if self.data_domain is not None and not self.citations:
            values["citations"] = [EMBSUM_CITATION] + ([source.citation] if source and source.citation else [])
        if self.dataset_split is None and self.evaluations:
            values["dataset_split"] = self.evaluations[-1]["split"]
        return self.updated(**values)

    def reported(self, card: EmbSumModelCardData) -> list[EvalResult]:
        """
        These results updated with those `card` reports (its `evaluations`, and its `metrics` and `summary_rouge` on
        its `dataset_split`) on this card's dataset: new values replace those for the same task, dataset, split and
        metric, the others are kept.
        """
        datasets = _union(self.card_metadata.get("datasets"), self.datasets)
        name = self.dataset_name
        new = []
        reported = [(entry["metrics"], entry["split"], RANKING_TASK, RANKING_METRICS) for entry in card.evaluations]
        reported += [(card.metrics, card.dataset_split, RANKING_TASK, RANKING_METRICS)]
        reported += [(card.summary_rouge, card.dataset_split, SUMMARY_TASK, SUMMARY_METRICS)]
        for values, split, task, names in reported:
            if values:
                if not (name and split):
                    raise ValueError(
                        "metrics need dataset_name and dataset_split: every reported number names its split"
                    )
                dataset_type = datasets[0] if datasets else re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
                new += _eval_results(values, names, task, dataset_type, name, split)
        return _merge_results(self.eval_results, new)

    @property
    def title(self) -> str:
        return self.repo_id or self.model_details.get("folder_name") or "EmbSum"

    def hub_metadata(self) -> ModelCardData:
        """The card's Hub metadata: the existing card's, updated with these facts and results."""
        metadata = dict(self.card_metadata)
        results = self.eval_results
        license = self.license or metadata.get("license") or "unknown"
        base = self.base_model or metadata.get("base_model")
        metadata.update(
            language=self.language or metadata.get("language") or "en",
            license=license,
            license_name=self.license_name or metadata.get("license_name") if license == "other" else None,
            license_link=self.license_link or metadata.get("license_link") if license == "other" else None,
            library_name="transformers",
            tags=_union(metadata.get("tags"), TAGS, self.tags),
            base_model=None if base == FROM_SCRATCH else base,
            datasets=_union(metadata.get("datasets"), self.datasets) or None,
            metrics=_union(metadata.get("metrics"), [result.metric_type for result in results]) or None,
        )
        return ModelCardData(**metadata, model_name=self.title, eval_results=results or None)

    def to_yaml(self, line_break=None, original_order: list[str] | None = None) -> str:
        """The card's YAML front matter: [`hub_metadata`]."""
        return self.hub_metadata().to_yaml(line_break=line_break, original_order=original_order)

    def to_dict(self) -> dict[str, Any]:
        """The card template's context: these fields, the model's details, and what the card shows for a missing
        fact."""
        context = {item.name: getattr(self, item.name) for item in fields(self) if item.init}
        context.update(self.model_details)
        metadata = self.hub_metadata()
        results = metadata.eval_results or []
        title = self.title
        trained_on = self.dataset_name or "unrecorded data"
        context.update(
            title=title,
            repo_id=title,
            local_dir=title.split("/")[-1],
            install=INSTALL,
            description=self.description or f"An EmbSum recommender trained on {trained_on}.",
            citations=self.citations or [EMBSUM_CITATION],
            base_model=metadata.base_model,
            license=metadata.license,
            log_columns=[column for column in LOG_COLUMNS if any(column in row for row in self.training_logs)],
            ranking_results=[result for result in results if result.task_type == RANKING_TASK["task_type"]],
            summary_results=[result for result in results if result.task_type == SUMMARY_TASK["task_type"]],
            # JSON of strings and dicts reads as Python too
            example_inputs=json.dumps(_usage_example(self.widget, self.model_details.get("item_fields")), indent=4),
        )
        return context

    @classmethod
    def from_facts(cls, facts: dict[str, Any]) -> EmbSumModelCardData:
        """The card data of recorded facts (what `CARD_DATA_NAME` holds; keys that are no fact are ignored)."""
        return cls(**{name: value for name, value in facts.items() if name in RECORDED_FIELDS})

    @classmethod
    def from_card(cls, folder: str | os.PathLike) -> EmbSumModelCardData | None:
        """The facts recorded with `folder/README.md` by an earlier save of a run, or `None` without such a card."""
        facts = recorded_facts(folder)
        return cls.from_facts(facts) if "base_model" in facts else None


RECORDED_FIELDS = tuple(item.name for item in fields(EmbSumModelCardData) if item.metadata.get("recorded"))
# every field a card input (`model_cards/*.yaml`, `write_model_card`, `save_repo(card_kwargs=...)`) may state
CARD_FIELDS = tuple(item.name for item in fields(EmbSumModelCardData) if item.init)


def recorded_facts(folder: str | os.PathLike, legacy: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card facts recorded in `folder` (`CARD_DATA_NAME`; an older card kept them in its YAML's `embsum:` key,
    given as `legacy`, or read from `folder/README.md` when not given); empty when there are none."""
    path = Path(folder, CARD_DATA_NAME)
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
    if legacy is None:
        readme = Path(folder, "README.md")
        legacy = (ModelCard.load(readme).data.to_dict().get("embsum") if readme.is_file() else None) or {}
    return dict(legacy)


def model_card_data(model) -> EmbSumModelCardData:
    """
    `model.model_card_data`, created on first use: the facts of the checkpoint the model was loaded from when that is
    a checkpoint of a run (`checkpoint-N` with `trainer_state.json`: a resume keeps the run's base model), else
    `base_model` = where the model's weights came from (`FROM_SCRATCH` when built in code).
    """
    data = getattr(model, "model_card_data", None)
    if data is None:
        source = model.config.name_or_path or ""
        folder = Path(source)
        resumed = None
        if re.fullmatch(r"checkpoint-\d+", folder.name) and (folder / "trainer_state.json").is_file():
            resumed = EmbSumModelCardData.from_card(folder)
        data = resumed or EmbSumModelCardData(base_model=source or FROM_SCRATCH)
        model.model_card_data = data
    return data


def framework_versions() -> dict[str, str]:
    return {
        "Python": platform.python_version(),
        "PyTorch": str(torch.__version__),
        "Transformers": transformers.__version__,
        "embsum_hf": __version__,
    }


class ModelCardCallback(TrainerCallback):
    """
    Fills the model's [`EmbSumModelCardData`] while `trainer` trains: hyperparameters, dataset sizes and framework
    versions when training starts, each training log, each evaluation with its split (`trainer.last_evaluation`).
    """

    def __init__(self, trainer):
        self.trainer = trainer

    def _evaluator(self):
        """The trainer's first evaluator (its metrics pick the best model), or None."""
        evaluators = getattr(self.trainer, "evaluators", None) or []
        return evaluators[0] if evaluators else None

    def _data(self) -> EmbSumModelCardData:
        data = model_card_data(self.trainer.accelerator.unwrap_model(self.trainer.model))
        evaluator = self._evaluator()
        if evaluator is not None:  # a trainer used without the recipe: name the data by its domain
            data.data_domain = data.data_domain or evaluator.data.domain
            data.dataset_name = data.dataset_name or evaluator.data.domain
        return data

    def on_train_begin(self, args, state, control, **kwargs):
        data = self._data()
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        recipe = {name: getattr(args, name) for name in CARD_TRAINING_ARGS if hasattr(args, name)}
        recipe.update(summary_loss_weight=model.config.summary_loss_weight, num_negatives=args.negatives_per_click)
        # plain JSON values (enums such as lr_scheduler_type become their strings) for the card's YAML
        data.training_args = json.loads(json.dumps(recipe, default=str))
        sizes = {}
        if self.trainer.train_dataset is not None:
            rows = getattr(self.trainer.train_dataset, "rows", self.trainer.train_dataset)
            sizes["train (clicks)"] = len(rows)
            if "summary" in getattr(rows, "column_names", ()):  # the card says whether the decoder learned anything
                data.summary_rows = sum(summary is not None for summary in rows["summary"])
        evaluator = self._evaluator()
        if evaluator is not None:
            sizes[f"{evaluator.data.split} (impressions)"] = len(evaluator.impression_ids)
        data.dataset_sizes.update(sizes)
        data.framework_versions = framework_versions()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            row = {"epoch": round(state.epoch or 0.0, 4), "step": state.global_step}
            row.update({name: float(f"{logs[name]:.4g}") for name in LOG_COLUMNS[2:] if name in logs})
            data = self._data()
            data.training_logs = [entry for entry in data.training_logs if entry["step"] < row["step"]] + [row]

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        last = getattr(self.trainer, "last_evaluation", None)
        if last is None:
            return
        split, values = last
        values = {name: float(value) for name, value in values.items() if not name.startswith("num_")}
        data = self._data()
        entry = {"split": split, "step": state.global_step, "metrics": values}
        data.evaluations = [e for e in data.evaluations if (e["split"], e["step"]) != (split, state.global_step)]
        data.evaluations.append(entry)


def _is_set(value: Any) -> bool:
    """Stated by a card: not `None` and not an empty collection (0 and False are facts)."""
    return value is not None and not (isinstance(value, (dict, list, tuple, str)) and len(value) == 0)


def _eval_results(
    values: dict[str, float],
    names: dict[str, str],
    task: dict[str, str],
    dataset_type: str,
    dataset_name: str,
    split: str,
) -> list[EvalResult]:
    results = []
    for key, value in values.items():
        if key.startswith("num_"):  # impression / summary counts, not metrics
            continue
        if key not in names:
            raise ValueError(f"unknown metric {key!r}; expected some of {sorted(names)}")
        low = -1 if key in SIGNED_METRICS else 0
        if not isinstance(value, (int, float)) or math.isnan(value) or not low <= value <= 1:
            raise ValueError(f"metric {key!r} must be a fraction in [{low}, 1] (not x100, not NaN), got {value!r}")
        results.append(
            EvalResult(
                **task,
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                dataset_split=split,
                metric_type=key,
                metric_name=names[key],
                metric_value=round(100 * float(value), 2),
            )
        )
    return results


def _merge_results(old: list[EvalResult], new: list[EvalResult]) -> list[EvalResult]:
    """Old results updated in place by new ones for the same task, dataset, split and metric; others appended."""

    def key(result: EvalResult) -> tuple:
        return result.task_type, result.dataset_type, result.dataset_split, result.metric_type

    merged = {key(result): result for result in old}
    merged.update({key(result): result for result in new})
    return list(merged.values())


def _union(*lists: list | str | None) -> list:
    """Ordered union of metadata lists (a bare string counts as a one-item list)."""
    seen: list = []
    for values in lists:
        for value in [values] if isinstance(values, str) else values or []:
            if value not in seen:
                seen.append(value)
    return seen


def _usage_example(widget: list[dict] | None, item_fields: list[str] | None) -> dict[str, list]:
    if widget:
        return widget[0]["inputs"]
    first = (item_fields or ["title"])[0]
    return {
        "history": [{name: f"<{name}>" for name in item_fields or [first]}],
        "candidates": [f"<{first} of candidate 1>", f"<{first} of candidate 2>"],
    }


__all__ = [
    "CARD_DATA_NAME",
    "CARD_FIELDS",
    "CARD_TRAINING_ARGS",
    "EmbSumModelCardData",
    "FROM_SCRATCH",
    "ModelCardCallback",
    "model_card_data",
    "recorded_facts",
]
