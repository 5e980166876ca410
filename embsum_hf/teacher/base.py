"""The interface every teacher backend implements (each backend module imports this one; none imports another).

The registry of backend names is the package's (`embsum_hf.teacher.BACKENDS`, `get_backend`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from .prompts import MAX_HISTORY_ITEMS, SummaryRequest


class TeacherError(RuntimeError):
    """A summary could not be generated for one user (the driver records it as a failure and stores nothing)."""


class TeacherBackend(ABC):
    """Writes user-interest summaries.

    `name` is recorded with every stored summary (e.g. `transformers:HuggingFaceTB/SmolLM2-135M-Instruct`,
    `openai:mixtral-8x22b`, `heuristic`), so summaries of different teachers are never confused. `history_items` is
    how many of a user's latest items a request carries (the paper's prompt shows 30).
    """

    name: str
    history_items: int = MAX_HISTORY_ITEMS

    @abstractmethod
    def generate(self, requests: Sequence[SummaryRequest]) -> list[str | Exception]:
        """One summary per request, in order.

        A request that failed on its own (a bad HTTP reply, say) gets its exception in its slot instead of a string,
        like `asyncio.gather(..., return_exceptions=True)`; the others still succeed. An exception raised out of
        `generate` means the backend itself is broken and stops the run (finished batches are already stored).
        """


__all__ = ["TeacherBackend", "TeacherError"]
