"""User-interest summaries: the LLM teacher's prompts, backends (transformers / OpenAI-compatible HTTP / heuristic,
and `EmbSumBackend`, a trained EmbSum's own summaries), a crash-safe summary store and the driver that fills it.

    >>> from embsum_hf.teacher import HeuristicBackend, SummaryStore, summarize_users, user_histories
    >>> with SummaryStore("summaries.jsonl") as store:
    ...     stats = summarize_users(user_histories(data), HeuristicBackend(), store, domain=data.domain)

The public names load on first use, as in `embsum_hf/__init__.py` (the torch-backed backends take seconds to import).
Every backend module imports `base` (the interface) and none imports another; the names below are the one registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

# public name -> the module that defines it
_LAZY_NAMES = {
    "TeacherBackend": "base",
    "TeacherError": "base",
    "EmbSumBackend": "backend_embsum",
    "HeuristicBackend": "backend_heuristic",
    "MalformedReplyError": "backend_http",
    "OpenAIChatBackend": "backend_http",
    "TransformersBackend": "backend_transformers",
    "SummaryRequest": "prompts",
    "build_messages": "prompts",
    "build_prompt": "prompts",
    "get_domain": "prompts",
    "prompt_hash": "prompts",
    "SummaryRunStats": "run",
    "summarize_users": "run",
    "SummaryRecord": "store",
    "SummaryStore": "store",
    "user_histories": ".data.users",  # the teacher's input: `(user_id, history)` pairs
}

# `embsum summarize --backend NAME` -> the public name of its class
BACKENDS = {
    "transformers": "TransformersBackend",
    "openai": "OpenAIChatBackend",
    "heuristic": "HeuristicBackend",
    "embsum": "EmbSumBackend",
}

__all__ = [
    "BACKENDS",
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

if TYPE_CHECKING:
    from ..data.users import user_histories
    from .backend_embsum import EmbSumBackend
    from .backend_heuristic import HeuristicBackend
    from .backend_http import MalformedReplyError, OpenAIChatBackend
    from .backend_transformers import TransformersBackend
    from .base import TeacherBackend, TeacherError
    from .prompts import SummaryRequest, build_messages, build_prompt, get_domain, prompt_hash
    from .run import SummaryRunStats, summarize_users
    from .store import SummaryRecord, SummaryStore


__getattr__, __dir__ = lazy_exports(__name__, _LAZY_NAMES, globals())


def get_backend(name: str, **kwargs) -> TeacherBackend:
    """Build a backend by name (a key of `BACKENDS`: `transformers`, `openai`, `heuristic` or `embsum`); `kwargs` go
    to its constructor. Only the named backend's module is imported (torch and transformers only when asked for)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown teacher backend {name!r}; expected {', '.join(BACKENDS)}")
    return __getattr__(BACKENDS[name])(**kwargs)
