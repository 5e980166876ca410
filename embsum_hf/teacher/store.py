"""Append-only JSONL store of teacher summaries that survives crashes and makes reruns incremental.

One record per line: `{"user_id", "prompt_hash", "summary", "backend", "created"}`. Every batch is written with one
`write`, flushed and fsync'd, so a SIGKILL or power loss costs at most the batch in flight, and a torn last line is
cut off on the next open. Records are keyed by `(user_id, prompt_hash)`: a user whose current prompt hash is stored
is skipped, a user whose prompt changed (new history, new prompt wording) is regenerated, and the latest record of a
user wins. One writer per file at a time: a store holds its file's lock (`.<name>.lock` beside it, see
`embsum_hf.utils.folder_lock`) while open, so a second run on the same file fails at once with `FolderInUseError`
instead of generating (and paying for) every user again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import datasets

from ..utils import atomic_write_text, folder_lock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SummaryRecord:
    """One stored summary. `backend` names the teacher (`heuristic` marks summaries written without an LLM)."""

    user_id: Any
    prompt_hash: str
    summary: str
    backend: str
    created: str

    @classmethod
    def now(cls, user_id: Any, prompt_hash: str, summary: str, backend: str) -> SummaryRecord:
        """A record stamped with the current UTC time (ISO-8601)."""
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return cls(user_id, prompt_hash, summary, backend, created)


class SummaryStore:
    """The summaries of one teacher run, backed by a JSONL file at `path` (created with its folder if missing).

    Use as a context manager, or call `close()`. The file's lock is held from here to `close()`: a second store on
    the same file, in any process, raises `FolderInUseError` naming the file and the owner's pid.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._latest: dict[Any, SummaryRecord] = {}
        self.num_lines = 0
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(folder_lock(self.path, file=True))  # before reading: _load may cut a torn line
        try:
            self._load()
            self._file = open(self.path, "ab")
        except BaseException:
            self._lock.close()
            raise

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # every complete line ends with a newline; the rest is a torn write
        for number, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
            if not line.strip():
                continue
            try:
                record = SummaryRecord(**json.loads(line))
            except (ValueError, TypeError) as error:
                raise ValueError(f"{self.path}:{number}: corrupt summary record ({error})") from None
            self._latest[record.user_id] = record
            self.num_lines += 1
        if end < len(data):
            logger.warning("%s: cutting %d bytes of an interrupted write", self.path, len(data) - end)
            with open(self.path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())

    def __len__(self) -> int:
        return len(self._latest)

    def __contains__(self, user_id: Any) -> bool:
        return user_id in self._latest

    def get(self, user_id: Any) -> SummaryRecord | None:
        """The latest record of `user_id`, or None."""
        return self._latest.get(user_id)

    def is_current(self, user_id: Any, prompt_hash: str) -> bool:
        """Whether the latest summary of `user_id` was written from the prompt with `prompt_hash`."""
        record = self._latest.get(user_id)
        return record is not None and record.prompt_hash == prompt_hash

    def append(self, records: Iterable[SummaryRecord]) -> None:
        """Durably append `records` (one write, flush and fsync for the whole batch)."""
        records = list(records)
        if not records:
            return
        payload = "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in records).encode("utf-8")
        self._file.write(payload)
        self._file.flush()
        os.fsync(self._file.fileno())
        for record in records:
            self._latest[record.user_id] = record
        self.num_lines += len(records)

    def records(self) -> list[SummaryRecord]:
        """The latest record of every user, in order of first appearance in the file."""
        return list(self._latest.values())

    def __iter__(self) -> Iterator[SummaryRecord]:
        return iter(self._latest.values())

    def as_dict(self) -> dict[Any, str]:
        """`user_id -> summary` of the latest records."""
        return {record.user_id: record.summary for record in self}

    def to_dataset(self) -> datasets.Dataset:
        """The latest records as a `datasets.Dataset` with the record fields as columns."""
        columns = {name: [getattr(r, name) for r in self] for name in SummaryRecord.__annotations__}
        return datasets.Dataset.from_dict(columns)

    def write_jsonl(self, path: str | os.PathLike) -> Path:
        """Export `{"user_id", "summary"}` lines (the format the training data loader reads), written atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = (json.dumps({"user_id": r.user_id, "summary": r.summary}, ensure_ascii=False) + "\n" for r in self)
        atomic_write_text(path, "".join(lines))
        return path

    def close(self) -> None:
        self._file.close()
        self._lock.close()

    def __enter__(self) -> SummaryStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
