"""MovieLens 100K loader (original `ml-100k` layout: u.data, u.item, u.genre) -> `RecommendationData`."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ._io import ItemTable, iter_fields, iter_lines, parse_time
from .impressions import Grouping, Interaction, build_impressions, rating_to_label
from .schema import DOMAIN_TEXT_FIELDS, DataFormatError, RecommendationData

if TYPE_CHECKING:  # the run's arguments, read by `read_split`
    from .arguments import DataArguments


__all__ = ["read_split", "load_movielens"]

_ENCODING = "iso-8859-1"  # the GroupLens files are Latin-1
_TITLE_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


def _read_genres(path: Path) -> list[str]:
    """u.genre lines `name|index` -> names in flag order."""
    genres: dict[int, str] = {}
    for number, line in iter_lines(path, encoding=_ENCODING):
        name, _, index = line.rpartition("|")
        if not name or not index.isdigit():
            raise DataFormatError(path, number, "expected 'genre|index'")
        genres[int(index)] = name
    if sorted(genres) != list(range(len(genres))):
        raise DataFormatError(path, None, f"genre indices {sorted(genres)} are not 0..{len(genres) - 1}")
    return [genres[index] for index in range(len(genres))]


def _read_movies(path: Path, genres: list[str], stats: Counter) -> ItemTable:
    """u.item lines `id|title|release date|video date|url|<one 0/1 flag per genre>`."""
    table = ItemTable(DOMAIN_TEXT_FIELDS["movielens"], stats)
    width = 5 + len(genres)
    for number, fields in iter_fields(path, width, separator="|", encoding=_ENCODING):
        if not fields[0]:
            raise DataFormatError(path, number, "empty movie id")
        flags = fields[5:]
        if any(flag not in ("0", "1") for flag in flags):
            raise DataFormatError(path, number, "genre flags must be 0 or 1")
        match = _TITLE_YEAR.search(fields[1])
        release = fields[2]  # e.g. 01-Jan-1995; the title's year wins because it is the film's own
        year = match.group(1) if match else (release[-4:] if release[-4:].isdigit() else "")
        table.add(
            fields[0],
            {
                "title": _TITLE_YEAR.sub("", fields[1]),
                "year": year,
                "genres": ", ".join(name for name, flag in zip(genres, flags) if flag == "1"),
            },
            path,
            number,
        )
    return table


def load_movielens(
    folder: str | Path,
    *,
    grouping: Grouping = "window",
    window_size: int = 10,
    max_history: int | None = None,
) -> RecommendationData:
    """Load MovieLens 100K from its original folder.

    Item fields: `title` without the trailing "(1995)", `year` (from the title, else the release date) and
    `genres` (flagged genre names from u.genre, joined by ", "). Ratings follow the Goodreads protocol (> 3
    positive, < 3 negative, 3 dropped and counted); each user's ratings are grouped chronologically into
    impressions (default: windows of 10 consecutive ratings, see `impressions.build_impressions`) whose history
    is the user's earlier positives, most recent first. Ratings of movies missing from u.item are dropped and
    counted (`unknown_interaction_item`). `items` holds every movie of u.item. Use `split_by_time` for
    train/dev/test; the split is named after the folder (e.g. "ml-100k").
    """
    folder = Path(folder)
    stats: Counter = Counter()
    movies = _read_movies(folder / "u.item", _read_genres(folder / "u.genre"), stats)

    ratings_path = folder / "u.data"
    events = []
    for number, fields in iter_fields(ratings_path, 4, desc="Reading u.data"):
        user_id, item_id, rating, timestamp = fields
        if not user_id.strip():
            raise DataFormatError(ratings_path, number, "empty user id (column 1)")
        try:
            label = rating_to_label(int(rating), stats)
            time = parse_time(int(timestamp))
        except ValueError:
            raise DataFormatError(ratings_path, number, f"bad rating {rating!r} or timestamp {timestamp!r}") from None
        if label is None:
            continue
        if item_id not in movies:
            stats["unknown_interaction_item"] += 1
            continue
        events.append(Interaction(user_id, item_id, time, label))

    rows = build_impressions(events, grouping=grouping, window_size=window_size, max_history=max_history, stats=stats)
    return RecommendationData.from_rows(movies.to_dataset(), rows, "movielens", folder.name, stats)


def read_split(args: DataArguments, path: str, split: str) -> RecommendationData:
    """`embsum train --dataset movielens`'s reading of its folder (`sources.SOURCES["movielens"]`)."""
    return load_movielens(path)
