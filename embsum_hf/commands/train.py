"""`embsum train`: the joint EmbSum recipe from flags or a YAML/JSON file (`embsum train run.yaml`).

Every `EmbSumRunArguments` and `EmbSumTrainingArguments` field is a flag (`--train_data`, `--learning_rate`, ...);
`--resume_from_checkpoint true` continues from the last checkpoint in `--output_dir` after a crash. Multi-process:
`accelerate launch -m embsum_hf.cli train ...`.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    from embsum_hf.commands import add_config_command

    add_config_command(
        subparsers,
        "train",
        "train EmbSum (click NCE + summary NLL) on MIND, Goodreads, MovieLens or your own logs; flags or a YAML/JSON file",
        run,
    )


def parse(options: list[str]):
    from embsum_hf.commands import parse_config
    from embsum_hf.training import EmbSumTrainingArguments
    from embsum_hf.training.recipe import EmbSumRunArguments

    return parse_config(options, (EmbSumRunArguments, EmbSumTrainingArguments), "embsum train")


def run(args: argparse.Namespace) -> int:
    from embsum_hf.commands import report_drops
    from embsum_hf.training.recipe import load_splits, train_embsum

    run_args, training_args = parse(args.extra)
    splits = load_splits(run_args)
    report_drops("train", splits.train, splits.dev, splits.test)
    results = train_embsum(run_args, training_args, splits)
    json.dump({k: v for k, v in results.items() if k != "run_args"}, sys.stdout, indent=2, default=str)
    print()
    return 0
