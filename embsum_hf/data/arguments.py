"""The data part of a run: which source, which files, and the train / dev / test splits they give.

`DataArguments` is filled by `transformers.HfArgumentParser` (flags or a YAML/JSON file) for `embsum prepare`
(data only) and `embsum train` (with the model and training arguments).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .schema import RecommendationData
from .sources import SOURCES, DataSource, get_source
from .splits import split_by_time, split_dev_test

_ITEMS_HELP = " ".join(
    f"{name.capitalize()}: the {source.items_file}." for name, source in SOURCES.items() if source.items_file
)


@dataclass
class DataArguments:
    """Where a run's data comes from (every field is a flag of `embsum prepare` and `embsum train`)."""

    dataset: str = field(default="mind", metadata={"help": f"Data format: one of {tuple(SOURCES)}."})
    train_data: str | None = field(
        default=None,
        metadata={
            "help": "MIND: the train split, a folder with news.tsv/behaviors.tsv or an official name "
            "(MINDsmall_train). Goodreads: the interactions file. MovieLens: the ml-100k folder. Custom: the "
            "engagement log. Impressions: the train impressions (JSON lines/CSV/parquet; user_id, history, "
            "candidates, labels). Goodreads, MovieLens and custom data are split by time into train/dev/test (each "
            "user's last impression to test, the one before to dev)."
        },
    )
    eval_data: str | None = field(
        default=None,
        metadata={"help": "MIND: the dev split (folder or name). Impressions: the dev impressions (model selection)."},
    )
    test_data: str | None = field(
        default=None, metadata={"help": "Impressions only: the test impressions (reported)."}
    )
    paper_split: bool = field(
        default=False,
        metadata={
            "help": "MIND only: split eval_data by impression into 10 percent Dev (model selection) and 90 percent "
            "Test (report)."
        },
    )
    items_data: str | None = field(default=None, metadata={"help": _ITEMS_HELP})
    authors_data: str | None = field(default=None, metadata={"help": "Goodreads: the authors file (optional)."})
    id_column: str = field(default="item_id", metadata={"help": "Custom: the items table's id column."})
    text_columns: str | None = field(
        default=None, metadata={"help": "Custom: comma-separated item text columns (default: all but the id)."}
    )
    user_column: str = field(default="user_id", metadata={"help": "Custom: the log's user column."})
    item_column: str = field(default="item_id", metadata={"help": "Custom: the log's item column."})
    label_column: str | None = field(default="label", metadata={"help": "Custom: the log's 0/1 click column."})
    time_column: str = field(default="timestamp", metadata={"help": "Custom: the log's time column."})
    impression_column: str | None = field(
        default=None, metadata={"help": "Custom: rows sharing this id form one impression (default: same time)."}
    )


@dataclass
class Splits:
    train: RecommendationData
    dev: RecommendationData | None
    test: RecommendationData | None


def load_splits(args: DataArguments, *, for_training: bool = True) -> Splits:
    """Train / dev (model selection) / test (reported) splits, named in every metric they produce. A training split
    with no impression is refused, naming the cause (the loader's counts), and so is one with no click unless
    `for_training` is off (`embsum prepare` saves unlabeled or click-free data too, e.g. to summarise its users)."""
    import pyarrow.compute as pc

    splits = _load_splits(args)
    train = splits.train.require_impressions(args.train_data)
    if not for_training:
        return splits
    labels = train.impressions.with_format("arrow")["labels"]
    if not pc.any(pc.equal(pc.list_flatten(labels), 1)).as_py():
        raise ValueError(
            f"{args.train_data}: no training rows: none of the {len(train.impressions)} impressions of {train.split} "
            "has a click (label 1)"
        )
    return splits


def _load_splits(args: DataArguments) -> Splits:
    """The splits of `args.dataset` as its entry reads them (`sources.DataSource`: `read`, `splits`, `paper_split`)."""
    if args.train_data is None:
        raise ValueError("train_data is required")
    source = get_source(args.dataset)
    if args.test_data is not None and "test" not in source.splits:
        raise ValueError(_not_for(source, "test_data", "test"))
    if args.paper_split and not source.paper_split:
        takers = " and ".join(name for name, other in SOURCES.items() if other.paper_split)
        raise ValueError(f"paper_split is for {takers}; {source.name} data is not split by impression")
    if args.eval_data is not None and "dev" not in source.splits:
        raise ValueError(_not_for(source, "eval_data", "dev"))
    if source.items_file and args.items_data is None:
        raise ValueError(f"items_data is required for {args.dataset} (the {source.items_file})")
    if source.split_by_time:
        return Splits(*split_by_time(source.read_split(args, args.train_data, "train")))
    paths = {"train": args.train_data, "dev": args.eval_data, "test": args.test_data}
    train, dev, test = (source.read_split(args, path, split) if path else None for split, path in paths.items())
    if args.paper_split and dev is not None:
        dev, test = split_dev_test(dev)
    return Splits(train, dev, test)


def _not_for(source: DataSource, flag: str, split: str) -> str:
    takers = " and ".join(name for name, other in SOURCES.items() if split in other.splits)
    why = "data is split by time" if source.split_by_time else f"gives its {split} split itself"
    return f"{flag} is for {takers}; {source.name} {why}"


def save_splits(splits: Splits, output_dir: str | Path) -> Path:
    """Save each split to `output_dir/data/<train|dev|test>`, where every command's `--data` reads it."""
    folder = Path(output_dir, "data")
    for name, split in (("train", splits.train), ("dev", splits.dev), ("test", splits.test)):
        if split is not None:
            split.save_to_disk(folder / name)
    return folder


__all__ = ["DataArguments", "Splits", "load_splits", "save_splits"]
