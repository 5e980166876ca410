"""Hub integration: model cards, a self-contained repo folder (remote code, pipeline, endpoint handler), a Gradio
Space, and their upload."""

from .model_card import AUTO_END, AUTO_START, load_card_inputs, write_model_card
from .push import prepare_hub_folder, push_to_hub
from .space import push_space, write_space

__all__ = [
    "AUTO_END",
    "AUTO_START",
    "load_card_inputs",
    "prepare_hub_folder",
    "push_space",
    "push_to_hub",
    "write_model_card",
    "write_space",
]
