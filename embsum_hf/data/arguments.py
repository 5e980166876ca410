"""The data part of a run: which source, which files, and the train / dev / test splits they give.

`DataArguments` is filled by `transformers.HfArgumentParser` (flags or a YAML/JSON file) for `embsum prepare`
(data only) and `embsum train` (with the model and training arguments).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .schema import RecommendationData
from .sources import SOURCES, get_source
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
    from .. import data

    if args.train_data is None:
        raise ValueError("train_data is required")
    source = get_source(args.dataset)
    load = getattr(data, source.loader)
    if args.test_data is not None and args.dataset != "impressions":
        raise ValueError(f"test_data is for impressions; {args.dataset} gives its test split itself")
    if args.paper_split and args.dataset != "mind":
        raise ValueError(f"paper_split is for MIND; {args.dataset} data is not split by impression")
    if args.eval_data is not None and source.split_by_time:
        raise ValueError(f"eval_data is for MIND and impressions; {args.dataset} data is split by time")
    if source.items_file and args.items_data is None:
        raise ValueError(f"items_data is required for {args.dataset} (the {source.items_file})")
    text_columns = args.text_columns.split(",") if args.text_columns else None
    if args.dataset == "impressions":  # the user's own splits, as given
        columns = dict(id_column=args.id_column, text_columns=text_columns, user_column=args.user_column)
        return Splits(*(
            load(args.items_data, path, split=f"impressions:{name}", **columns) if path else None
            for name, path in (("train", args.train_data), ("dev", args.eval_data), ("test", args.test_data))
        ))
    if args.dataset == "mind":  # its own train and dev folders
        train = load(args.train_data, "train" if Path(args.train_data, "train").is_dir() else None)
        if args.eval_data is None:
            return Splits(train, None, None)
        dev = load(args.eval_data, "dev" if Path(args.eval_data, "dev").is_dir() else None)
        if args.paper_split:
            dev, test = split_dev_test(dev)
            return Splits(train, dev, test)
        return Splits(train, dev, None)
    if args.dataset == "movielens":
        loaded = load(args.train_data)
    elif args.dataset == "goodreads":
        loaded = load(args.items_data, args.train_data, authors_path=args.authors_data)
    else:
        loaded = load(
            args.items_data,
            args.train_data,
            id_column=args.id_column,
            text_columns=text_columns,
            user_column=args.user_column,
            item_column=args.item_column,
            label_column=args.label_column or None,
            time_column=args.time_column,
            impression_column=args.impression_column,
        )
    return Splits(*split_by_time(loaded))


def save_splits(splits: Splits, output_dir: str | Path) -> Path:
    """Save each split to `output_dir/data/<train|dev|test>`, where every command's `--data` reads it."""
    folder = Path(output_dir, "data")
    for name, split in (("train", splits.train), ("dev", splits.dev), ("test", splits.test)):
        if split is not None:
            split.save_to_disk(folder / name)
    return folder


__all__ = ["DataArguments", "Splits", "load_splits", "save_splits"]
