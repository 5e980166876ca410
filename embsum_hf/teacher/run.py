"""The teacher driver: build every user's prompt, skip users already summarised, generate the rest batch by batch."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sized
from dataclasses import dataclass, field
from typing import Any

from ..data.users import UserHistory
from ..utils import tqdm
from .base import TeacherBackend
from .prompts import MAX_TEXT_WORDS, SummaryRequest
from .store import SummaryRecord, SummaryStore

logger = logging.getLogger(__name__)


@dataclass
class SummaryRunStats:
    """Outcome of one `summarize_users` call.

    Attributes:
        done: summaries generated and stored in this run.
        skipped: users whose summary for their current prompt was already stored.
        failures: `(user_id, error message)` of every user the backend failed on; nothing was stored for them, so a
            rerun retries exactly these.
        empty: users with an empty history (no prompt can describe them; nothing generated).
        backend: the backend's name (`heuristic` marks summaries not written by an LLM).
        seconds: wall time of the run.
    """

    done: int = 0
    skipped: int = 0
    failures: list[tuple[Any, str]] = field(default_factory=list)
    empty: int = 0
    backend: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return len(self.failures)

    def __str__(self) -> str:
        return (
            f"done {self.done}, skipped {self.skipped}, failed {self.failed}, empty history {self.empty}"
            f" (backend {self.backend}, {self.seconds:.1f}s)"
        )


def summarize_users(
    users: Iterable[UserHistory],
    backend: TeacherBackend,
    store: SummaryStore,
    *,
    domain: str,
    batch_size: int = 8,
    max_items: int | None = None,
    max_words: int = MAX_TEXT_WORDS,
    progress: bool = True,
) -> SummaryRunStats:
    """Write the teacher summary of every user that lacks one for its current prompt.

    Users are read lazily, so `users` may be a generator over millions. Every finished batch is stored durably
    before the next one starts: a crash loses at most `batch_size` summaries, and rerunning the same call generates
    exactly the users that are missing or whose prompt changed. Summaries are keyed by `(user_id, prompt hash)`: a
    summary stored by another backend counts as done (a warning says how many); use a new store to replace them.

    Args:
        users: `(user_id, history)` pairs, history items as dicts, most recent first; each user at most once.
        backend: the teacher.
        store: where summaries go and which ones already exist.
        domain: prompt wording (`news`/`mind`, `books`/`goodreads`, `movies`/`movielens`, `custom`).
        batch_size: users per `backend.generate` call (and per durable write).
        max_items, max_words: prompt limits (history items shown, default `backend.history_items`; words per long
            text).
        progress: show a tqdm bar with rate and ETA.
    """
    stats = SummaryRunStats(backend=backend.name)
    max_items = max_items or backend.history_items
    if backend.name == "heuristic":
        logger.warning("heuristic teacher: summaries are template sentences, not LLM supervision")
    seen: set[Any] = set()
    other_backends: Counter[str] = Counter()  # skipped users whose stored summary another teacher wrote
    pending: list[SummaryRequest] = []
    start = time.perf_counter()
    total = len(users) if isinstance(users, Sized) else None
    with tqdm(users, total=total, disable=not progress, unit="user", desc=f"summarize ({backend.name})") as bar:
        for user_id, history in bar:
            if user_id in seen:
                raise ValueError(f"user {user_id!r} appears twice in `users`")
            seen.add(user_id)
            if not history:
                stats.empty += 1
                continue
            request = SummaryRequest.build(user_id, history, domain, max_items=max_items, max_words=max_words)
            if store.is_current(user_id, request.prompt_hash):
                stats.skipped += 1
                if store.get(user_id).backend != backend.name:
                    other_backends[store.get(user_id).backend] += 1
                continue
            pending.append(request)
            if len(pending) >= batch_size:
                _run_batch(pending, backend, store, stats)
                pending = []
                bar.set_postfix(done=stats.done, skipped=stats.skipped, failed=stats.failed, refresh=False)
        _run_batch(pending, backend, store, stats)
    stats.seconds = time.perf_counter() - start
    if other_backends:
        logger.warning(
            "kept %d stored summaries written by other backends (%s): the store is keyed by prompt, not by teacher;"
            " use a new store file to replace them",
            sum(other_backends.values()),
            dict(other_backends),
        )
    logger.info("teacher run finished: %s", stats)
    return stats


def _run_batch(
    requests: list[SummaryRequest], backend: TeacherBackend, store: SummaryStore, stats: SummaryRunStats
) -> None:
    if not requests:
        return
    outputs = backend.generate(requests)
    if len(outputs) != len(requests):
        raise RuntimeError(f"backend {backend.name} returned {len(outputs)} outputs for {len(requests)} prompts")
    records = []
    for request, output in zip(requests, outputs):
        if isinstance(output, str) and output.strip():
            records.append(SummaryRecord.now(request.user_id, request.prompt_hash, output.strip(), backend.name))
            continue
        error = output if isinstance(output, Exception) else "empty summary"
        stats.failures.append((request.user_id, str(error)))
        logger.warning("teacher failed for user %r: %s", request.user_id, error)
    store.append(records)
    stats.done += len(records)
