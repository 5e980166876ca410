"""Upload an EmbSum repo folder (what [`save_repo`] or the Trainer wrote) to the Hub.

The folder already holds everything (weights, processor, remote code, pipeline, endpoint files, card); uploading
stages it without the training leftovers (checkpoints, logs, saved splits), optionally updates the staged card with
card inputs (`model_cards/*.yaml`), and commits it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi

from ..modeling_embsum import EmbSumModel
from ..processing_embsum import EmbSumProcessor
from ..utils import LOCK_NAME, check_safetensors
from .model_card import check_card_inputs, write_model_card
from .repo import TEMPLATES, missing_repo_files, save_repo  # noqa: F401 (TEMPLATES: where the handler lives)

# what a Trainer output folder holds that is not part of the model repo
NOT_UPLOADED = ("checkpoint-*", "runs", "data", "results.json", "trainer_state.json", "*.pt", "*.pth", "rng_state*")
NOT_UPLOADED += (LOCK_NAME,)  # the lock of the run that wrote the folder (`embsum_hf.utils.folder_lock`)


def stage_repo(
    folder: str | os.PathLike, staging: str | os.PathLike, *, card_kwargs: dict[str, Any] | None = None
) -> Path:
    """
    Copy the repo files of `folder` to `staging` (copies, not links: the run is never edited through them) and update
    the staged card with `card_kwargs` ([`EmbSumModelCardData`] fields, see [`write_model_card`]; the run's own
    metrics and recipe are kept). `folder`
    is not changed.
    A folder that lacks a repo file is an error naming the files; a card input that contradicts what the run recorded
    (base model, data, teacher, license) is an error naming both values.
    """
    folder, staging = Path(folder), Path(staging)
    # damaged weights or config are named before anything is staged: nothing broken is ever uploaded
    check_safetensors(folder)
    config = folder / "config.json"
    if config.is_file():
        try:
            json.loads(config.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{config}: not valid JSON ({error})") from None
    missing = missing_repo_files(folder)
    if missing:
        raise ValueError(
            f"{folder} is not a complete EmbSum repo (missing {', '.join(missing)}); save it with "
            "embsum_hf.hub.save_repo or train it with `embsum train`"
        )

    check_card_inputs(folder, card_kwargs or {})
    # copies, never hard links: editing or re-carding a staged file must leave the trained run as it is
    shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(*NOT_UPLOADED), dirs_exist_ok=True)
    if card_kwargs:
        write_model_card(staging, card_kwargs)
    return staging


def upload_repo(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    card_kwargs: dict[str, Any] | None = None,
    commit_message: str = "Upload EmbSum model",
    api: HfApi | None = None,
) -> str:
    """
    Create `repo_id` if needed and upload the repo folder `folder` (see [`stage_repo`]; the staged card's usage
    snippets name `repo_id`). Returns the commit URL. Pass `api` to use another endpoint (e.g. a private Hub).
    """
    api = api or HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model", token=token)
    with tempfile.TemporaryDirectory() as tmp:
        staged = stage_repo(folder, tmp, card_kwargs={"repo_id": repo_id, **(card_kwargs or {})})
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=staged, commit_message=commit_message, repo_type="model", token=token
        )
    return str(commit)


def push_to_hub(
    model: EmbSumModel,
    processor: EmbSumProcessor,
    repo_id: str,
    *,
    card_kwargs: dict[str, Any] | None = None,
    **upload_kwargs: Any,
) -> str:
    """[`save_repo`] `model` and `processor` with `card_kwargs`, then [`upload_repo`] the folder (same keywords)."""
    with tempfile.TemporaryDirectory() as tmp:
        card_kwargs = {"repo_id": repo_id, **(card_kwargs or {})}
        folder = save_repo(model, processor, Path(tmp, "repo"), card_kwargs=card_kwargs)
        return upload_repo(folder, repo_id, **upload_kwargs)


__all__ = ["NOT_UPLOADED", "push_to_hub", "stage_repo", "upload_repo"]
