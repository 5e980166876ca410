"""Goodreads (UCSD book graph) loader: books + interactions -> `RecommendationData`."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from ._io import ItemTable, iter_records, parse_time, require_columns, scalar
from .impressions import Grouping, Interaction, build_impressions, rating_to_label
from .schema import DOMAIN_TEXT_FIELDS, DataFormatError, RecommendationData

if TYPE_CHECKING:  # the run's arguments, read by `read_split`
    from .arguments import DataArguments


__all__ = ["read_split", "GENERIC_SHELVES", "load_goodreads"]

GENERIC_SHELVES = frozenset({"to-read", "currently-reading", "favorites"})
"""Shelves that say how a book is kept, not what it is about; never used as the genre."""


def _objects(record: dict, column: str, source: str, number: int) -> list[dict]:
    """`record[column]` as a list of JSON objects (null or absent: none); any other shape is refused, naming it."""
    value = record.get(column)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise DataFormatError(source, number, f"{column!r} must be an array of objects, got {_json_kind(value)}")
    return value


def _json_kind(value) -> str:
    if isinstance(value, list):
        return "an array of " + ", ".join(sorted({type(entry).__name__ for entry in value})) if value else "[]"
    return type(value).__name__


def _genre(shelves: list[dict], excluded: Collection[str], source: str, number: int) -> str:
    """The most-counted shelf not in `excluded` (first listed wins ties); "" when there is none."""
    best, best_count = "", -1
    for shelf in shelves:
        name = scalar(shelf.get("name"), "popular_shelves.name", source, number)
        count = scalar(shelf.get("count"), "popular_shelves.count", source, number) or "0"  # UCSD: counts as strings
        if not count.isdigit():
            raise DataFormatError(source, number, f"'popular_shelves' count {count!r} is not a whole number")
        if name and name not in excluded and int(count) > best_count:
            best, best_count = name, int(count)
    return best


def _read_authors(path: str | Path) -> dict[str, str]:
    names = {}
    for number, record, source in iter_records(path):
        require_columns(record, ["author_id", "name"], source, number)
        names[scalar(record["author_id"], "author_id", source, number, required=True)] = scalar(
            record["name"], "name", source, number
        )
    return names


def load_goodreads(
    books_path: str | Path,
    interactions_path: str | Path,
    *,
    authors_path: str | Path | None = None,
    grouping: Grouping = "window",
    window_size: int = 10,
    max_history: int | None = None,
    time_field: str | None = None,
    excluded_shelves: Collection[str] = GENERIC_SHELVES,
    keep_all_books: bool = False,
    split: str = "goodreads",
) -> RecommendationData:
    """Load Goodreads books and a user-book interaction log.

    Args:
        books_path: JSON lines (optionally .gz) with `book_id`, `title`, `authors` ([{"author_id": ...}]),
            `description` and `popular_shelves` ([{"name", "count"}]), as in `goodreads_books*.json.gz`.
        interactions_path: JSON lines or CSV (optionally .gz) with `user_id`, `book_id`, `rating` and a time
            column, with the same book ids as `books_path`.
        authors_path: optional JSON lines/CSV with `author_id`, `name`; without it the `author` field is "".
        grouping, window_size: how a user's chronological ratings become impressions (see
            `impressions.build_impressions`); default: windows of 10 consecutive ratings.
        max_history: keep only the most recent history items (None keeps all).
        time_field: the time column; default `date_added` when present, else `timestamp`.
        excluded_shelves: shelves never used as the genre (default `GENERIC_SHELVES`).
        keep_all_books: keep every book in `items`; by default only books with a kept (non-dropped) rating.
        split: the name recorded in `RecommendationData.split`.

    Item fields: `title`, `author` (author names joined by ", "), `description`, `genre` (the book's
    most-counted shelf outside `excluded_shelves`). Ratings follow the protocol > 3 positive, < 3 negative,
    3 and 0 (shelved, unrated) dropped and counted. History = the user's positives strictly before the
    impression, most recent first. Interactions with books missing from `books_path` are dropped and counted
    (`unknown_interaction_item`).
    """
    stats: Counter = Counter()
    events = []
    for number, record, source in iter_records(interactions_path):
        require_columns(record, ["user_id", "book_id", "rating"], source, number)
        column = time_field or ("date_added" if "date_added" in record else "timestamp")
        require_columns(record, [column], source, number)
        try:
            rating = float(scalar(record["rating"], "rating", source, number, required=True))
        except ValueError:
            rating = math.nan
        if not math.isfinite(rating):  # "nan" would otherwise compare as a negative label
            raise DataFormatError(source, number, f"'rating' must be a number, got {record['rating']!r}")
        try:
            time = parse_time(record[column])
        except ValueError as error:
            raise DataFormatError(source, number, f"bad {column!r}: {error}") from None
        user_id = scalar(record["user_id"], "user_id", source, number, required=True)
        book_id = scalar(record["book_id"], "book_id", source, number, required=True)
        try:
            label = rating_to_label(rating, stats)
        except ValueError as error:
            raise DataFormatError(source, number, f"'rating': {error}") from None
        if label is not None:
            events.append(Interaction(user_id, book_id, time, label))

    rated = {event.item_id for event in events}
    authors = _read_authors(authors_path) if authors_path is not None else {}
    books = ItemTable(DOMAIN_TEXT_FIELDS["goodreads"], stats)
    number = 0
    for number, record, source in iter_records(books_path):
        require_columns(record, ["book_id", "title"], source, number)
        book_id = scalar(record["book_id"], "book_id", source, number, required=True)
        if keep_all_books or book_id in rated:
            author_ids = [
                scalar(a.get("author_id"), "authors.author_id", source, number)
                for a in _objects(record, "authors", source, number)
            ]
            names = [authors.get(author_id, "") for author_id in author_ids]
            fields = {
                "title": record["title"],
                "author": ", ".join(name for name in names if name),
                "description": record.get("description"),
                "genre": _genre(_objects(record, "popular_shelves", source, number), excluded_shelves, source, number),
            }
            books.add(book_id, fields, source, number)

    if number == 0:  # else every interaction would be dropped as unknown and the interactions file blamed
        raise DataFormatError(books_path, None, "no books: the file holds no records")
    known = [event for event in events if event.item_id in books]
    stats["unknown_interaction_item"] += len(events) - len(known)
    rows = build_impressions(known, grouping=grouping, window_size=window_size, max_history=max_history, stats=stats)
    items = books.to_dataset(None if keep_all_books else {event.item_id for event in known})
    return RecommendationData.from_rows(items, rows, "goodreads", split, stats)


def read_split(args: DataArguments, path: str, split: str) -> RecommendationData:
    """`embsum train --dataset goodreads`'s reading of its interactions file (`sources.SOURCES["goodreads"]`)."""
    return load_goodreads(args.items_data, path, authors_path=args.authors_data)
