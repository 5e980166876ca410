"""Model cards for EmbSum repos: [`EmbSumModelCardData`] rendered with `huggingface_hub.ModelCard` into the folder.

The card's metadata is what the Hub reads (license, base model, datasets, tags and a `model-index` whose every result
names its dataset *and split*); it declares no `pipeline_tag` and no `widget`, since the Hub's widget and inference
run no custom code: the card says how to run the model instead (`pipeline(..., trust_remote_code=True)`, the Space,
an Inference Endpoint with the repo's handler). The facts a later regeneration needs are kept next to the card in
`embsum_card.json` (`CARD_DATA_NAME`, see `card_data`). The body's generated part sits between
`<!-- embsum:auto:start -->` and `<!-- embsum:auto:end -->`; regeneration replaces only that part and keeps whatever
the user wrote around it (a README without markers is kept below a new generated part).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import ModelCard
from safetensors import safe_open

from ..processing_embsum import EmbSumProcessor
from ..utils import atomic_write_text
from .card_data import (  # noqa: F401 (EMBSUM_CITATION, INSTALL, REPOSITORY: the card's constants, read here too)
    CARD_DATA_NAME,
    CARD_FIELDS,
    EMBSUM_CITATION,
    FROM_SCRATCH,
    INSTALL,
    REPOSITORY,
    EmbSumModelCardData,
    recorded_facts,
)

AUTO_START = "<!-- embsum:auto:start -->"
AUTO_END = "<!-- embsum:auto:end -->"
TEMPLATE_PATH = Path(__file__).parent / "templates" / "embsum_card_template.md"
# what a training run records; card inputs (model_cards/*.yaml) may add prose but not contradict these
RECORDED_FACTS = ("base_model", "dataset_name", "teacher", "license")


def write_model_card(
    folder: str | os.PathLike, card: EmbSumModelCardData | Mapping[str, Any] | None = None, **values: Any
) -> ModelCard:
    """
    Write (or update) `folder/README.md` for the EmbSum model saved in `folder` (what [`save_repo`] writes: the
    architecture, item template and parameter count come from it) and return the card.

    `card` and `values` are [`EmbSumModelCardData`] fields (`values` win); what they leave unset keeps what the
    folder's card recorded, new metrics replace the results for the same dataset, split and metric and keep the
    others, and the user's text around the generated part is kept.
    """
    folder = Path(folder)
    readme = folder / "README.md"
    existing = ModelCard.load(readme) if readme.is_file() else None
    if card is None or isinstance(card, Mapping):
        card = EmbSumModelCardData(**(card or {}))
    given = card.updated(**values).resolved()
    data = _folder_card(folder, existing).updated(given)
    data.eval_results = data.reported(given)
    data.model_details = _folder_details(folder)
    text = ModelCard.from_template(data, template_path=str(TEMPLATE_PATH)).text
    written = ModelCard(f"---\n{data.to_yaml()}\n---\n{keep_user_text(existing, text)}")
    written.save(readme)
    atomic_write_text(folder / CARD_DATA_NAME, json.dumps(data.recorded(), indent=2, ensure_ascii=False) + "\n")
    return written


def keep_user_text(existing: ModelCard | None, new_text: str) -> str:
    """
    The body of `existing` (the folder's README) with its generated part replaced by the one of `new_text`, or the
    generated part on top of it when it has none: the one place a regeneration merges the user's text.
    """
    if existing is None:
        return new_text
    old_text = existing.text
    auto = new_text[new_text.index(AUTO_START) : new_text.index(AUTO_END) + len(AUTO_END)]
    if AUTO_START in old_text and AUTO_END in old_text:
        before, rest = old_text.split(AUTO_START, 1)
        return before + auto + rest.split(AUTO_END, 1)[1]
    return f"\n{auto}\n\n{old_text.lstrip()}"


def load_card_inputs(path: str | os.PathLike) -> dict[str, Any]:
    """Read ready-made card inputs (a YAML file of [`EmbSumModelCardData`] fields, e.g. `model_cards/*.yaml`)."""
    inputs = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    unknown = sorted(set(inputs) - set(CARD_FIELDS))
    if unknown:
        raise ValueError(f"{path}: unknown card input(s) {unknown}; accepted: {sorted(CARD_FIELDS)}")
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


def _folder_card(folder: Path, existing: ModelCard | None) -> EmbSumModelCardData:
    """What the folder's card holds: its recorded facts, its Hub metadata and results."""
    metadata = existing.data.to_dict() if existing is not None else {}
    for name in ("model-index", "model_name", "eval_results", "pipeline_tag"):  # rebuilt, or what the Hub cannot run
        metadata.pop(name, None)
    old_widget = metadata.pop("widget", None)
    data = EmbSumModelCardData.from_facts(recorded_facts(folder, metadata.pop("embsum", None)))
    if old_widget and not data.widget:  # an older card's widget examples: its usage example
        data.widget = [{"example_title": w["example_title"], "inputs": json.loads(w["text"])} for w in old_widget]
    data.card_metadata = metadata
    data.eval_results = (existing.data.eval_results or []) if existing is not None else []
    return data


def _folder_details(folder: Path) -> dict[str, Any]:
    """Architecture, item template and parameter count of the model saved in `folder`, for the card body."""
    processor = EmbSumProcessor.from_pretrained(folder)
    config, t5 = processor.config, processor.config.t5_config
    details = {
        name: getattr(config, name)
        for name in (
            "num_user_codes",
            "num_item_codes",
            "max_history_items",
            "session_max_tokens",
            "session_max_items",
            "item_max_tokens",
            "summary_max_tokens",
            "summary_mode",
            "summary_loss_weight",
            "summary_copy",
            "summary_session_positions",
        )
    }
    details.update(
        d_model=t5.d_model,
        num_layers=t5.num_layers,
        num_decoder_layers=t5.num_decoder_layers,
        item_template=processor.item_template,
        item_fields=processor.item_fields,
        num_parameters=_parameter_count(folder / "model.safetensors"),
        folder_name=folder.resolve().name,
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
    "check_card_inputs", "keep_user_text", "load_card_inputs", "recorded_facts", "write_model_card",
]  # fmt: skip
