"""Prepare and upload a self-contained EmbSum repo: weights, processor, remote code, pipeline, card and endpoint files.

The folder loads with plain transformers (`AutoModel` / `pipeline(..., trust_remote_code=True)`) and serves as a
custom-handler Inference Endpoint (`handler.py` + `requirements.txt`), with no embsum_hf installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi

from ..modeling_embsum import EmbSumModel
from ..pipeline_embsum import EmbSumRecommendationPipeline
from ..processing_embsum import EmbSumProcessor
from .model_card import write_model_card

TEMPLATES = Path(__file__).parent / "templates"
ENDPOINT_FILES = ("handler.py", "requirements.txt")


def prepare_hub_folder(
    model: EmbSumModel,
    processor: EmbSumProcessor,
    folder: str | os.PathLike,
    *,
    card_kwargs: dict[str, Any] | None = None,
    card_from: str | os.PathLike | None = None,
) -> Path:
    """
    Write everything a Hub repo of `model` needs into `folder` and return it: `model.safetensors` and `config.json`
    (with `auto_map` and `custom_pipelines`), the tokenizer and `processor_config.json`, the flat
    configuration / modeling / processing / pipeline files for `trust_remote_code`, `README.md` (see
    [`write_model_card`], which receives `card_kwargs`; an existing card there is updated) and the endpoint's
    `handler.py` and `requirements.txt`.

    `card_from`: a card to update instead of starting anew, e.g. the `README.md` that `EmbSumTrainer` wrote into
    its output folder with the run's metrics and recipe.

    Saving the pipeline sets `model.config.custom_pipelines`, as `Pipeline.save_pretrained` does.
    """
    folder = Path(folder)
    if card_from is not None:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(card_from, folder / "README.md")
    # the pipeline's save writes the model, the processor, its own code and the `custom_pipelines` entry;
    # device=model.device keeps the model where it is
    EmbSumRecommendationPipeline(model=model, processor=processor, device=model.device).save_pretrained(folder)
    for name in ENDPOINT_FILES:
        shutil.copyfile(TEMPLATES / name, folder / name)
    write_model_card(folder, **(card_kwargs or {}))
    return folder


def push_to_hub(
    model: EmbSumModel,
    processor: EmbSumProcessor,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    card_kwargs: dict[str, Any] | None = None,
    commit_message: str = "Upload EmbSum model",
    api: HfApi | None = None,
    card_from: str | os.PathLike | None = None,
) -> str:
    """
    Create `repo_id` if needed and upload the folder [`prepare_hub_folder`] writes (the card's usage snippets name
    `repo_id`; `card_from` as there). Returns the commit URL. Pass `api` to use another endpoint (e.g. a private Hub).
    """
    api = api or HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model", token=token)
    with tempfile.TemporaryDirectory() as tmp:
        card_kwargs = {"repo_id": repo_id, **(card_kwargs or {})}
        folder = prepare_hub_folder(model, processor, tmp, card_kwargs=card_kwargs, card_from=card_from)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=folder, commit_message=commit_message, repo_type="model", token=token
        )
    return str(commit)


__all__ = ["prepare_hub_folder", "push_to_hub"]
