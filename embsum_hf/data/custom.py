"""Loader for your own data: an items table and an engagement log, as files or `datasets.Dataset`s."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import datasets

from ._io import iter_records, parse_label, parse_time, read_item_table, require_columns, scalar
from .impressions import Grouping, Interaction, build_impressions
from .schema import DOMAIN_TEXT_FIELDS, UNLABELED, DataFormatError, RecommendationData

if TYPE_CHECKING:  # the run's arguments, read by `read_split`
    from .arguments import DataArguments


__all__ = ["read_split", "load_custom"]


def load_custom(
    items: str | Path | datasets.Dataset,
    logs: str | Path | datasets.Dataset,
    *,
    id_column: str = "item_id",
    text_columns: Sequence[str] | None = None,
    user_column: str = "user_id",
    item_column: str = "item_id",
    label_column: str | None = "label",
    impression_column: str | None = None,
    time_column: str = "timestamp",
    domain: str = "custom",
    grouping: Grouping | None = None,
    window_size: int = 10,
    max_history: int | None = None,
    split: str = "custom",
) -> RecommendationData:
    """Load an items table and an engagement log.

    Args:
        items: CSV/TSV/JSON-lines/parquet path or a `datasets.Dataset` with an id column and text columns.
        logs: same formats; one row per (user, item) exposure with a label and a time.
        id_column: the items' id column.
        text_columns: the item text columns to keep; default: the domain's fields for "mind", "goodreads" and
            "movielens", else every items column except the id.
        user_column, item_column, time_column: log columns. Times may be unix seconds/milliseconds or ISO-8601.
        label_column: 0/1 (or true/false) click labels; None for an unlabeled log (all labels -1).
        impression_column: rows sharing this id form one impression (all of one user).
        domain: recorded in the result; picks the item template downstream.
        grouping: how rows become impressions without an impression column: "time" (default: rows of a user
            with the same timestamp), "day" or "window" (`window_size` consecutive rows). See
            `impressions.build_impressions`.
        max_history: keep only the most recent history items (None keeps all).
        split: the name recorded in `RecommendationData.split`.

    History = the user's positives strictly before the impression, most recent first. Rows naming unknown items
    are dropped and counted (`unknown_interaction_item`); a missing column raises `DataFormatError` naming the
    column, the file and the line.
    """
    if grouping is None:
        grouping = "impression" if impression_column else "time"
    if (grouping == "impression") != (impression_column is not None):
        raise ValueError("grouping='impression' goes with impression_column, and impression_column with it only")
    stats: Counter = Counter()
    if text_columns is None and domain in DOMAIN_TEXT_FIELDS:
        text_columns = DOMAIN_TEXT_FIELDS[domain]
    table = read_item_table(items, id_column, text_columns, stats)

    required = [user_column, item_column, time_column]
    required += [column for column in (label_column, impression_column) if column is not None]
    owners: dict[str, tuple[str, str]] = {}  # impression id -> (user, where first seen)
    events = []
    for number, record, source in iter_records(logs):
        require_columns(record, required, source, number)
        user_id = scalar(record[user_column], user_column, source, number, required=True)
        item_id = scalar(record[item_column], item_column, source, number, required=True)
        try:
            time = parse_time(record[time_column])
        except ValueError as error:
            raise DataFormatError(source, number, f"column {time_column!r}: {error}") from None
        label = UNLABELED if label_column is None else parse_label(record[label_column], label_column, source, number)
        impression_id = None
        if impression_column is not None:
            impression_id = scalar(record[impression_column], impression_column, source, number, required=True)
            owner, where = owners.setdefault(impression_id, (user_id, f"{source}:{number}"))
            if owner != user_id:
                raise DataFormatError(
                    source, number, f"impression {impression_id!r} belongs to user {owner!r} ({where})"
                )
        if item_id not in table:
            stats["unknown_interaction_item"] += 1
            continue
        events.append(Interaction(user_id, item_id, time, label, impression_id))

    rows = build_impressions(events, grouping=grouping, window_size=window_size, max_history=max_history, stats=stats)
    return RecommendationData.from_rows(table.to_dataset(), rows, domain, split, stats)


def read_split(args: DataArguments, path: str, split: str) -> RecommendationData:
    """`embsum train --dataset custom`'s reading of the interactions file (`sources.SOURCES["custom"]`)."""
    return load_custom(
        args.items_data,
        path,
        id_column=args.id_column,
        text_columns=args.text_columns.split(",") if args.text_columns else None,
        user_column=args.user_column,
        item_column=args.item_column,
        label_column=args.label_column or None,
        time_column=args.time_column,
        impression_column=args.impression_column,
    )
