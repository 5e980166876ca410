"""The data sources: what each one is, in one place.

A source is one [`DataSource`] entry of `SOURCES`, and every table that depends on the source reads it: how a run's
files are read (`read`, over the loader of its module), which of `--train_data` / `--eval_data` / `--test_data` it
takes, the items' text columns, the processor's item template, the teacher prompt's wording, the paper's negatives per
click, what `--items_data` names, and the data's license terms and citation for the model card. The item templates
themselves live in the Hub-facing `processing_embsum.ITEM_TEMPLATES` (a saved processor needs them without this
package); a source names its template.

Adding a source: a loader module (`embsum_hf/data/<name>.py`: its loader, returning a `RecommendationData`, and a
`read_split(args, path, split)` that calls it with the run's arguments), its entry here (`read="<name>:read_split"`),
and, if its items want one, a template in `ITEM_TEMPLATES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DomainWording:
    """How the teacher prompt talks about one domain's items, and which item fields it shows.

    `domain` names the wording (`embsum summarize --domain news`). `fields` maps a display label to the item keys tried
    in order (the first non-empty one is shown); labels in `long_fields` are cut at `teacher.prompts.MAX_TEXT_WORDS`
    words. `category_keys` are the fields the heuristic backend counts.
    """

    domain: str
    item: str
    items: str
    activity: str
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    long_fields: frozenset[str] = frozenset({"Abstract", "Description"})
    category_keys: tuple[str, ...] = ("category", "genre", "genres")


# the wording of items of any kind (a source's default)
CUSTOM_WORDING = DomainWording(
    "custom",
    item="item",
    items="items",
    activity="engaged with",
    fields=(
        ("Title", ("title", "name")),
        ("Description", ("description", "abstract", "text")),
        ("Category", ("category", "genre", "genres")),
    ),
)


@dataclass(frozen=True)
class DataTerms:
    """The license of a data set: a model trained on it inherits its terms (the card's metadata and body).

    Attributes:
        license: the Hub license id (`"other"`: named by `license_name`, to be read at `license_link`).
        license_name, license_link: for `license="other"`.
        terms: one sentence about them for the card's body.
    """

    license: str
    license_name: str | None = None
    license_link: str | None = None
    terms: str | None = None


@dataclass(frozen=True)
class DataSource:
    """
    One data source (`RecommendationData.domain`, `embsum train --dataset`).

    Attributes:
        name: the source's name.
        read: `read(args, path, split)`: the `RecommendationData` of one of the run's files (`args` the
            [`DataArguments`], `path` the file or folder a split flag names, `split` `"train"`, `"dev"` or `"test"`);
            or its name, `"<module>:<function>"` in `embsum_hf.data`, imported when the source is read (the loaders
            import the schema, which reads this registry: naming them keeps the imports one-way).
        splits: the splits the run's flags give (`--train_data`, `--eval_data`, `--test_data`); `("train",)`: one file,
            split by time into train / dev / test (each user's last impression to test, the one before to dev).
        paper_split: its dev split may be split by impression into the paper's 10% dev / 90% test (`--paper_split`).
        text_fields: the items table's text columns (empty: whatever columns the user's table has).
        item_template: the name of its template in `processing_embsum.ITEM_TEMPLATES` (None: one built from the item
            columns, `Field: {field}; ...`).
        wording: how the teacher prompt talks about its items.
        paper_negatives: non-clicked items per click in EmbSum's training on it (None: no paper setting).
        items_file: what `--items_data` names for it (None: the source needs no items file).
        license: the data's license terms, which the trained weights inherit (None: unknown).
        citation: the data's BibTeX entry, cited by the model card after EmbSum's.
    """

    name: str
    read: str | Callable[[Any, str, str], Any]
    splits: tuple[str, ...] = ("train",)
    paper_split: bool = False
    text_fields: tuple[str, ...] = ()
    item_template: str | None = None
    wording: DomainWording = CUSTOM_WORDING
    paper_negatives: int | None = None
    items_file: str | None = None
    license: DataTerms | None = None
    citation: str | None = None

    def read_split(self, args: Any, path: str, split: str) -> Any:
        """One split of the source: `read(args, path, split)`, imported first when it is named as a string."""
        read = self.read
        if isinstance(read, str):
            module, _, function = read.partition(":")
            read = getattr(importlib.import_module(f".{module}", __package__), function)
        return read(args, path, split)

    @property
    def split_by_time(self) -> bool:
        """True when one file is split by time into train/dev/test (False: the source's own splits)."""
        return self.splits == ("train",)

    @property
    def prompt_domain(self) -> str:
        """The name of its prompt wording (`news`, `books`, `movies`, `custom`)."""
        return self.wording.domain


SOURCES: dict[str, DataSource] = {
    source.name: source
    for source in (
        DataSource(
            "mind",
            "mind:read_split",
            splits=("train", "dev"),
            paper_split=True,
            text_fields=("title", "abstract", "category", "subcategory"),
            item_template="mind",
            wording=DomainWording(
                "news",
                item="news article",
                items="news articles",
                activity="read",
                fields=(("Title", ("title",)), ("Abstract", ("abstract",)), ("Category", ("category",))),
                category_keys=("category",),
            ),
            paper_negatives=4,
            license=DataTerms(
                "other",
                license_name="microsoft-research-license-mind",
                license_link="https://msnews.github.io/",
                terms="MIND is distributed under the Microsoft Research License Terms: non-commercial research use "
                "only",
            ),
            citation="""@inproceedings{wu2020mind,
  title     = {MIND: A Large-scale Dataset for News Recommendation},
  author    = {Wu, Fangzhao and Qiao, Ying and Chen, Jiun-Hung and Wu, Chuhan and Qi, Tao and Lian, Jianxun and
               Liu, Danyang and Xie, Xing and Gao, Jianfeng and Wu, Winnie and Zhou, Ming},
  booktitle = {Proceedings of the 58th Annual Meeting of the Association for Computational Linguistics},
  year      = {2020},
  pages     = {3597--3606}
}""",
        ),
        DataSource(
            "goodreads",
            "goodreads:read_split",
            text_fields=("title", "author", "description", "genre"),
            item_template="goodreads",
            wording=DomainWording(
                "books",
                item="book",
                items="books",
                activity="liked",
                fields=(
                    ("Title", ("title",)),
                    ("Author", ("author",)),
                    ("Description", ("description",)),
                    ("Genre", ("genre",)),
                ),
                category_keys=("genre",),
            ),
            paper_negatives=2,
            items_file="books JSON lines",
            license=DataTerms(
                "other",
                license_name="ucsd-goodreads-academic",
                license_link="https://mengtingwan.github.io/data/goodreads.html",
                terms="the UCSD Goodreads datasets are for academic use only",
            ),
            citation="""@inproceedings{wan2018item,
  title     = {Item Recommendation on Monotonic Behavior Chains},
  author    = {Wan, Mengting and McAuley, Julian},
  booktitle = {Proceedings of the 12th ACM Conference on Recommender Systems},
  year      = {2018},
  pages     = {86--94}
}""",
        ),
        DataSource(
            "movielens",
            "movielens:read_split",
            text_fields=("title", "year", "genres"),
            item_template="movielens",
            wording=DomainWording(
                "movies",
                item="movie",
                items="movies",
                activity="liked",
                fields=(("Title", ("title",)), ("Year", ("year",)), ("Genres", ("genres",))),
                category_keys=("genres",),
            ),
            license=DataTerms(
                "other",
                license_name="grouplens-movielens",
                license_link="https://files.grouplens.org/datasets/movielens/ml-100k-README.txt",
                terms="MovieLens may be used for research; commercial use needs GroupLens' permission",
            ),
            citation="""@article{harper2015movielens,
  title   = {The MovieLens Datasets: History and Context},
  author  = {Harper, F. Maxwell and Konstan, Joseph A.},
  journal = {ACM Transactions on Interactive Intelligent Systems},
  volume  = {5},
  number  = {4},
  year    = {2015},
  doi     = {10.1145/2827872}
}""",
        ),
        DataSource("custom", "custom:read_split", items_file="items table"),
        # your own impressions, already split: --train_data / --eval_data / --test_data are used as given
        DataSource(
            "impressions", "impression_files:read_split", splits=("train", "dev", "test"), items_file="items table"
        ),
    )
}


def get_source(name: str) -> DataSource:
    """The registered source `name`; an unknown name raises `ValueError` listing the known ones."""
    if name not in SOURCES:
        raise ValueError(f"dataset must be one of {tuple(SOURCES)}, got {name!r}")
    return SOURCES[name]


__all__ = ["SOURCES", "DataSource", "DataTerms", "DomainWording", "get_source"]
