"""Model cards for EmbSum repos, rendered from the saved folder with `huggingface_hub.ModelCard`.

The card's metadata is what the Hub reads (license, base model, datasets, tags and a `model-index` whose every result
names its dataset *and split*); it declares no `pipeline_tag` and no `widget`, since the Hub's widget and inference
run no custom code: the card says how to run the model instead (`pipeline(..., trust_remote_code=True)`, the Space,
an Inference Endpoint with the repo's handler). The facts a later regeneration needs (teacher, training recipe,
dataset, evaluations, ...) are kept next to the card in `embsum_card.json` (`CARD_DATA_NAME`), not repeated in its
YAML, so a regeneration can update one part, e.g. add the metrics of a new evaluation, without restating the rest.
The body's generated part sits between `<!-- embsum:auto:start -->` and `<!-- embsum:auto:end -->`; regeneration
replaces only that part and keeps whatever the user wrote around it (a README without markers is kept below a new
generated part).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from safetensors import safe_open

from ..processing_embsum import EmbSumProcessor
from ..utils import atomic_write_text

AUTO_START = "<!-- embsum:auto:start -->"
AUTO_END = "<!-- embsum:auto:end -->"
TEMPLATE_PATH = Path(__file__).parent / "templates" / "embsum_card_template.md"

TAGS = ["recommendation", "content-based-recommendation", "embsum", "t5", "poly-attention", "custom_code"]
# the card's recorded facts (card inputs and what the run recorded), next to README.md
CARD_DATA_NAME = "embsum_card.json"
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
# card inputs kept in `CARD_DATA_NAME` so that a regeneration that omits them keeps them
STORED_INPUTS = (
    "repo_id", "description", "dataset_name", "dataset_split", "teacher", "training_args", "base_model", "data_domain",
    "license", "license_terms", "evaluations", "training_logs", "dataset_sizes", "framework_versions", "citations",
    "summary_rows", "widget",
)  # fmt: skip
# what a training run records; card inputs (model_cards/*.yaml) may add prose but not contradict these
RECORDED_FACTS = ("base_model", "dataset_name", "teacher", "license")
FROM_SCRATCH = "none (T5 trained from scratch)"
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


def write_model_card(
    folder: str | os.PathLike,
    *,
    metrics: dict[str, float] | None = None,
    dataset_name: str | None = None,
    dataset_split: str | None = None,
    base_model: str | None = None,
    training_args: dict[str, Any] | None = None,
    teacher: str | None = None,
    summary_rouge: dict[str, float] | None = None,
    repo_id: str | None = None,
    description: str | None = None,
    datasets: list[str] | None = None,
    widget: list[dict[str, Any]] | None = None,
    language: str | list[str] | None = None,
    license: str | None = None,
    tags: list[str] | None = None,
    license_name: str | None = None,
    license_link: str | None = None,
    license_terms: str | None = None,
    data_domain: str | None = None,
    evaluations: list[dict[str, Any]] | None = None,
    training_logs: list[dict[str, Any]] | None = None,
    dataset_sizes: dict[str, int] | None = None,
    framework_versions: dict[str, str] | None = None,
    citations: list[str] | None = None,
    summary_rows: int | None = None,
) -> ModelCard:
    """
    Write (or update) `folder/README.md` for the EmbSum model saved in `folder` and return the card.

    Args:
        folder: a folder holding the model's `config.json` and `processor_config.json` (what
            [`save_repo`] writes); the architecture details, item template and parameter count come from it.
        metrics: ranking metrics as fractions in [0, 1], as `compute_mind_metrics` returns them (`auc`, `mrr`,
            `ndcg@5`, `ndcg@10`; `num_*` counts are ignored). Shown x100, like the papers.
        dataset_name, dataset_split: what `metrics` and `summary_rouge` were measured on, e.g. `"MIND-small"` and
            `"MINDsmall_dev:test(90%)"`; required with either. `dataset_name` also names the training data.
        base_model: the pretrained backbone (Hub id), or `FROM_SCRATCH` for a T5 trained from scratch.
        training_args: the training recipe (hyper-parameter name -> value), shown as a table.
        teacher: the LLM that wrote the training summaries, or `"heuristic"`.
        summary_rouge: ROUGE of the model's summaries against the teacher's (`rouge1`, `rouge2`, `rougeL`) and the
            other `summary_metrics` keys (constant-sentence baseline, specificity gap, distinct summaries).
        repo_id: the Hub repo: the card's title, model-index name and usage snippets (without one: the folder name).
        description: a first paragraph about this model.
        datasets: Hub dataset ids for the `datasets` metadata; the first one is the model-index dataset id.
        widget: examples `{"example_title": ..., "inputs": {"history": [...], "candidates": [...]}}`; the first
            is the usage example (no `widget` metadata: the Hub's widget does not run custom code).
        language, license, tags: metadata (defaults "en" and "unknown"); `tags` are added to the EmbSum tags.
        license_name, license_link, license_terms: for `license="other"`: the terms' id, where to read them, and a
            sentence about them for the card's body.
        data_domain: `"mind"`, `"goodreads"`, ... (recorded for a later [`EmbSumModelCardData.from_card`]).
        evaluations: every evaluation of the run, `{"split", "step", "metrics"}`; each becomes results for its split.
        training_logs, dataset_sizes, framework_versions, citations: the run's log table, rows per split, library
            versions and BibTeX entries (see [`EmbSumModelCardData`], which gives all of these while training).
        summary_rows: training rows that had a teacher summary (0: trained on clicks alone, the card says so).

    Inputs left `None` keep the values of an existing card; new metrics replace the results for the same dataset,
    split and metric and keep the others.
    """
    folder = Path(folder)
    readme = folder / "README.md"
    existing = ModelCard.load(readme) if readme.is_file() else None
    old = existing.data.to_dict() if existing is not None else {}
    old_results = (existing.data.eval_results or []) if existing is not None else []
    old.pop("model-index", None)
    old.pop("model_name", None)  # kept in the metadata only while there are no results
    old.pop("pipeline_tag", None)  # what the Hub cannot run for a custom-code model (older cards declared them)
    old_widget = old.pop("widget", None)
    stored = recorded_facts(folder, old.pop("embsum", None))

    given = {
        "repo_id": repo_id,
        "description": description,
        "dataset_name": dataset_name,
        "dataset_split": dataset_split,
        "teacher": teacher,
        "training_args": training_args,
        "base_model": base_model,
        "data_domain": data_domain,
        "license": license,
        "license_terms": license_terms,
        "evaluations": evaluations,
        "training_logs": training_logs,
        "dataset_sizes": dataset_sizes,
        "framework_versions": framework_versions,
        "citations": citations,
        "summary_rows": summary_rows,
        "widget": widget,
    }
    inputs = {name: given[name] if given[name] is not None else stored.get(name) for name in STORED_INPUTS}
    if old_widget and inputs["widget"] is None:  # an older card's widget examples: its usage example
        inputs["widget"] = [{"example_title": w["example_title"], "inputs": json.loads(w["text"])} for w in old_widget]
    datasets = _union(old.get("datasets"), datasets)

    new_results = []
    reported = [(entry["metrics"], entry["split"], RANKING_TASK, RANKING_METRICS) for entry in evaluations or []]
    reported += [(metrics, dataset_split, RANKING_TASK, RANKING_METRICS)]
    reported += [(summary_rouge, dataset_split, SUMMARY_TASK, SUMMARY_METRICS)]
    for values, split, task, names in reported:
        if values:
            name = dataset_name or inputs["dataset_name"]
            if not (name and split):
                raise ValueError("metrics need dataset_name and dataset_split: every reported number names its split")
            dataset_type = datasets[0] if datasets else re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
            new_results += _eval_results(values, names, task, dataset_type, name, split)
    results = _merge_results(old_results, new_results)
    base = inputs["base_model"] or old.get("base_model")

    title = inputs["repo_id"] or folder.resolve().name
    old.update(
        language=language or old.get("language") or "en",
        license=license or old.get("license") or "unknown",
        license_name=license_name or old.get("license_name") if (license or old.get("license")) == "other" else None,
        license_link=license_link or old.get("license_link") if (license or old.get("license")) == "other" else None,
        library_name="transformers",
        tags=_union(old.get("tags"), TAGS, tags),
        base_model=None if base == FROM_SCRATCH else base,
        datasets=datasets or None,
        metrics=_union(old.get("metrics"), [result.metric_type for result in results]) or None,
    )
    card_data = ModelCardData(**old, model_name=title, eval_results=results or None)

    trained_on = inputs["dataset_name"] or "unrecorded data"
    context = {
        **_folder_details(folder),
        **inputs,
        "description": inputs["description"] or f"An EmbSum recommender trained on {trained_on}.",
        "title": title,
        "repo_id": title,
        "local_dir": title.split("/")[-1],
        "install": INSTALL,
        "citations": inputs["citations"] or [EMBSUM_CITATION],
        "base_model": None if base == FROM_SCRATCH else base,
        "license": card_data.license,
        "log_columns": [c for c in ("epoch", "step", "loss", "ctr_loss", "summary_loss", "learning_rate")
                        if any(c in row for row in inputs["training_logs"] or [])],  # fmt: skip
        "ranking_results": [result for result in results if result.task_type == RANKING_TASK["task_type"]],
        "summary_results": [result for result in results if result.task_type == SUMMARY_TASK["task_type"]],
    }
    # JSON of strings and dicts reads as Python too
    context["example_inputs"] = json.dumps(_usage_example(inputs["widget"], context["item_fields"]), indent=4)
    text = ModelCard.from_template(card_data, template_path=str(TEMPLATE_PATH), **context).text
    if existing is not None:
        text = _keep_user_text(existing.text, text)
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n{text}")
    card.save(readme)
    facts = {name: value for name, value in inputs.items() if value is not None}
    atomic_write_text(folder / CARD_DATA_NAME, json.dumps(facts, indent=2, ensure_ascii=False) + "\n")
    return card


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


def load_card_inputs(path: str | os.PathLike) -> dict[str, Any]:
    """Read ready-made card inputs (a YAML file of `write_model_card` keyword arguments, e.g. `model_cards/*.yaml`)."""
    inputs = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    accepted = set(inspect.signature(write_model_card).parameters) - {"folder"}
    unknown = sorted(set(inputs) - accepted)
    if unknown:
        raise ValueError(f"{path}: unknown card input(s) {unknown}; accepted: {sorted(accepted)}")
    return inputs


def check_card_inputs(folder: str | os.PathLike, inputs: dict[str, Any]) -> None:
    """
    Card inputs may add prose to the card of a run but not contradict what the run recorded (`RECORDED_FACTS`: the
    base model, the training data, the teacher, the license): a conflict is an error naming both values.
    """
    readme = Path(folder, "README.md")
    recorded = recorded_facts(folder)
    for name in RECORDED_FACTS:
        given, fact = inputs.get(name), recorded.get(name)
        if name == "base_model" and given is None and "base_model" in inputs and fact not in (None, FROM_SCRATCH):
            given = FROM_SCRATCH  # `base_model: null` in a card input says "trained from scratch"
        if given is not None and fact is not None and given != fact:
            raise ValueError(
                f"card input {name}={given!r} conflicts with the run's recorded {name}={fact!r} ({readme}); "
                "remove it from the card inputs or retrain"
            )


def _keep_user_text(old_text: str, new_text: str) -> str:
    """`old_text` with its generated part replaced by the one of `new_text` (or put on top when it has none)."""
    auto = new_text[new_text.index(AUTO_START) : new_text.index(AUTO_END) + len(AUTO_END)]
    if AUTO_START in old_text and AUTO_END in old_text:
        before, rest = old_text.split(AUTO_START, 1)
        return before + auto + rest.split(AUTO_END, 1)[1]
    return f"\n{auto}\n\n{old_text.lstrip()}"


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
            EvalResult(**task, dataset_type=dataset_type, dataset_name=dataset_name, dataset_split=split,
                       metric_type=key, metric_name=names[key], metric_value=round(100 * float(value), 2))  # fmt: skip
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


def _usage_example(widget: list[dict] | None, item_fields: list[str]) -> dict[str, list]:
    if widget:
        return widget[0]["inputs"]
    first = item_fields[0]
    return {
        "history": [{field: f"<{field}>" for field in item_fields}],
        "candidates": [f"<{first} of candidate 1>", f"<{first} of candidate 2>"],
    }


def _folder_details(folder: Path) -> dict[str, Any]:
    """Architecture, item template and parameter count of the model saved in `folder`, for the card body."""
    processor = EmbSumProcessor.from_pretrained(folder)
    config, t5 = processor.config, processor.config.t5_config
    details = {name: getattr(config, name) for name in (
        "num_user_codes", "num_item_codes", "max_history_items", "session_max_tokens", "item_max_tokens",
        "summary_max_tokens", "summary_mode", "summary_loss_weight")}  # fmt: skip
    details.update(
        d_model=t5.d_model,
        num_layers=t5.num_layers,
        num_decoder_layers=t5.num_decoder_layers,
        item_template=processor.item_template,
        item_fields=processor.item_fields,
        num_parameters=_parameter_count(folder / "model.safetensors"),
    )
    return details


def _parameter_count(weights: Path) -> str | None:
    if not weights.is_file():
        return None
    with safe_open(str(weights), framework="pt") as handle:
        total = sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())
    return f"{total / 1e6:.1f}M" if total >= 1e5 else f"{total / 1e3:.1f}K"


__all__ = [
    "AUTO_END", "AUTO_START", "CARD_DATA_NAME", "FROM_SCRATCH", "RECORDED_FACTS", "TEMPLATE_PATH",
    "check_card_inputs", "load_card_inputs", "recorded_facts", "write_model_card",
]  # fmt: skip
