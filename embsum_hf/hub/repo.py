"""One way to save an EmbSum model: a complete, self-contained Hub repo folder.

`save_repo(model, processor, folder)` writes the weights and `config.json` (with `auto_map` for AutoConfig /
AutoModel and `custom_pipelines` for the `embsum-recommendation` pipeline), the tokenizer and `processor_config.json`
(with `auto_map` for AutoProcessor), the four flat Hub-facing code files (configuration / modeling / processing /
pipeline), the Inference Endpoints files (`handler.py`, `requirements.txt`) and the card (`README.md`).

`SavesHubRepo` makes a `transformers.Trainer` write the same into its output folder and into every checkpoint, so
any of them can be uploaded as it is (`embsum push`, `hf upload`, `--push_to_hub true`) and loads in a process
that never imports embsum_hf.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers.dynamic_module_utils import custom_object_save

from ..modeling_embsum import EmbSumModel
from ..pipeline_embsum import EmbSumRecommendationPipeline
from ..processing_embsum import EmbSumProcessor
from ..utils import make_readable
from .card_data import CARD_DATA_NAME, CARD_FIELDS, EmbSumModelCardData, ModelCardCallback, model_card_data
from .model_card import write_model_card

TEMPLATES = Path(__file__).parent / "templates"
ENDPOINT_FILES = ("handler.py", "requirements.txt")
REMOTE_CODE_FILES = ("configuration_embsum.py", "modeling_embsum.py", "processing_embsum.py", "pipeline_embsum.py")


def add_pipeline_entry(model: EmbSumModel) -> None:
    """
    Record the `embsum-recommendation` pipeline under `model.config.custom_pipelines` (as `Pipeline.save_pretrained`
    does), so that `pipeline(model=folder, trust_remote_code=True)` finds it in the saved `config.json`.
    """
    custom_pipelines = {}
    for task, info in getattr(EmbSumRecommendationPipeline, "_registered_impl", {}).items():
        impl = info["impl"]
        custom_pipelines[task] = {
            **info,
            "impl": f"{impl.__module__.split('.')[-1]}.{impl.__name__}",
            "pt": tuple(model_class.__name__ for model_class in info["pt"]),
        }
    if not custom_pipelines:
        raise RuntimeError("the embsum-recommendation pipeline is not registered: import embsum_hf first")
    model.config.custom_pipelines = custom_pipelines


def write_repo_files(folder: str | os.PathLike, card: EmbSumModelCardData | Mapping[str, Any] | None = None) -> None:
    """
    What a repo needs beyond `model.save_pretrained` + `processor.save_pretrained`: the pipeline's code, the endpoint
    files and the card ([`write_model_card`] of `card`; an existing card there is updated).
    """
    folder = Path(folder)
    make_readable(*folder.glob("*.safetensors"))  # safetensors writes 0600: a server running as another user reads it
    custom_object_save(EmbSumRecommendationPipeline, folder)  # pipeline_embsum.py (+ the flat files it imports)
    for name in ENDPOINT_FILES:
        shutil.copyfile(TEMPLATES / name, folder / name)
    write_model_card(folder, card)


def save_repo(
    model: EmbSumModel,
    processor: EmbSumProcessor,
    folder: str | os.PathLike,
    *,
    card_kwargs: EmbSumModelCardData | Mapping[str, Any] | None = None,
    **save_kwargs: Any,
) -> Path:
    """
    Write the complete Hub repo of `model` and `processor` into `folder` (see the module docstring) and return it.
    `card_kwargs` (card data, or a mapping of its fields) go to [`write_model_card`], `save_kwargs` to
    `model.save_pretrained`. A model loaded from a saved
    repo keeps that repo's card (its recorded facts, metadata and the text around the generated part) in a folder
    that has none yet, updated with `card_kwargs`: what `embsum push --dry-run` stages from the same folder.
    """
    folder = Path(folder)
    carry_card(model, folder)
    add_pipeline_entry(model)
    model.save_pretrained(folder, **save_kwargs)
    processor.save_pretrained(folder)
    write_repo_files(folder, card_kwargs)
    return folder


def carry_card(model: EmbSumModel, folder: Path) -> None:
    """Copy the card of the repo `model` was loaded from (`config.name_or_path`) into `folder` when it has none."""
    if not model.config.name_or_path:  # built in code: no card to carry
        return
    source = Path(model.config.name_or_path)
    if not (source / "README.md").is_file() or (folder / "README.md").exists() or source.resolve() == folder.resolve():
        return
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("README.md", CARD_DATA_NAME):
        if (source / name).is_file():
            shutil.copyfile(source / name, folder / name)


def missing_repo_files(folder: str | os.PathLike) -> list[str]:
    """The files of a complete repo that `folder` lacks (empty for what `save_repo` or the Trainer wrote)."""
    needed = ("config.json", "model.safetensors", "processor_config.json", "README.md")
    needed += ENDPOINT_FILES + REMOTE_CODE_FILES
    return [name for name in needed if not Path(folder, name).is_file()]


class SavesHubRepo:
    """
    Trainer mixin (put it before `Trainer` in the bases): each save, the final one and every checkpoint, writes the
    complete repo of [`save_repo`]. The Trainer's own save writes the model (with `custom_pipelines`) and its
    `processing_class` (an [`EmbSumProcessor`]); this adds the pipeline code, the endpoint files and the card,
    rendered from the model's [`EmbSumModelCardData`], which a [`ModelCardCallback`] fills while training.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(ModelCardCallback(self))

    @property
    def model_card_data(self):
        return model_card_data(self.accelerator.unwrap_model(self.model, keep_torch_compile=False))

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        add_pipeline_entry(model)
        super()._save(output_dir, state_dict=state_dict)
        if self.args.should_save:
            write_repo_files(output_dir, model_card_data(model))

    def create_model_card(self, **card_kwargs):
        """
        Render the model's card data into `output_dir/README.md` (see [`write_model_card`]), updated with the
        [`EmbSumModelCardData`] fields given, e.g. `summary_rouge` (measured on the last evaluated split, or on
        `dataset_split`). Keyword arguments of the base Trainer's card (`model_name`, `finetuned_from`, ...) that
        EmbSum's card does not use are ignored.
        """
        if not self.is_world_process_zero():
            return None
        values = {name: value for name, value in card_kwargs.items() if name in CARD_FIELDS}
        return write_model_card(self.args.output_dir, self.model_card_data, **values)


__all__ = ["SavesHubRepo", "add_pipeline_entry", "missing_repo_files", "save_repo", "write_repo_files"]
