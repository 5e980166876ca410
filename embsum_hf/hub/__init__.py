"""Hub integration: one complete repo folder per save (weights, processor, remote code, pipeline, endpoint handler,
card), model cards, a Gradio Space, and upload."""

from .card_data import EmbSumModelCardData, ModelCardCallback, model_card_data
from .model_card import AUTO_END, AUTO_START, check_card_inputs, load_card_inputs, write_model_card
from .push import push_to_hub, stage_repo, upload_repo
from .repo import SavesHubRepo, missing_repo_files, save_repo
from .space import push_space, write_space

__all__ = [
    "AUTO_END",
    "AUTO_START",
    "EmbSumModelCardData",
    "ModelCardCallback",
    "SavesHubRepo",
    "check_card_inputs",
    "load_card_inputs",
    "missing_repo_files",
    "model_card_data",
    "push_space",
    "push_to_hub",
    "save_repo",
    "stage_repo",
    "upload_repo",
    "write_model_card",
    "write_space",
]
