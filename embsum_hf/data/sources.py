"""The data sources: what each one is, in one place.

Every table that depends on the source (the items' text columns, the processor's item template, the teacher prompt's
wording, the paper's negatives per click, what `--items_data` names, the loader) reads this registry. The item
templates themselves live in the Hub-facing `processing_embsum.ITEM_TEMPLATES`; a source names its template.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataSource:
    """
    One data source (`RecommendationData.domain`, `embsum train --dataset`).

    Attributes:
        name: the source's name.
        loader: the `embsum_hf.data` function that reads it.
        text_fields: the items table's text columns (empty: whatever columns the user's table has).
        item_template: the name of its template in `processing_embsum.ITEM_TEMPLATES` (None: one built from the item
            columns, `Field: {field}; ...`).
        prompt_domain: the teacher prompt's wording (`teacher.prompts.DOMAINS`).
        paper_negatives: non-clicked items per click in EmbSum's training on it (None: no paper setting).
        items_file: what `--items_data` names for it (None: the source needs no items file).
        split_by_time: True when one file is split by time into train/dev/test (False: the source's own splits).
    """

    name: str
    loader: str
    text_fields: tuple[str, ...] = ()
    item_template: str | None = None
    prompt_domain: str = "custom"
    paper_negatives: int | None = None
    items_file: str | None = None
    split_by_time: bool = True


SOURCES: dict[str, DataSource] = {
    source.name: source
    for source in (
        DataSource(
            "mind",
            "load_mind",
            text_fields=("title", "abstract", "category", "subcategory"),
            item_template="mind",
            prompt_domain="news",
            paper_negatives=4,
            split_by_time=False,
        ),
        DataSource(
            "goodreads",
            "load_goodreads",
            text_fields=("title", "author", "description", "genre"),
            item_template="goodreads",
            prompt_domain="books",
            paper_negatives=2,
            items_file="books JSON lines",
        ),
        DataSource(
            "movielens",
            "load_movielens",
            text_fields=("title", "year", "genres"),
            item_template="movielens",
            prompt_domain="movies",
        ),
        DataSource("custom", "load_custom", items_file="items table"),
        # your own impressions, already split: --train_data / --eval_data / --test_data are used as given
        DataSource("impressions", "load_impressions", items_file="items table", split_by_time=False),
    )
}


def get_source(name: str) -> DataSource:
    """The registered source `name`; an unknown name raises `ValueError` listing the known ones."""
    if name not in SOURCES:
        raise ValueError(f"dataset must be one of {tuple(SOURCES)}, got {name!r}")
    return SOURCES[name]


__all__ = ["SOURCES", "DataSource", "get_source"]
