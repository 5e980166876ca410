"""The one in-memory format every loader returns: an items table plus an impressions table."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow.compute as pc

from ..utils import atomic_write_text, cyclic_gc_paused
from .sources import SOURCES

logger = logging.getLogger(__name__)

# Text columns of the items table per known source (see `sources.SOURCES`); the processor formats them with the
# source's template.
DOMAIN_TEXT_FIELDS: dict[str, tuple[str, ...]] = {name: s.text_fields for name, s in SOURCES.items() if s.text_fields}

SAVED_DATA_NAME = "recommendation_data.json"  # marks a folder written by RecommendationData.save_to_disk

UNLABELED = -1
"""Label of every candidate of an unlabeled split (e.g. MIND-large test)."""

IMPRESSION_FEATURES = datasets.Features(
    {
        "impression_id": datasets.Value("string"),
        "user_id": datasets.Value("string"),
        "time": datasets.Value("string"),
        "history": datasets.List(datasets.Value("string")),
        "candidates": datasets.List(datasets.Value("string")),
        "labels": datasets.List(datasets.Value("int8")),
    }
)


class DataFormatError(ValueError):
    """A malformed input record; the message starts with `path:line` so the user can open the exact spot."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        location = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{location}: {message}")


def items_dataset(columns: dict[str, list[str]]) -> datasets.Dataset:
    """Build the items table from column lists (`item_id` first, every column a string)."""
    features = datasets.Features({name: datasets.Value("string") for name in columns})
    return datasets.Dataset.from_dict(columns, features=features)


IMPRESSION_CHUNK_ROWS = 50_000  # rows turned into Arrow at a time: a loader's Python objects stay one chunk's worth


def impressions_dataset(rows: Iterable[dict]) -> datasets.Dataset:
    """Build the impressions table from row dicts with the keys of `IMPRESSION_FEATURES` (a list or a stream): an
    in-memory Arrow table, built `IMPRESSION_CHUNK_ROWS` rows at a time."""
    chunks, batch = [], []
    # the rows are acyclic (dicts of strings and lists), freed by reference counting: the cyclic collector would only
    # re-scan every live object (the items table, the batch) again and again, a cost that grows faster than the data
    # (MIND-format 1/16 -> 1/8 of MINDlarge: 3.5 -> 8.5 of 28 -> 57 CPU-s)
    with cyclic_gc_paused():
        for row in rows:
            batch.append(row)
            if len(batch) >= IMPRESSION_CHUNK_ROWS:
                chunks.append(_impressions_chunk(batch))
                batch = []
        if batch or not chunks:
            chunks.append(_impressions_chunk(batch))
    return datasets.concatenate_datasets(chunks) if len(chunks) > 1 else chunks[0]


def _impressions_chunk(rows: list[dict]) -> datasets.Dataset:
    columns = {name: [row[name] for row in rows] for name in IMPRESSION_FEATURES}
    return datasets.Dataset.from_dict(columns, features=IMPRESSION_FEATURES)


@dataclass
class RecommendationData:
    """Items and impressions of one split of one source.

    Attributes:
        items: column `item_id` (unique strings) plus the domain's text columns (strings).
        impressions: columns `impression_id`, `user_id`, `time` (ISO-8601, "" when the source has no time),
            `history` (item ids, most recent first, only ids present in `items`, never a clicked candidate of the
            same impression), `candidates` and `labels` (1 click, 0 no click, -1 for every candidate of an
            unlabeled split).
        domain: "mind", "goodreads", "movielens" or "custom"; picks the item text template downstream.
        split: human-readable name of the split, reported with every number (e.g. "MINDsmall_dev:test(90%)").
        stats: counts of what the loader skipped, dropped or noticed (e.g. `{"skipped_unknown_item": 3}`).
    """

    items: datasets.Dataset
    impressions: datasets.Dataset
    domain: str
    split: str
    stats: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_rows(
        cls, items: datasets.Dataset, rows: Iterable[dict], domain: str, split: str, stats: Mapping[str, int]
    ) -> RecommendationData:
        """Assemble a loader's result from impression row dicts (a list, or a stream that may still add to
        `stats` while it is read); zero counts are dropped and the rest logged."""
        impressions = impressions_dataset(rows)
        data = cls(items, impressions, domain, split, {key: int(n) for key, n in stats.items() if n})
        logger.info(
            "Loaded %s (%s): %d items, %d impressions; %s", split, domain, len(items), len(impressions), data.stats
        )
        return data

    def save_to_disk(self, path: str | Path) -> Path:
        """Write both tables (Arrow) and the metadata to `path`, metadata last: a folder with `SAVED_DATA_NAME` is
        complete. Any `embsum` command reads it back through `--data` (see `load_data`)."""
        path = Path(path)
        self.items.save_to_disk(str(path / "items"))
        self.impressions.save_to_disk(str(path / "impressions"))
        meta = {"domain": self.domain, "split": self.split, "stats": self.stats}
        atomic_write_text(path / SAVED_DATA_NAME, json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load_from_disk(cls, path: str | Path) -> RecommendationData:
        """A split written by `save_to_disk` (memory-mapped, not copied)."""
        path = Path(path)
        meta_path = path / SAVED_DATA_NAME
        if not meta_path.is_file():
            raise FileNotFoundError(f"{path} holds no saved RecommendationData (no {SAVED_DATA_NAME})")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as error:
            raise DataFormatError(meta_path, None, f"not valid JSON ({error})") from None
        if not isinstance(meta, dict):
            raise DataFormatError(meta_path, None, f"expected a JSON object, got {type(meta).__name__}")
        for key in ("domain", "split"):
            if not isinstance(meta.get(key), str):
                raise DataFormatError(meta_path, None, f"{key!r} must be a string, got {meta.get(key)!r}")
        stats = meta.get("stats", {})
        if not isinstance(stats, dict) or not all(isinstance(n, int) for n in stats.values()):
            raise DataFormatError(meta_path, None, "'stats' must map reasons to counts")
        tables = []
        for name in ("items", "impressions"):
            try:
                tables.append(datasets.load_from_disk(str(path / name)))
            except Exception as error:  # pyarrow and datasets raise many types for a missing or damaged table
                raise DataFormatError(path / name, None, f"unreadable saved table ({type(error).__name__}: {error})")
        return cls(*tables, meta["domain"], meta["split"], stats)

    @property
    def text_fields(self) -> list[str]:
        """The item text columns (every items column except `item_id`)."""
        return [name for name in self.items.column_names if name != "item_id"]

    def item_lookup(self) -> dict[str, dict[str, str]]:
        """Map item_id -> {text field: value}, for prompt building and serving."""
        return {row.pop("item_id"): row for row in self.items.to_list()}

    # counts of `stats` that are input dropped -> what they are counted against (see `drop_report`)
    _DROPS = {
        "unknown_history_item": "history",
        "unknown_candidate_item": "candidates",
        "duplicate_history_item": "history",
        "skipped_no_candidates": "impressions",
        "skipped_no_negative": "impressions",
        "impression_without_click": "impressions",
        "unknown_interaction_item": "candidates",
        "dropped_unrated": "candidates",
        "dropped_neutral_rating": "candidates",
        "duplicate_interaction_dropped": "candidates",
    }

    def drop_report(self) -> tuple[str, str | None]:
        """
        What the loader dropped or noticed, for a command to print: a line with the counts by reason (`stats`), and
        a warning (None if not needed) when most of some input was dropped, e.g. most history ids unknown.
        """
        counts = ", ".join(f"{key}: {n}" for key, n in sorted(self.stats.items())) or "nothing"
        line = f"{self.split}: {len(self.impressions)} impressions, {len(self.items)} items; loader counts: {counts}"
        kept = {"impressions": len(self.impressions)}
        if self.stats and len(self.impressions):
            table = self.impressions.with_format("arrow")
            for column in ("history", "candidates"):
                kept[column] = pc.sum(pc.list_value_length(table[column])).as_py() or 0
        majority = [
            f"{key} {n} vs {kept.get(self._DROPS[key], 0)} kept {self._DROPS[key]}"
            for key, n in sorted(self.stats.items())
            if key in self._DROPS and n > kept.get(self._DROPS[key], 0)
        ]
        warning = f"most of the input of {self.split} was dropped ({'; '.join(majority)})" if majority else None
        return line, warning

    def require_impressions(self, source: str | Path) -> RecommendationData:
        """Refuse a split with no impressions, naming `source` and what the loader dropped (`stats`)."""
        if len(self.impressions) == 0:
            counts = ", ".join(f"{key}: {n}" for key, n in sorted(self.stats.items())) or "the input holds none"
            raise ValueError(f"{source}: no impressions left after loading {self.split} ({counts})")
        return self

    def validate(self) -> RecommendationData:
        """Check the invariants every consumer relies on; raise `ValueError` listing the first violations.

        Checked: unique item and impression ids, the expected columns, non-empty candidates with one label each,
        labels in {0, 1} or all -1, every history/candidate id present in `items`, and no clicked candidate in its
        own impression's history (leakage). Returns `self` so calls can be chained.
        """
        problems: list[str] = []
        if "item_id" not in self.items.column_names:
            problems.append("items table has no 'item_id' column")
        expected = DOMAIN_TEXT_FIELDS.get(self.domain, ())
        missing = [name for name in expected if name not in self.items.column_names]
        if missing:
            problems.append(f"items table lacks the {self.domain} text columns {missing}")
        if set(self.impressions.column_names) != set(IMPRESSION_FEATURES):
            problems.append(
                f"impressions columns {sorted(self.impressions.column_names)} != {sorted(IMPRESSION_FEATURES)}"
            )
        if problems:
            raise ValueError(f"Invalid RecommendationData ({self.split}): " + "; ".join(problems))

        item_ids = list(self.items["item_id"])
        known = set(item_ids)
        if len(known) != len(item_ids):
            problems.append(f"{len(item_ids) - len(known)} duplicate item ids")
        counts = Counter(self.impressions["impression_id"])
        repeated = [(imp, n) for imp, n in counts.items() if n > 1]  # each reported once, with its count
        problems += [f"duplicate impression id {imp!r} ({n} impressions)" for imp, n in repeated[:5]]
        if len(repeated) > 5:
            problems.append(f"{len(repeated) - 5} more duplicate impression ids")
        for row in self.impressions:
            if len(problems) >= 10:
                break
            imp = row["impression_id"]
            candidates, labels, history = row["candidates"], row["labels"], row["history"]
            if not candidates:
                problems.append(f"impression {imp!r} has no candidates")
            if len(labels) != len(candidates):
                problems.append(f"impression {imp!r} has {len(candidates)} candidates but {len(labels)} labels")
            if not (set(labels) <= {0, 1} or set(labels) == {UNLABELED}):
                problems.append(f"impression {imp!r} has labels {sorted(set(labels))}, expected 0/1 or all -1")
            unknown = [i for i in history + candidates if i not in known]
            if unknown:
                problems.append(f"impression {imp!r} references unknown items {unknown[:3]}")
            leaked = {c for c, y in zip(candidates, labels) if y == 1} & set(history)
            if leaked:
                problems.append(f"impression {imp!r} has its own clicks {sorted(leaked)[:3]} in its history")
        if problems:
            raise ValueError(f"Invalid RecommendationData ({self.split}): " + "; ".join(problems))
        return self
