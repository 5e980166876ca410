"""Hub integration: one complete repo folder per save (weights, processor, remote code, pipeline, endpoint handler,
card), model cards, and upload."""

from .model_card import AUTO_END, AUTO_START, load_card_inputs, write_model_card
from .push import push_to_hub, stage_repo, upload_repo
from .repo import SavesHubRepo, missing_repo_files, save_repo

__all__ = [
    "AUTO_END",
    "AUTO_START",
    "SavesHubRepo",
    "load_card_inputs",
    "missing_repo_files",
    "push_to_hub",
    "save_repo",
    "stage_repo",
    "upload_repo",
    "write_model_card",
]
