"""Helpers over a loaded [`EmbSumModel`] that training, the teacher and serving share (not Hub-facing)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .modeling_embsum import EmbSumModel
from .processing_embsum import EmbSumProcessor
from .utils import evaluating, tqdm

# config keys that change with saving/loading, not with what the model computes (`custom_pipelines`: written when the
# pipeline is saved with the model, e.g. into a Hub folder)
_VOLATILE_CONFIG_KEYS = frozenset(
    {"_name_or_path", "transformers_version", "architectures", "auto_map", "custom_pipelines", "dtype", "torch_dtype"}
)


def model_fingerprint(model: nn.Module) -> str:
    """
    sha256 over the model's config (without save/load bookkeeping such as `_name_or_path`) and every tensor of its
    state dict (name, dtype, shape, bytes), in name order. Deterministic across processes and save/load round trips;
    about 0.3 s for a t5-small-sized model.
    """

    def stable(value):
        if isinstance(value, Mapping):
            return {key: stable(item) for key, item in value.items() if key not in _VOLATILE_CONFIG_KEYS}
        return value

    digest = hashlib.sha256()
    config = stable(model.config.to_dict()) if hasattr(model, "config") else {}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def generate_summaries(
    model: EmbSumModel,
    processor: EmbSumProcessor,
    histories: Sequence[Sequence[Mapping[str, Any]]],
    *,
    batch_size: int = 16,
    progress: bool = False,
    **generate_kwargs,
) -> list[str]:
    """The model's interest summary of each history (item dicts, most recent first), `batch_size` users per
    `generate_summary` call (greedy unless `generate_kwargs` say otherwise)."""
    texts: list[str] = []
    with evaluating(model):
        for start in tqdm(range(0, len(histories), batch_size), desc="Generating summaries", disable=not progress):
            batch = [list(history) for history in histories[start : start + batch_size]]
            users = processor.encode_users(batch).to(model.device)
            texts += [text.strip() for text in model.generate_summary(**users, processor=processor, **generate_kwargs)]
    return texts


__all__ = ["generate_summaries", "model_fingerprint"]
