"""Subcommands of the `embsum` CLI (see `embsum_hf.cli`), and what several of them share: one dialect (every
`--long-option` also spelt `--long_option`), the `--model/--data/--split` and `--no-progress` options, and configs
read from flags, a YAML/JSON file, or a file plus flags that override it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# the `--data` of every command (read by `embsum_hf.data.load_data`)
DATA_HELP = (
    "MIND folder (news.tsv + behaviors.tsv) or split name, or any data saved by RecommendationData.save_to_disk "
    "(e.g. by `embsum train --save_splits true` under OUTPUT_DIR/data/)"
)


class ArgumentParser(argparse.ArgumentParser):
    """
    `argparse.ArgumentParser` that accepts every long option with dashes and with underscores (`--batch-size` and
    `--batch_size`), as `HfArgumentParser` does for `train` and `prepare`; its subparsers are of the same class.
    """

    def add_argument(self, *names, **kwargs):
        spellings = list(names)
        for name in names:
            if name.startswith("--"):
                for other in ("--" + name[2:].replace("-", "_"), "--" + name[2:].replace("_", "-")):
                    if other not in spellings:
                        spellings.append(other)
        return super().add_argument(*spellings, **kwargs)


def add_model_argument(parser: argparse.ArgumentParser, help: str | None = None, required: bool = True) -> None:
    """The `--model` of a command that loads a trained EmbSum (see [`load_model_and_processor`])."""
    parser.add_argument(
        "--model", required=required, help=help or "folder (or Hub id) with the model and its processor"
    )


def add_data_arguments(
    parser: argparse.ArgumentParser, when: str = "", required: bool = True, note: str = ""
) -> None:
    """`--data` (see `embsum_hf.data.load_data`) and `--split`; `when` prefixes their help (`--exclude-history: `)."""
    parser.add_argument("--data", required=required, help=when + DATA_HELP + note)
    parser.add_argument("--split", default=None, help=when + "train/dev/test when --data holds several splits")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def apply_progress(disabled: bool) -> None:
    """Silence every progress bar when `disabled` (`--no-progress`, or train's `--disable_tqdm true`)."""
    if disabled:
        from embsum_hf.utils import disable_progress_bars

        disable_progress_bars()


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
    Fill dataclasses with `transformers.HfArgumentParser` from `--field value` flags, one YAML/JSON file, or a file
    followed by flags that override it (`embsum train recipe.yaml --learning_rate 1e-4`). `allow_extra_keys` lets a
    command read only its part of a larger config file (e.g. `prepare` a training YAML).
    """
    import json

    import yaml
    from transformers import HfArgumentParser

    parser = HfArgumentParser(types, prog=prog)
    if not options or not options[0].endswith((".yaml", ".yml", ".json")):
        return parser.parse_args_into_dataclasses(options)
    path, overrides = Path(options[0]), options[1:]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    text = path.read_text()
    values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of field: value, got {type(values).__name__}")
    fields = {action.dest for action in parser._actions}
    unknown = sorted(set(values) - fields)
    if unknown and not allow_extra_keys:
        raise ValueError(f"{path}: unknown fields {unknown}")
    if not overrides:
        return parser.parse_dict(values, allow_extra_keys=allow_extra_keys)
    # the file's values become the defaults of the flags, so a flag given after the file wins
    known = {key: value for key, value in values.items() if key in fields}
    parser.set_defaults(**known)
    for action in parser._actions:
        if action.dest in known:
            action.required = False
    return parser.parse_args_into_dataclasses(overrides)
