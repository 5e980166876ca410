"""Offline embedding jobs: every item's CPE (+ score keys) and every user's UPE, into an [`EmbeddingStore`].

Both jobs are batched (entries sorted by token length inside each shard, to cut padding), resumable (a rerun skips
the shards already on disk with the same content key) and split across processes with Accelerate: rank `r` of `w`
encodes shards `i % w == r`; the main process writes the manifest once every rank is done. Launch several processes
with e.g. `torchrun --nproc_per_node 2` or `accelerate launch` (on CPU set `ACCELERATE_USE_CPU=1`).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..modeling_embsum import EmbSumModel
from ..processing_embsum import EmbSumProcessor
from ..utils import evaluating, job_folder_lock, job_state, tqdm
from .store import EmbeddingStore, ShardedStoreWriter, content_key, model_fingerprint

logger = logging.getLogger(__name__)

Item = Mapping[str, Any]
User = tuple[str, Sequence[Item]]  # (user_id, history item dicts, most recent first)


def _item_ids(items: Any) -> list[str]:
    if hasattr(items, "column_names"):  # datasets.Dataset
        if "item_id" not in items.column_names:
            raise ValueError(f"the items dataset needs an 'item_id' column, it has {items.column_names}")
        return [str(i) for i in items["item_id"]]
    missing = [n for n, item in enumerate(items) if "item_id" not in item]
    if missing:
        raise ValueError(f"{len(missing)} items lack 'item_id', e.g. positions {missing[:5]}")
    return [str(item["item_id"]) for item in items]


def _item_rows(items: Any, start: int, stop: int) -> list[Item]:
    if hasattr(items, "column_names"):
        return items.select(range(start, stop)).to_list()
    return list(items[start:stop])


class SessionStateCache:
    """
    T5 encoder states of the sessions an `encode_users` job has encoded, kept across its batches: a session is encoded
    on its own (no other row attends to it), so its states do not depend on the users it is read with, and a session
    met again is not encoded again. With one item per session (`session_max_items=1`, the from-scratch recipe) a
    session is one item, so an item read by many users is encoded about once per job instead of once per reader
    (MIND: a news item is in about 130 histories). Packed sessions (the paper's) rarely repeat: they miss and cost
    only the memory.

    The states live in one buffer of `max_bytes` (allocated at the first session kept; its pages are taken as they
    are written), filled as a ring: once it is full, the oldest sessions make room for the new ones. One buffer, not a
    tensor per session: tens of thousands of small tensors fragment the heap (measured: 2.7 GB of RSS for 0.4 GB of
    states).

    Args:
        max_bytes: the size of the buffer (0: keep nothing).
    """

    def __init__(self, max_bytes: int):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.hits = self.misses = 0
        self._buffer: torch.Tensor | None = None  # (capacity, d)
        self._where: dict[tuple[int, ...], tuple[int, int]] = {}  # session -> (first row, length) in the buffer
        self._order: deque[tuple[int, ...]] = deque()  # the sessions held, oldest first
        self._next = 0  # the buffer row the next session is written at

    @property
    def bytes(self) -> int:
        """The bytes of states held."""
        if self._buffer is None:
            return 0
        row = self._buffer.shape[-1] * self._buffer.element_size()
        return row * sum(length for _, length in self._where.values())

    def __len__(self) -> int:
        return len(self._where)

    def session_states(self, model: EmbSumModel, user_sessions: list[list[list[int]]]) -> torch.Tensor:
        """
        The encoder states `(B, G, L, d)` of `B` users' sessions laid out as `EmbSumProcessor.pad_users` lays out
        their token ids (`G` the most sessions, `L` the longest session; padding zero), for
        `EmbSumModel.encode_user(..., session_states=...)`.
        """
        keys = [[tuple(session) for session in sessions] for sessions in user_sessions]
        missing = list(dict.fromkeys(key for sessions in keys for key in sessions if key not in self._where))
        self.misses += len(missing)
        self.hits += sum(len(sessions) for sessions in keys) - len(missing)
        fresh: dict[tuple[int, ...], torch.Tensor] = {}
        if missing:
            width = max(len(key) for key in missing)
            ids = torch.full((len(missing), width), model.config.t5_config.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, key in enumerate(missing):
                ids[row, : len(key)] = torch.tensor(key)
                mask[row, : len(key)] = 1
            encoded = model.encode_rows(ids.to(model.device), mask.to(model.device))  # (m, width, d)
            fresh = {key: encoded[row, : len(key)] for row, key in enumerate(missing)}
        sessions_per_user = max(len(sessions) for sessions in keys)
        length = max(len(key) for sessions in keys for key in sessions)
        like = next(iter(fresh.values())) if fresh else self._buffer
        states = like.new_zeros(len(keys), sessions_per_user, length, like.shape[-1])
        for user, sessions in enumerate(keys):
            for index, key in enumerate(sessions):
                value = fresh.get(key)
                if value is None:
                    start, size = self._where[key]
                    value = self._buffer[start : start + size]
                states[user, index, : len(key)] = value
        for key, value in fresh.items():  # after every hit is read: keeping may overwrite the oldest sessions
            self._keep(key, value)
        return states

    def _keep(self, key: tuple[int, ...], value: torch.Tensor) -> None:
        if self._buffer is None:
            capacity = self.max_bytes // (value.shape[-1] * value.element_size())
            if capacity < len(value):
                return
            self._buffer = value.new_empty(capacity, value.shape[-1])
        capacity, size = len(self._buffer), len(value)
        if size > capacity:
            return
        if self._next + size > capacity:  # wrap around: the sessions past the last write are the oldest
            while self._order and self._where[self._order[0]][0] >= self._next:
                del self._where[self._order.popleft()]
            self._next = 0
        while self._order and self._overlaps(self._order[0], self._next + size):  # the rows about to be written
            del self._where[self._order.popleft()]
        self._buffer[self._next : self._next + size] = value
        self._where[key] = (self._next, size)
        self._order.append(key)
        self._next += size

    def _overlaps(self, key: tuple[int, ...], end: int) -> bool:
        start, size = self._where[key]
        return start < end and start + size > self._next


def _tokenize_distinct(processor: EmbSumProcessor, items: Sequence[Item]) -> list[list[int]]:
    """`processor.tokenize_items(items)`, tokenizing an item met several times (the same `item_id`) once."""
    first: dict[Any, int] = {}
    distinct: list[Item] = []
    rows = []
    for item in items:
        key = item.get("item_id", object())  # no id: its own entry
        if key not in first:
            first[key] = len(distinct)
            distinct.append(item)
        rows.append(first[key])
    token_ids = processor.tokenize_items(distinct)
    return [token_ids[row] for row in rows]


def _run_job(
    model: EmbSumModel,
    writer: ShardedStoreWriter,
    prepare: Callable[[int, int], list],
    length: Callable[[Any], int],
    encode: Callable[[list], dict[str, torch.Tensor]],
    batch_size: int,
    progress: bool,
) -> EmbeddingStore:
    """
    The shared loop of both jobs. `prepare(start, stop)` gives the token ids of entries `[start, stop)`,
    `length(entry)` its padded size, `encode(entries)` the tensors of a batch, each `(batch, codes, d)`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    state = job_state()
    with job_folder_lock(writer.path):  # one job per store: a second one fails at once ("folder in use by pid N")
        if state.is_main_process:
            writer.begin()
        try:
            _encode_shards(model, writer, prepare, length, encode, batch_size, progress, state)
        except Exception as error:
            if state.is_main_process:  # a refusal (e.g. NaN embeddings) is recorded: the store is not "interrupted"
                writer.fail(" ".join(str(error).split()) or type(error).__name__)
            raise
    return EmbeddingStore.load(writer.path, expected_fingerprint=writer.fingerprint)


def _encode_shards(model, writer, prepare, length, encode, batch_size, progress, state) -> None:
    """This process's shards (skipping those already on disk), then the manifest once every rank is done."""
    mine = range(state.process_index, writer.num_shards, state.num_processes)
    done = skipped = 0
    with tqdm(
        total=sum(len(range(*writer.shard_range(i))) for i in mine),
        desc=f"Encoding {writer.kind}",
        unit=writer.kind[:-1],
        disable=not (progress and state.is_local_main_process),
    ) as bar:
        for index in mine:
            start, stop = writer.shard_range(index)
            entries = prepare(start, stop)
            key = content_key(writer.fingerprint, writer.kind, writer.dtype, writer.ids[start:stop], entries)
            if writer.is_done(index, key):
                skipped += 1
                logger.info("skipped shard %d/%d (already on disk)", index + 1, writer.num_shards)
                bar.update(stop - start)
                continue
            order = sorted(range(len(entries)), key=lambda row: length(entries[row]))  # similar lengths per batch
            outputs: dict[str, torch.Tensor] = {}
            with evaluating(model):
                for first in range(0, len(order), batch_size):
                    rows = order[first : first + batch_size]
                    for name, value in encode([entries[row] for row in rows]).items():
                        if name not in outputs:
                            outputs[name] = value.new_empty((len(entries), *value.shape[1:]), device="cpu")
                        outputs[name][rows] = value.to("cpu")  # back to the shard's row order
                    bar.update(len(rows))
            writer.write(index, outputs, key)
            done += 1
            logger.info("wrote shard %d/%d (%d %s)", index + 1, writer.num_shards, stop - start, writer.kind)
    logger.info("rank %d: %d shards encoded, %d reused", state.process_index, done, skipped)
    state.wait_for_everyone()
    if state.is_main_process:
        writer.finalize()
    state.wait_for_everyone()


def encode_items(
    model: EmbSumModel,
    processor: EmbSumProcessor,
    items: Sequence[Item] | Any,
    output_dir: str | os.PathLike,
    *,
    batch_size: int = 64,
    dtype: str = "float32",
    shard_size: int = 4096,
    progress: bool = True,
) -> EmbeddingStore:
    """
    Encode every item's Content Poly-Embedding into a store: `embeddings` `(n, M, d)` = `model.encode_item` and
    `keys` `(n, M, d)` = `model.item_score_keys(embeddings)`, rows in the order of `items`; for a model with an item
    prior (`EmbSumConfig.item_prior_ids`) also `prior` `(n, 1)`, 0 for items without one.

    Args:
        items: item dicts or a `datasets.Dataset` with an `item_id` column and the processor template's fields.
        output_dir: the store folder; rerunning into the same folder resumes (finished shards are kept).
        dtype: storage dtype, `"float32"`, `"float16"` or `"bfloat16"` (computation runs in the model's dtype).
        shard_size: items per shard file, the unit of resumption and of work split across processes.
    """
    config = model.config
    shape = (config.num_item_codes, config.hidden_size)
    has_prior = model.item_prior is not None
    writer = ShardedStoreWriter(
        Path(output_dir),
        "items",
        _item_ids(items),
        model_fingerprint(model),
        dtype,
        {"embeddings": shape, "keys": shape, **({"prior": (1,)} if has_prior else {})},
        shard_size,
    )

    # an entry is the item's token ids, or (its item-prior row, token ids) for a model with an item prior
    def encode(entries: list) -> dict[str, torch.Tensor]:
        token_ids = [ids for _, ids in entries] if has_prior else entries
        batch = processor.pad_items(token_ids).to(model.device)
        embeddings = model.encode_item(**batch)  # (b, M, d)
        outputs = {"embeddings": embeddings, "keys": model.item_score_keys(embeddings)}
        if has_prior:
            rows = torch.tensor([row for row, _ in entries], device=model.device)
            outputs["prior"] = model.item_prior_scores(rows)[:, None]  # (b, 1)
        return outputs

    def prepare(start: int, stop: int) -> list:
        token_ids = processor.tokenize_items(_item_rows(items, start, stop))
        if not has_prior:
            return token_ids
        return list(zip(model.item_prior_index(writer.ids[start:stop]).tolist(), token_ids))

    length = (lambda entry: len(entry[1])) if has_prior else len
    return _run_job(model, writer, prepare, length, encode, batch_size, progress)


def encode_users(
    model: EmbSumModel,
    processor: EmbSumProcessor,
    users: Iterable[User],
    output_dir: str | os.PathLike,
    *,
    batch_size: int = 16,
    dtype: str = "float32",
    shard_size: int = 1024,
    progress: bool = True,
    session_cache_mb: float = 1024,
) -> EmbeddingStore:
    """
    Encode every user's User Poly-Embedding into a store: `embeddings` `(n, K, d)` = `model.encode_user(...)
    .user_embeddings` (`h_sum` per `config.summary_mode`), rows in the order of `users`.

    Args:
        users: `(user_id, history)` pairs, the history being item dicts, most recent first (materialised to a list
            of each user's `config.max_history_items` most recent items, all the model reads).
        output_dir, dtype, shard_size: as in [`encode_items`]; users are sorted by session count and length.
        session_cache_mb: memory for the encoder states of sessions already encoded ([`SessionStateCache`]): a
            session read again by another user is not encoded again. 0 encodes every user's sessions afresh.
    """
    config = model.config
    users = [(user_id, list(history[: config.max_history_items])) for user_id, history in users]
    writer = ShardedStoreWriter(
        Path(output_dir),
        "users",
        [str(user_id) for user_id, _ in users],
        model_fingerprint(model),
        dtype,
        {"embeddings": (config.num_user_codes, config.hidden_size)},
        shard_size,
    )

    def prepare(start: int, stop: int) -> list[list[list[int]]]:  # each user's sessions, oldest first
        histories = [history for _, history in users[start:stop]]
        token_ids = iter(_tokenize_distinct(processor, [item for history in histories for item in history]))
        return [processor.pack_sessions([next(token_ids) for _ in history]) for history in histories]

    def padded_size(sessions: list[list[int]]) -> int:
        return len(sessions) * max(len(session) for session in sessions)

    cache = SessionStateCache(int(session_cache_mb * 2**20))

    def encode(sessions: list[list[list[int]]]) -> dict[str, torch.Tensor]:
        batch = processor.pad_users(sessions).to(model.device)
        states = cache.session_states(model, sessions) if cache.max_bytes else None
        return {"embeddings": model.encode_user(**batch, session_states=states).user_embeddings}  # (b, K, d)

    store = _run_job(model, writer, prepare, padded_size, encode, batch_size, progress)
    if cache.hits + cache.misses:
        logger.info(
            "sessions: %d encoded, %d reused from the cache (%.0f MiB held)",
            cache.misses,
            cache.hits,
            cache.bytes / 2**20,
        )
    return store


__all__ = ["SessionStateCache", "encode_items", "encode_users"]
