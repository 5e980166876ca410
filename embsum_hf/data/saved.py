"""What every `embsum` command's `--data` reads: a split saved by `RecommendationData.save_to_disk` (any source:
Goodreads, MovieLens, your own logs), or MIND."""

from __future__ import annotations

from pathlib import Path

from .mind import load_mind, names_split
from .schema import SAVED_DATA_NAME, RecommendationData


def load_data(
    path: str | Path,
    split: str | None = None,
    *,
    cache_dir: str | Path | None = None,
    strict_candidates: bool = False,
) -> RecommendationData:
    """
    A folder written by `RecommendationData.save_to_disk` (or its subfolder `split`, as `embsum train --save_splits`
    writes them); otherwise MIND through `load_mind` (a folder, or an official split name downloaded once).
    `strict_candidates`: refuse, rather than drop and count, candidates whose item is unknown (for a saved split:
    one whose loader dropped any, `stats["unknown_candidate_item"]`).
    """
    folder = Path(path)
    for candidate in ([folder / split] if split else []) + [folder]:
        if (candidate / SAVED_DATA_NAME).is_file():
            if candidate == folder and split and not names_split(folder, split):
                raise FileNotFoundError(
                    f"{folder}: split {split!r} not found (the folder holds one saved split and has no {split}/ "
                    "subfolder); leave --split out or name one of its subfolders"
                )
            data = RecommendationData.load_from_disk(candidate)
            dropped = data.stats.get("unknown_candidate_item", 0)
            if strict_candidates and dropped:
                raise ValueError(
                    f"{candidate}: its loader dropped {dropped} candidates with unknown items (unknown_candidate_item)"
                )
            return data
    return load_mind(path, split, cache_dir=cache_dir, strict_candidates=strict_candidates)
