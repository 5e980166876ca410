"""The facts of a model card, recorded while training (the sentence-transformers design).

[`EmbSumModelCardData`] is held by the model (`model_card_data(model)`, stored as `model.model_card_data`);
[`ModelCardCallback`] fills it during training (hyperparameters, dataset sizes, framework versions, each evaluation
with its split, the training log) and every save renders it into the folder's card (see [`SavesHubRepo`]). A model
loaded from a checkpoint of a run (a resume) takes the facts of that checkpoint's card, so its base model stays the
run's backbone (or "trained from scratch"), not the checkpoint folder.
"""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from huggingface_hub import CardData
from transformers import TrainerCallback

from .model_card import EMBSUM_CITATION, FROM_SCRATCH, recorded_facts

# the TrainingArguments fields the card's hyper-parameter table reports
CARD_TRAINING_ARGS = (
    "learning_rate", "new_layers_lr_multiplier", "per_device_train_batch_size", "gradient_accumulation_steps",
    "num_train_epochs", "max_steps", "warmup_steps", "weight_decay", "lr_scheduler_type", "seed", "bf16", "fp16",
    "group_by_impression", "in_batch_negatives", "logq_correction",
)  # fmt: skip
# the log columns of the card's training-log table
LOG_COLUMNS = ("epoch", "step", "loss", "ctr_loss", "summary_loss", "learning_rate")

# Hub license metadata per data domain: the weights inherit the terms of the data they were trained on
DATA_LICENSES: dict[str, dict[str, str]] = {
    "mind": {
        "license": "other",
        "license_name": "microsoft-research-license-mind",
        "license_link": "https://msnews.github.io/",
        "terms": "MIND is distributed under the Microsoft Research License Terms: non-commercial research use only",
    },
    "goodreads": {
        "license": "other",
        "license_name": "ucsd-goodreads-academic",
        "license_link": "https://mengtingwan.github.io/data/goodreads.html",
        "terms": "the UCSD Goodreads datasets are for academic use only",
    },
    "movielens": {
        "license": "other",
        "license_name": "grouplens-movielens",
        "license_link": "https://files.grouplens.org/datasets/movielens/ml-100k-README.txt",
        "terms": "MovieLens may be used for research; commercial use needs GroupLens' permission",
    },
}

DATA_CITATIONS = {
    "mind": """@inproceedings{wu2020mind,
  title     = {MIND: A Large-scale Dataset for News Recommendation},
  author    = {Wu, Fangzhao and Qiao, Ying and Chen, Jiun-Hung and Wu, Chuhan and Qi, Tao and Lian, Jianxun and
               Liu, Danyang and Xie, Xing and Gao, Jianfeng and Wu, Winnie and Zhou, Ming},
  booktitle = {Proceedings of the 58th Annual Meeting of the Association for Computational Linguistics},
  year      = {2020},
  pages     = {3597--3606}
}""",
    "goodreads": """@inproceedings{wan2018item,
  title     = {Item Recommendation on Monotonic Behavior Chains},
  author    = {Wan, Mengting and McAuley, Julian},
  booktitle = {Proceedings of the 12th ACM Conference on Recommender Systems},
  year      = {2018},
  pages     = {86--94}
}""",
    "movielens": """@article{harper2015movielens,
  title   = {The MovieLens Datasets: History and Context},
  author  = {Harper, F. Maxwell and Konstan, Joseph A.},
  journal = {ACM Transactions on Interactive Intelligent Systems},
  volume  = {5},
  number  = {4},
  year    = {2015},
  doi     = {10.1145/2827872}
}""",
}


@dataclass
class EmbSumModelCardData(CardData):
    """
    What the card of an EmbSum model states as fact.

    Args:
        base_model: the pretrained backbone (Hub id or path), or `None` for a T5 trained from scratch.
        dataset_name: the training data, e.g. `"MIND-small"`.
        data_domain: `"mind"`, `"goodreads"`, `"movielens"` or `"custom"`: picks the data's license terms and
            citation.
        teacher: the LLM that wrote the training summaries, or `"heuristic"`.
        license: Hub license id; defaults to the data's terms (`DATA_LICENSES`), else `"unknown"`.
        hyperparameters: the training recipe (filled by [`ModelCardCallback`]).
        dataset_sizes: rows per split, e.g. `{"train (clicks)": 1200, "MINDsmall_dev:dev(10%)": 730}`.
        evaluations: `{"split", "step", "metrics"}` per evaluation, metrics as fractions.
        training_logs: one row per training log (`LOG_COLUMNS`).
        framework_versions: Python, torch, transformers, embsum_hf.
        summary_rows: training rows with a teacher summary (0: trained on clicks alone; `None`: not recorded).
    """

    base_model: str | None = None
    dataset_name: str | None = None
    data_domain: str | None = None
    teacher: str | None = None
    license: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    dataset_sizes: dict[str, int] = field(default_factory=dict)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    training_logs: list[dict[str, Any]] = field(default_factory=list)
    framework_versions: dict[str, str] = field(default_factory=dict)
    summary_rows: int | None = None

    def license_metadata(self) -> dict[str, str]:
        """`license` (+ `license_name` / `license_link` for `other`) for the card's metadata."""
        if self.license is not None:
            return {"license": self.license}
        terms = DATA_LICENSES.get(self.data_domain or "")
        if terms is None:
            return {"license": "unknown"}
        return {key: value for key, value in terms.items() if key != "terms"}

    def card_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of [`write_model_card`] that render these facts."""
        last = self.evaluations[-1] if self.evaluations else None
        data_citation = DATA_CITATIONS.get(self.data_domain or "")
        citations = [EMBSUM_CITATION] + ([data_citation] if data_citation else [])
        terms = DATA_LICENSES.get(self.data_domain or "", {}).get("terms") if self.license is None else None
        return {
            "base_model": self.base_model or FROM_SCRATCH,
            "dataset_name": self.dataset_name,
            "teacher": self.teacher,
            "training_args": self.hyperparameters or None,
            "metrics": last["metrics"] if last else None,
            "dataset_split": last["split"] if last else None,
            "evaluations": self.evaluations or None,
            "training_logs": self.training_logs or None,
            "dataset_sizes": self.dataset_sizes or None,
            "framework_versions": self.framework_versions or None,
            "citations": citations,
            "license_terms": terms,
            "summary_rows": self.summary_rows,
            **self.license_metadata(),
        }

    @classmethod
    def from_card(cls, folder: str | os.PathLike) -> EmbSumModelCardData | None:
        """The facts recorded with `folder/README.md` by an earlier save of a run, or `None` without such a card."""
        stored = recorded_facts(folder)
        if "base_model" not in stored:
            return None
        base = stored["base_model"]
        return cls(
            base_model=None if base == FROM_SCRATCH else base,
            dataset_name=stored.get("dataset_name"),
            data_domain=stored.get("data_domain"),
            teacher=stored.get("teacher"),
            license=stored.get("license"),
            hyperparameters=stored.get("training_args") or {},
            dataset_sizes=stored.get("dataset_sizes") or {},
            evaluations=stored.get("evaluations") or [],
            training_logs=stored.get("training_logs") or [],
            framework_versions=stored.get("framework_versions") or {},
            summary_rows=stored.get("summary_rows"),
        )


def model_card_data(model) -> EmbSumModelCardData:
    """
    `model.model_card_data`, created on first use: the facts of the checkpoint the model was loaded from when that is
    a checkpoint of a run (`checkpoint-N` with `trainer_state.json`: a resume keeps the run's base model), else
    `base_model` = where the model's weights came from (`None` when built in code: trained from scratch).
    """
    data = getattr(model, "model_card_data", None)
    if data is None:
        source = model.config.name_or_path or ""
        folder = Path(source)
        resumed = None
        if re.fullmatch(r"checkpoint-\d+", folder.name) and (folder / "trainer_state.json").is_file():
            resumed = EmbSumModelCardData.from_card(folder)
        data = resumed or EmbSumModelCardData(base_model=source or None)
        model.model_card_data = data
    return data


def framework_versions() -> dict[str, str]:
    from .. import __version__

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
        data.hyperparameters = json.loads(json.dumps(recipe, default=str))
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


__all__ = [
    "CARD_TRAINING_ARGS",
    "DATA_LICENSES",
    "EmbSumModelCardData",
    "FROM_SCRATCH",
    "ModelCardCallback",
    "model_card_data",
]
