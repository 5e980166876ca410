"""`embsum train`: the joint EmbSum recipe from flags or a YAML/JSON file (`embsum train run.yaml`).

Every `EmbSumRunArguments` and `EmbSumTrainingArguments` field is a flag (`--train_data`, `--learning_rate`, ...);
flags after a YAML/JSON file override it (`embsum train recipe.yaml --learning_rate 1e-4`). The results JSON is the
only output on stdout; logs and progress go to stderr (`--no-progress`, as every command takes it, or
`--disable_tqdm true` silences every bar).
`--resume_from_checkpoint true` continues from the last checkpoint in `--output_dir` after a crash. Without
`--backbone` (from scratch) the learning rate defaults to the recipe's `FROM_SCRATCH_LEARNING_RATE` (2e-3).
Multi-process: `accelerate launch -m embsum_hf.cli train ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    from embsum_hf.commands import add_config_command

    add_config_command(
        subparsers,
        "train",
        "train EmbSum (click NCE + summary NLL) on MIND, Goodreads, MovieLens or your own logs; flags, a YAML/JSON "
        "file, or a file then flags that override it",
        run,
    )


def parse(options: list[str]):
    """The run's arguments; without a backbone and without a learning rate of its own, a run from scratch trains at
    `FROM_SCRATCH_LEARNING_RATE` instead of `TrainingArguments`' fine-tuning default. `--no-progress` (the flag of
    every command) sets `disable_tqdm`."""
    from embsum_hf.commands import ProgressArguments, given_fields, parse_config
    from embsum_hf.training import EmbSumTrainingArguments
    from embsum_hf.training.recipe import FROM_SCRATCH_LEARNING_RATE, EmbSumRunArguments

    run_args, training_args, progress = parse_config(
        options, (EmbSumRunArguments, EmbSumTrainingArguments, ProgressArguments), "embsum train"
    )
    if progress.no_progress:
        training_args.disable_tqdm = True
    if run_args.backbone is None and "learning_rate" not in given_fields(options):
        training_args.learning_rate = FROM_SCRATCH_LEARNING_RATE
        logger.info("from scratch: learning_rate %g (pass --learning_rate to change it)", FROM_SCRATCH_LEARNING_RATE)
    return run_args, training_args


def run(args: argparse.Namespace) -> int:
    from embsum_hf.commands import apply_progress, report_drops
    from embsum_hf.data.arguments import load_splits
    from embsum_hf.training.recipe import train_embsum
    from embsum_hf.utils import job_folder_lock

    # the package's INFO records (the rows built, the levers the recipe chose from the data) go to stderr with the
    # Trainer's logs; other libraries keep their WARNING level
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("embsum_hf").setLevel(logging.INFO)
    run_args, training_args = parse(args.extra)
    apply_progress(training_args.disable_tqdm)
    # stdout carries the results JSON alone: the Trainer prints its logs (and tqdm writes its bars) to stdout
    with contextlib.redirect_stdout(sys.stderr):
        splits = load_splits(run_args)
        report_drops("train", splits.train, splits.dev, splits.test)
        _ = training_args.device  # the processes as the Trainer sets them up, before the lock asks which is main
        # one run per output folder: a second one fails at once ("folder in use by pid N") instead of mixing its
        # checkpoints with this one's
        with job_folder_lock(training_args.output_dir):
            results = train_embsum(run_args, training_args, splits)
    json.dump({k: v for k, v in results.items() if k != "run_args"}, sys.stdout, indent=2, default=str)
    print()
    return 0
