"""Loader for data that already is impressions: one row per impression (user, history, candidates, labels) plus an
items table, used as given (no re-splitting)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets

from ._io import iter_records, parse_label, read_item_table, require_columns, scalar
from .impressions import clean_history
from .schema import UNLABELED, DataFormatError, RecommendationData

if TYPE_CHECKING:  # the run's arguments, read by `read_split`
    from .arguments import DataArguments


__all__ = ["read_split", "load_impressions"]


def _as_source(data: Any) -> str | Path | datasets.Dataset:
    """A file path, a `datasets.Dataset`, or a pandas DataFrame (converted)."""
    if isinstance(data, datasets.DatasetDict):
        raise ValueError(f"pass one split of the DatasetDict (one of {list(data)}), not the whole dict")
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        return datasets.Dataset.from_pandas(data, preserve_index=False)
    return data


def _ids(value: Any, column: str, source: str, number: int) -> list[str]:
    """A list of ids, or a whitespace-separated string of them (CSV)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    raise DataFormatError(source, number, f"{column!r} must be a list of ids or a space-separated string")


def load_impressions(
    items: str | Path | datasets.Dataset,
    impressions: str | Path | datasets.Dataset,
    *,
    id_column: str = "item_id",
    text_columns: Sequence[str] | None = None,
    user_column: str = "user_id",
    history_column: str = "history",
    candidates_column: str = "candidates",
    labels_column: str = "labels",
    time_column: str = "time",
    impression_column: str = "impression_id",
    split: str = "impressions",
    domain: str = "impressions",
) -> RecommendationData:
    """
    Read impressions as they are: one row per impression with `user_column`, `history_column` (item ids, most
    recent first), `candidates_column` and `labels_column` (1 click, 0 no click; a split without the labels column is
    unlabeled), optionally `time_column` and `impression_column` (default: `<split>-<row number>`). Files: JSON
    lines, CSV/TSV (lists as space-separated ids and labels) or parquet; or a `datasets.Dataset` or pandas DataFrame.
    The items table (`id_column` plus `text_columns`, default all other columns) is read as by `load_custom`.

    History items missing from the items table are dropped (counted `skipped_unknown_history_item`), as are the
    impression's own clicks (`history_leak_removed`); an unknown candidate, a label count that differs from the
    candidate count, or a repeated impression id is a `DataFormatError` naming the file and line.
    """
    stats: Counter = Counter()
    table = read_item_table(_as_source(items), id_column, text_columns, stats)
    rows: list[dict] = []
    seen: dict[str, str] = {}
    for number, record, source in iter_records(_as_source(impressions)):
        require_columns(record, [user_column, history_column, candidates_column], source, number)
        candidates = _ids(record[candidates_column], candidates_column, source, number)
        if not candidates:
            raise DataFormatError(source, number, "no candidates")
        unknown = [item for item in candidates if item not in table]
        if unknown:
            raise DataFormatError(source, number, f"candidates {unknown[:3]} are not in the items table")
        if labels_column in record and record[labels_column] is not None:
            raw = record[labels_column]
            raw = raw.split() if isinstance(raw, str) else raw
            labels = [parse_label(value, labels_column, source, number) for value in raw]
            if len(labels) != len(candidates):
                raise DataFormatError(source, number, f"{len(labels)} labels for {len(candidates)} candidates")
        else:
            labels = [UNLABELED] * len(candidates)
        history = []
        for item in _ids(record[history_column], history_column, source, number):
            if item in table:
                history.append(item)
            else:
                stats["skipped_unknown_history_item"] += 1
        clicked = {item for item, label in zip(candidates, labels) if label == 1}
        impression_id = str(record.get(impression_column) or f"{split}-{number}")
        if impression_id in seen:
            raise DataFormatError(source, number, f"impression id {impression_id!r} repeats {seen[impression_id]}")
        seen[impression_id] = f"{source}:{number}"
        rows.append(
            {
                "impression_id": impression_id,
                "user_id": scalar(record[user_column], user_column, source, number, required=True),
                "time": str(record.get(time_column) or ""),
                "history": clean_history(history, clicked, stats, None),
                "candidates": candidates,
                "labels": labels,
            }
        )
    if not rows:
        raise ValueError(f"{impressions}: no impressions")
    return RecommendationData.from_rows(table.to_dataset(), rows, domain, split, stats)


def read_split(args: DataArguments, path: str, split: str) -> RecommendationData:
    """`embsum train --dataset impressions`'s reading of one of the user's split files (`sources.SOURCES`)."""
    text_columns = args.text_columns.split(",") if args.text_columns else None
    return load_impressions(
        args.items_data,
        path,
        split=f"impressions:{split}",
        id_column=args.id_column,
        text_columns=text_columns,
        user_column=args.user_column,
    )
