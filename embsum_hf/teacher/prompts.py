"""The teacher prompt of EmbSum: ask an instruction-tuned LLM for a three-sentence summary of a user's interests.

Following the paper, the LLM plays a recommendation assistant, reads the user's history most recent first (at most
30 items; long texts such as news abstracts cut at 100 words) and writes three sentences about the user's interests
without listing examples. The wording adapts to the domain (news, books, movies, custom items): each data source's
entry carries its wording (`data.sources.DomainWording`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data.sources import SOURCES, DomainWording

MAX_HISTORY_ITEMS = 30
MAX_TEXT_WORDS = 100

SYSTEM_PROMPT = "You are a recommendation assistant that describes users' interests."

Messages = list[dict[str, str]]
"""A chat conversation: `[{"role": "system" | "user" | "assistant", "content": str}, ...]`."""


def get_domain(domain: str) -> DomainWording:
    """The wording of `domain`: a data source (mind, ...) or a wording's own name (news, books, movies, custom).

    The wording of a source is a field of its entry (`data.sources.SOURCES`): the one place a source is described.
    """
    key = domain.lower()
    for source in SOURCES.values():
        if key in (source.name, source.wording.domain):
            return source.wording
    known = sorted({name for source in SOURCES.values() for name in (source.name, source.wording.domain)})
    raise ValueError(f"unknown domain {domain!r}; expected one of {known}")


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v).strip() for v in value if str(v).strip())
    return " ".join(str(value).split())  # one line: items are separated by newlines


def truncate_words(text: str, max_words: int = MAX_TEXT_WORDS) -> str:
    """`text` cut to its first `max_words` words; a cut text ends with "..."."""
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]) + " ..."


def format_item(item: Mapping[str, Any], wording: DomainWording, max_words: int = MAX_TEXT_WORDS) -> str:
    """One history line: `Title: ...; Abstract: ...; Category: ...` with empty fields left out."""
    parts = []
    for label, keys in wording.fields:
        text = next((t for t in (_field_text(item.get(k)) for k in keys) if t), "")
        if text:
            parts.append(f"{label}: {truncate_words(text, max_words) if label in wording.long_fields else text}")
    return "; ".join(parts)


def build_user_prompt(
    history: Sequence[Mapping[str, Any]],
    domain: str,
    *,
    max_items: int = MAX_HISTORY_ITEMS,
    max_words: int = MAX_TEXT_WORDS,
) -> str:
    """The user turn of the prompt: the history (most recent first, at most `max_items`) and the request."""
    wording = get_domain(domain)
    shown = history[:max_items]
    lines = [f"{i}. {format_item(item, wording, max_words)}" for i, item in enumerate(shown, start=1)]
    return (
        f"Here are the {len(shown)} {wording.items} a user {wording.activity} most recently, most recent first:\n"
        + "\n".join(lines)
        + f"\n\nSummarize the user's interests in exactly three sentences. Describe the topics and kinds of"
        f" {wording.items} the user likes in general terms; do not list or quote any specific {wording.item} as an"
        " example."
    )


def build_messages(history: Sequence[Mapping[str, Any]], domain: str, **kwargs) -> Messages:
    """The prompt as a chat (system role + user turn), for chat templates and chat-completion APIs."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": build_user_prompt(history, domain, **kwargs)},
    ]


def messages_to_text(messages: Messages) -> str:
    """A chat as plain text, for models without a chat template: the turns' contents separated by blank lines."""
    return "\n\n".join(message["content"] for message in messages)


def build_prompt(history: Sequence[Mapping[str, Any]], domain: str, **kwargs) -> str:
    """The prompt as one plain string (system text, blank line, user turn); what `prompt_hash` keys the store by."""
    return messages_to_text(build_messages(history, domain, **kwargs))


def prompt_hash(prompt: str) -> str:
    """SHA-256 hex digest of a prompt: a user whose prompt hash changed (new history, new wording) is regenerated."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SummaryRequest:
    """Everything a teacher backend may use for one user: the chat prompt and, for the heuristic, the raw history."""

    user_id: Any
    domain: str
    history: Sequence[Mapping[str, Any]] = field(repr=False)
    messages: Messages = field(repr=False)

    @classmethod
    def build(
        cls,
        user_id: Any,
        history: Sequence[Mapping[str, Any]],
        domain: str,
        *,
        max_items: int = MAX_HISTORY_ITEMS,
        max_words: int = MAX_TEXT_WORDS,
    ) -> SummaryRequest:
        """The request for `user_id`; `history` keeps only the `max_items` items the prompt shows."""
        messages = build_messages(history, domain, max_items=max_items, max_words=max_words)
        return cls(user_id, domain, list(history[:max_items]), messages)

    @property
    def prompt(self) -> str:
        return messages_to_text(self.messages)

    @property
    def prompt_hash(self) -> str:
        return prompt_hash(self.prompt)
