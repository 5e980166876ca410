"""Goodreads (UCSD book graph) loader: books + interactions -> `RecommendationData`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from pathlib import Path

from ._io import ItemTable, iter_records, parse_time, require_columns
from .impressions import Grouping, Interaction, build_impressions, rating_to_label
from .schema import DOMAIN_TEXT_FIELDS, DataFormatError, RecommendationData

__all__ = ["GENERIC_SHELVES", "load_goodreads"]

GENERIC_SHELVES = frozenset({"to-read", "currently-reading", "favorites"})
"""Shelves that say how a book is kept, not what it is about; never used as the genre."""


def _genre(shelves: list[dict] | None, excluded: Collection[str]) -> str:
    """The most-counted shelf not in `excluded` (first listed wins ties); "" when there is none."""
    best, best_count = "", -1
    for shelf in shelves or []:
        name = str(shelf.get("name", ""))
        count = int(shelf.get("count") or 0)  # UCSD stores counts as strings
        if name and name not in excluded and count > best_count:
            best, best_count = name, count
    return best


def _read_authors(path: str | Path) -> dict[str, str]:
    names = {}
    for number, record, source in iter_records(path):
        require_columns(record, ["author_id", "name"], source, number)
        names[str(record["author_id"])] = str(record["name"])
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
            rating = float(record["rating"])
            time = parse_time(record[column])
        except ValueError as error:
            raise DataFormatError(source, number, f"bad rating or {column}: {error}") from None
        label = rating_to_label(rating, stats)
        if label is not None:
            events.append(Interaction(str(record["user_id"]), str(record["book_id"]), time, label))

    rated = {event.item_id for event in events}
    authors = _read_authors(authors_path) if authors_path is not None else {}
    books = ItemTable(DOMAIN_TEXT_FIELDS["goodreads"], stats)
    for number, record, source in iter_records(books_path):
        require_columns(record, ["book_id", "title"], source, number)
        book_id = str(record["book_id"])
        if keep_all_books or book_id in rated:
            names = [authors.get(str(a.get("author_id")), "") for a in record.get("authors") or []]
            fields = {
                "title": record["title"],
                "author": ", ".join(name for name in names if name),
                "description": record.get("description") or "",
                "genre": _genre(record.get("popular_shelves"), excluded_shelves),
            }
            books.add(book_id, fields, source, number)

    known = [event for event in events if event.item_id in books]
    stats["unknown_interaction_item"] += len(events) - len(known)
    rows = build_impressions(known, grouping=grouping, window_size=window_size, max_history=max_history, stats=stats)
    items = books.to_dataset(None if keep_all_books else {event.item_id for event in known})
    return RecommendationData.from_rows(items, rows, "goodreads", split, stats)
