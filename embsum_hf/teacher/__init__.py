"""User-interest summaries: the LLM teacher's prompts, backends (transformers / OpenAI-compatible HTTP / heuristic,
and `EmbSumBackend`, a trained EmbSum's own summaries), a crash-safe summary store and the driver that fills it.

    >>> from embsum_hf.teacher import HeuristicBackend, SummaryStore, summarize_users, user_histories
    >>> with SummaryStore("summaries.jsonl") as store:
    ...     stats = summarize_users(user_histories(data), HeuristicBackend(), store, domain=data.domain)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backend_heuristic import HeuristicBackend
from .backend_http import MalformedReplyError, OpenAIChatBackend
from .backends import TeacherBackend, TeacherError, get_backend
from .prompts import SummaryRequest, build_messages, build_prompt, get_domain, prompt_hash
from .run import SummaryRunStats, summarize_users, user_histories
from .store import SummaryRecord, SummaryStore

if TYPE_CHECKING:
    from .backend_embsum import EmbSumBackend
    from .backend_transformers import TransformersBackend


def __getattr__(name: str):
    # these import torch and transformers (seconds); load them only when used
    if name == "TransformersBackend":
        from .backend_transformers import TransformersBackend

        return TransformersBackend
    if name == "EmbSumBackend":
        from .backend_embsum import EmbSumBackend

        return EmbSumBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EmbSumBackend",
    "HeuristicBackend",
    "MalformedReplyError",
    "OpenAIChatBackend",
    "SummaryRecord",
    "SummaryRequest",
    "SummaryRunStats",
    "SummaryStore",
    "TeacherBackend",
    "TeacherError",
    "TransformersBackend",
    "build_messages",
    "build_prompt",
    "get_backend",
    "get_domain",
    "prompt_hash",
    "summarize_users",
    "user_histories",
]
