"""Subcommands of the `embsum` CLI (see `embsum_hf.cli`), and what several of them share."""

from __future__ import annotations

import os
from pathlib import Path

# the `--data` of every command (read by `embsum_hf.data.load_data`)
DATA_HELP = (
    "MIND folder (news.tsv + behaviors.tsv) or split name, or any data saved by RecommendationData.save_to_disk "
    "(e.g. by `embsum train --save_splits true` under OUTPUT_DIR/data/)"
)


def load_model_and_processor(name_or_path: str):
    """
    The `--model` of a command: a saved folder or a Hub id, loaded as `(EmbSumModel in eval mode, EmbSumProcessor)`.
    A path that does not exist is reported as one (instead of transformers' "Repo id must use alphanumeric chars").
    """
    from embsum_hf import EmbSumModel, EmbSumProcessor

    path = Path(name_or_path).expanduser()
    looks_local = name_or_path.startswith((".", "~", os.sep)) or name_or_path.count("/") > 1
    if looks_local and not path.exists():
        raise FileNotFoundError(f"--model {name_or_path}: no such folder (and not a Hub id like org/name)")
    source = str(path) if path.exists() else name_or_path
    return EmbSumModel.from_pretrained(source).eval(), EmbSumProcessor.from_pretrained(source)


def add_config_command(subparsers, name: str, help: str, func) -> None:
    """A subcommand with no argparse arguments of its own: a YAML/JSON file or `--field value` pairs all go to
    `HfArgumentParser` through [`parse_config`], which also answers `--help`."""
    parser = subparsers.add_parser(name, help=help, add_help=False)
    parser.set_defaults(func=func, forwards_flags=True)


def parse_config(options: list[str], types: tuple[type, ...], prog: str, *, allow_extra_keys: bool = False) -> tuple:
    """
    Fill dataclasses with `transformers.HfArgumentParser` from `--field value` flags or one YAML/JSON file (where
    `allow_extra_keys` lets a command read only its part of a larger config, e.g. a training YAML).
    """
    from transformers import HfArgumentParser

    parser = HfArgumentParser(types, prog=prog)
    if len(options) == 1 and options[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(options[0], allow_extra_keys=allow_extra_keys)
    if len(options) == 1 and options[0].endswith(".json"):
        return parser.parse_json_file(options[0], allow_extra_keys=allow_extra_keys)
    return parser.parse_args_into_dataclasses(options)
