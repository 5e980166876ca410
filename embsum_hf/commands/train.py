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
    parser = subparsers.add_parser(
        "train",
        help="train EmbSum (click NCE + summary NLL) on MIND or MovieLens; flags or a YAML/JSON config file",
        add_help=False,
    )
    # no own arguments: a .yaml/.json file or `--field value` pairs all go to HfArgumentParser (`embsum train --help`)
    parser.set_defaults(func=run, forwards_flags=True)


def parse(options: list[str]):
    from transformers import HfArgumentParser

    from embsum_hf.training import EmbSumTrainingArguments
    from embsum_hf.training.recipe import EmbSumRunArguments

    parser = HfArgumentParser((EmbSumRunArguments, EmbSumTrainingArguments), prog="embsum train")
    if len(options) == 1 and options[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(options[0])
    if len(options) == 1 and options[0].endswith(".json"):
        return parser.parse_json_file(options[0])
    return parser.parse_args_into_dataclasses(options)


def run(args: argparse.Namespace) -> int:
    from embsum_hf.training.recipe import train_embsum

    run_args, training_args = parse(args.extra)
    results = train_embsum(run_args, training_args)
    json.dump({k: v for k, v in results.items() if k != "run_args"}, sys.stdout, indent=2, default=str)
    print()
    return 0
