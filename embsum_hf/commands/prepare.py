"""`embsum prepare`: load a dataset exactly as `embsum train` would (the same flags or YAML/JSON file) and save its
train/dev/test splits to OUTPUT_DIR/data/, where every other command reads them with `--data`: teacher summaries of
Goodreads or your own logs before training, for instance."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field


@dataclass
class PrepareArguments:
    output_dir: str = field(metadata={"help": "The splits go to OUTPUT_DIR/data/<train|dev|test> (as in training)."})


def register(subparsers: argparse._SubParsersAction) -> None:
    from embsum_hf.commands import add_config_command

    # like `train`: flags or a YAML/JSON file; a training config works (its training-only keys are ignored)
    add_config_command(
        subparsers, "prepare", "load and split a dataset as `embsum train` does, and save the splits for --data", run
    )


def parse(options: list[str]):
    """`(DataArguments, PrepareArguments, ProgressArguments)` from flags or a YAML/JSON file."""
    from embsum_hf.commands import ProgressArguments, parse_config
    from embsum_hf.data.arguments import DataArguments

    types = (DataArguments, PrepareArguments, ProgressArguments)
    return parse_config(options, types, "embsum prepare", allow_extra_keys=True)


def run(args: argparse.Namespace) -> int:
    from embsum_hf.commands import apply_progress, report_drops
    from embsum_hf.data.arguments import load_splits, save_splits

    data_args, prepare_args, progress = parse(args.extra)
    apply_progress(progress.no_progress)
    splits = load_splits(data_args, for_training=False)  # unlabeled or click-free data is saved too
    report_drops("prepare", splits.train, splits.dev, splits.test)
    folder = save_splits(splits, prepare_args.output_dir)
    for name in ("train", "dev", "test"):
        split = getattr(splits, name)
        if split is not None:
            print(f"{folder / name}: {split.split}, {len(split.impressions)} impressions, {len(split.items)} items")
    return 0
