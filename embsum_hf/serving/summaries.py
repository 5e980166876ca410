"""The model's own interest summaries of many users: its summary decoder run batch by batch (for explanations,
`embsum summarize --backend embsum` and the summary metrics of evaluation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..modeling_embsum import EmbSumModel
from ..processing_embsum import EmbSumProcessor
from ..utils import evaluating, tqdm


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


__all__ = ["generate_summaries"]
