"""Offline embedding jobs: every item's CPE (+ score keys) and every user's UPE, into an [`EmbeddingStore`].

Both jobs are batched (entries sorted by token length inside each shard, to cut padding), resumable (a rerun skips
the shards already on disk with the same content key) and split across processes with Accelerate: rank `r` of `w`
encodes shards `i % w == r`; the main process writes the manifest once every rank is done. Launch several processes
with e.g. `torchrun --nproc_per_node 2` or `accelerate launch` (on CPU set `ACCELERATE_USE_CPU=1`).
"""

from __future__ import annotations

import logging
import os
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
) -> EmbeddingStore:
    """
    Encode every user's User Poly-Embedding into a store: `embeddings` `(n, K, d)` = `model.encode_user(...)
    .user_embeddings` (`h_sum` per `config.summary_mode`), rows in the order of `users`.

    Args:
        users: `(user_id, history)` pairs, the history being item dicts, most recent first (materialised to a list
            of each user's `config.max_history_items` most recent items, all the model reads).
        output_dir, dtype, shard_size: as in [`encode_items`]; users are sorted by session count and length.
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
        return [processor.pack_sessions(processor.tokenize_items(history)) for _, history in users[start:stop]]

    def padded_size(sessions: list[list[int]]) -> int:
        return len(sessions) * max(len(session) for session in sessions)

    def encode(sessions: list[list[list[int]]]) -> dict[str, torch.Tensor]:
        batch = processor.pad_users(sessions).to(model.device)
        return {"embeddings": model.encode_user(**batch).user_embeddings}  # (b, K, d)

    return _run_job(model, writer, prepare, padded_size, encode, batch_size, progress)


__all__ = ["encode_items", "encode_users"]
