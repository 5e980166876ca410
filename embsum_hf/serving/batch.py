"""The offline batch job behind `embsum recommend`: every user of a user store ranked against an item store, the
top-k lists written as JSON Lines, one part file per user shard.

The job streams the user store one shard at a time (memory: one user shard plus the item store), writes each part
atomically, and on a rerun keeps the parts computed with the same stores and settings, so a killed run resumes.
Parts are shared out across processes (`accelerate launch` / `torchrun`) like the encoding jobs. Read the output
with `datasets.load_dataset("json", data_files="recs/part-*.jsonl")`.

Layout of the output folder::

    recommendations.json        manifest: stores, k, prefilter and exclusion, parts, complete
    .embsum.lock                held (filelock) by the job writing the folder; holds its pid
    part-00000.jsonl            {"user_id": ..., "item_ids": [...], "scores": [...]} per user of user shard 0
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Collection, Mapping
from pathlib import Path

from accelerate.utils import gather_object

from ..utils import atomic_write_text, job_folder_lock, job_state, tqdm
from .ranking import FaissPrefilter, check_stores, recommend
from .store import EmbeddingStore

logger = logging.getLogger(__name__)

RESULTS_MANIFEST = "recommendations.json"


def part_name(index: int) -> str:
    return f"part-{index:05d}.jsonl"


def recommend_all(
    users: EmbeddingStore,
    items: EmbeddingStore,
    output_dir: str | os.PathLike,
    k: int = 10,
    *,
    prefilter: FaissPrefilter | None = None,
    exclude: Mapping[str, Collection[str]] | None = None,
    progress: bool = True,
) -> Path:
    """
    Rank every user of `users` against `items` (exact `poly_relevance`, or `prefilter` candidates re-ranked
    exactly) and write the `k` best items per user to `output_dir` (see the module docstring). `exclude` maps a
    user id to item ids never to recommend to them (e.g. their history, from `embsum_hf.data.user_histories`).
    Returns the folder.

    A rerun reuses the parts of an earlier run with the same store contents (`EmbeddingStore.content_digest`), `k`
    prefilter and exclusion settings, and computes the rest; parts computed from anything else are deleted first.
    The main process holds the folder's lock (`embsum_hf.utils.folder_lock`) for the whole job: a second job on the
    same folder fails at once with `FolderInUseError` instead of mixing its parts with this one's.
    """
    check_stores(users, items)
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    output = Path(output_dir)
    inputs = {  # what the parts are computed from; a rerun reuses parts only when all of it is unchanged
        "user_store": users.content_digest(),
        "item_store": items.content_digest(),
        "k": k,
        "prefilter": None if prefilter is None else {"faiss_ivf": prefilter.settings},
        "exclude": None if exclude is None else _exclusion_digest(exclude),
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    manifest = {
        "users": str(users.path),
        "items": str(items.path),
        **inputs,
        "key": key,
        "num_parts": users.num_shards,
        "parts": [],
        "complete": False,
    }
    state = job_state()
    with job_folder_lock(output):  # one job per output folder: a second one fails at once ("folder in use by pid N")
        if state.is_main_process:
            _clean(output, key)
            atomic_write_text(output / RESULTS_MANIFEST, json.dumps(manifest, indent=2) + "\n")
        state.wait_for_everyone()
        lengths = _rank_parts(users, items, output, k, prefilter, exclude, progress, state)
        if state.num_processes > 1:  # every rank's parts: (fewest, most) items of a user in each
            lengths = gather_object([lengths])
        if state.is_main_process:
            missing = [part_name(i) for i in range(users.num_shards) if not (output / part_name(i)).is_file()]
            if missing:
                raise RuntimeError(f"{output}: parts {missing[:5]} are missing; did a process fail?")
            counts = [count for rank in lengths for count in rank] if state.num_processes > 1 else lengths
            # what was written, which a small catalogue, exclusions or a prefilter can make fewer than k
            written = {"min": min(counts), "max": max(counts)} if counts else {"min": 0, "max": 0}
            manifest.update(
                parts=[part_name(i) for i in range(users.num_shards)], items_per_user=written, complete=True
            )
            atomic_write_text(output / RESULTS_MANIFEST, json.dumps(manifest, indent=2) + "\n")
        state.wait_for_everyone()
    return output


def _clean(output: Path, key: str) -> None:
    """Main process, holding the folder's lock: drop what no run of this job may reuse. The job key covers every
    setting that changes a part (both stores' contents, k, prefilter, exclusion): parts of another key are deleted,
    never mixed with this run's under one manifest; temporary files of killed runs are deleted too."""
    if _read_key(output) != key:
        for stale in output.glob("part-*.jsonl"):  # computed from other stores or settings
            stale.unlink()
    for leftover in output.glob(".*.tmp"):  # `atomic_write_text` temporaries of a killed run
        leftover.unlink()


def _rank_parts(users, items, output, k, prefilter, exclude, progress, state) -> list[int]:
    """This process's share of the parts: rank each user shard whose part is not on disk yet. Returns the fewest and
    the most items a user got in each of its parts (read back from a reused part)."""
    mine = range(state.process_index, users.num_shards, state.num_processes)
    done = reused = 0
    lengths: list[int] = []
    with tqdm(
        total=sum(len(range(*users.shard_range(index))) for index in mine),
        desc="Ranking users",
        unit="user",
        disable=not (progress and state.is_local_main_process),
    ) as bar:
        for index in mine:
            path = output / part_name(index)
            start, stop = users.shard_range(index)
            if path.is_file():  # parts are written atomically: one on disk is complete
                reused += 1
                counts = [len(json.loads(line)["item_ids"]) for line in path.read_text().splitlines()]
            else:
                banned = None if exclude is None else [exclude.get(user_id, ()) for user_id in users.ids[start:stop]]
                top = recommend(users.shard(index), items, k, prefilter=prefilter, exclude=banned)
                lines, counts = [], []
                for user_id, scores, item_ids in zip(users.ids[start:stop], top.scores.tolist(), top.item_ids):
                    kept = [p for p, item in enumerate(item_ids) if item is not None]  # None: no item left
                    record = {"item_ids": [item_ids[p] for p in kept], "scores": [scores[p] for p in kept]}
                    lines.append(json.dumps({"user_id": user_id, **record}) + "\n")
                    counts.append(len(kept))
                atomic_write_text(path, "".join(lines))
                done += 1
            lengths += [min(counts), max(counts)] if counts else []
            bar.update(stop - start)
    logger.info("rank %d: %d parts ranked, %d reused", state.process_index, done, reused)
    return lengths


def _exclusion_digest(exclude: Mapping[str, Collection[str]]) -> str:
    digest = hashlib.sha256()
    for user_id in sorted(exclude):
        digest.update(json.dumps([user_id, sorted(exclude[user_id])]).encode())
    return digest.hexdigest()


def _read_key(output: Path) -> str | None:
    try:
        return json.loads((output / RESULTS_MANIFEST).read_text()).get("key")
    except (OSError, ValueError):  # no manifest, or a foreign/damaged one: nothing in the folder is trusted
        return None


__all__ = ["RESULTS_MANIFEST", "part_name", "recommend_all"]
