"""Subcommands of the `embsum` CLI (see `embsum_hf.cli`), and what several of them share: one dialect (every
`--long-option` also spelt `--long_option`; every boolean flag as `transformers.HfArgumentParser` takes it, bare
`--flag` or `--flag true/false`), the `--model/--data/--split` and `--no-progress` options, and configs read from
flags, a YAML/JSON file, or a file plus flags that override it."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

# the `--data` of every command (read by `embsum_hf.data.load_data`)
DATA_HELP = (
    "MIND folder (news.tsv + behaviors.tsv) or split name, or any data saved by RecommendationData.save_to_disk "
    "(e.g. by `embsum train --save_splits true` under OUTPUT_DIR/data/)"
)


def string_to_bool(value: str | bool) -> bool:
    """`true`/`false` (`yes`/`no`, `1`/`0`) as `embsum train` reads them: transformers' own parser, imported only
    when a boolean flag is given a value (building the parsers imports no transformers)."""
    from transformers.hf_argparser import string_to_bool as transformers_string_to_bool

    return transformers_string_to_bool(value)


class ArgumentParser(argparse.ArgumentParser):
    """
    `argparse.ArgumentParser` in the dialect of `transformers.HfArgumentParser` (which parses `train` and `prepare`):
    every long option with dashes and with underscores (`--batch-size` and `--batch_size`), and every boolean flag
    (declared `action="store_true"` or `type=string_to_bool`) both bare (`--faiss`) and with a value
    (`--faiss true`, `--paper-split false`). Its subparsers are of the same class.
    """

    def add_argument(self, *names, **kwargs):
        if kwargs.get("action") == "store_true" or kwargs.get("type") is string_to_bool:
            kwargs.pop("action", None)
            kwargs.update(type=string_to_bool, nargs="?", const=True, metavar="{true,false}")
            kwargs.setdefault("default", False)
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


def add_data_arguments(parser: argparse.ArgumentParser, when: str = "", required: bool = True, note: str = "") -> None:
    """`--data` (see `embsum_hf.data.load_data`) and `--split`; `when` prefixes their help (`--exclude-history: `)."""
    parser.add_argument("--data", required=required, help=when + DATA_HELP + note)
    parser.add_argument("--split", default=None, help=when + "train/dev/test when --data holds several splits")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """The progress flag of every command (`train` and `prepare` read it through [`ProgressArguments`])."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


@dataclass
class ProgressArguments:
    """`--no-progress` for the commands parsed by `HfArgumentParser` (`train`, `prepare`), as the others take it."""

    no_progress: bool = field(default=False, metadata={"help": "No progress bars (train: as --disable_tqdm true)."})


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
    from embsum_hf.utils import check_safetensors

    path = Path(name_or_path).expanduser()
    looks_local = name_or_path.startswith((".", "~", os.sep)) or name_or_path.count("/") > 1
    if looks_local and not path.exists():
        raise FileNotFoundError(f"--model {name_or_path}: no such folder (and not a Hub id like org/name)")
    source = str(path) if path.exists() else name_or_path
    check_safetensors(path)
    return EmbSumModel.from_pretrained(source).eval(), EmbSumProcessor.from_pretrained(source)


def require_positive(args, *names: str) -> None:
    """Refuse a count or duration flag (`--batch-size`, `--k`, `--timeout`, ...) that is not positive, naming the flag;
    a flag left unset (None) keeps its default. Checked before anything is loaded or written."""
    for name in names:
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")


def report_drops(command: str, *splits) -> None:
    """Print (stderr) what the loader dropped from each split and why, warning when most of some input was dropped."""
    import sys

    for data in splits:
        if data is None:
            continue
        line, warning = data.drop_report()
        print(f"embsum {command}: {line}", file=sys.stderr)
        if warning:
            print(f"embsum {command}: warning: {warning}", file=sys.stderr)


def load_command_data(args, *, validate: bool = False, strict_candidates: bool = False, items_only: bool = False):
    """
    The `--data`/`--split` of a command, loaded as every command loads it: the loader's counts of what it dropped
    and why are printed (stderr), with a warning when most of the input was dropped; a split left with no
    impressions is refused, naming the path (with `items_only`, for a command that reads only the items, one with no
    items); `validate` also runs `RecommendationData.validate()` (e.g. duplicate impression ids). Nothing is cached
    into the `--data` folder (`datasets` caching is off for the command).
    """
    import datasets

    from embsum_hf.data import load_data

    datasets.disable_caching()  # maps of a saved split would otherwise write cache-*.arrow into --data
    data = load_data(args.data, args.split, strict_candidates=strict_candidates)
    report_drops(getattr(args, "command", None) or "data", data)
    if items_only:
        if len(data.items) == 0:
            raise ValueError(f"{args.data}: no items in {data.split}")
    else:
        data.require_impressions(args.data)
    return data.validate() if validate else data


def add_config_command(subparsers, name: str, help: str, func) -> None:
    """A subcommand with no argparse arguments of its own: a YAML/JSON file or `--field value` pairs all go to
    `HfArgumentParser` through [`parse_config`], which also answers `--help`."""
    parser = subparsers.add_parser(name, help=help, add_help=False)
    parser.set_defaults(func=func, forwards_flags=True)


def parse_config(
    options: list[str],
    types: tuple[type, ...],
    prog: str,
    *,
    ignore: tuple[type, ...] = (),
    allow_extra_keys: bool = False,
) -> tuple:
    """
    Fill dataclasses with `transformers.HfArgumentParser` from `--field value` flags, one YAML/JSON file, or a file
    followed by flags that override it (`embsum train recipe.yaml --learning_rate 1e-4`). In the file, the fields of
    the dataclasses in `ignore` are skipped and, with `allow_extra_keys`, any key the command does not take, so a
    command reads only its part of a larger config (e.g. `prepare` a training YAML); otherwise an unknown key is
    refused, naming the file.
    """
    import dataclasses

    from transformers import HfArgumentParser

    parser = HfArgumentParser(types, prog=prog)
    if not options or not options[0].endswith((".yaml", ".yml", ".json")):
        return parser.parse_args_into_dataclasses(options)
    path, overrides = options[0], options[1:]
    values = read_recipe(path)
    ignored = {f.name for kind in ignore for f in dataclasses.fields(kind)}
    fields = {action.dest for action in parser._actions}
    unknown = sorted(set(values) - fields - ignored)
    if unknown and not allow_extra_keys:
        raise ValueError(f"{path}: unknown fields {unknown}")
    known = {key: value for key, value in values.items() if key in fields}
    if not overrides:
        return parser.parse_dict(known)
    # the file's values become the defaults of the flags, so a flag given after the file wins
    parser.set_defaults(**known)
    for action in parser._actions:
        if action.dest in known:
            action.required = False
    return parser.parse_args_into_dataclasses(overrides)


def given_fields(options: list[str]) -> set[str]:
    """The fields a command line sets itself: the keys of its YAML/JSON file and its flags (`--name value`,
    `--name=value`, with dashes or underscores), so a command can tell a value given from a default."""
    given: set[str] = set()
    if options and options[0].endswith((".yaml", ".yml", ".json")):
        given |= set(read_recipe(options[0]))
        options = options[1:]
    for option in options:
        if option.startswith("--"):
            given.add(option[2:].split("=", 1)[0].replace("-", "_"))
    return given


def read_recipe(path: str) -> dict:
    """A YAML/JSON recipe file as a mapping of field -> value; a file that does not parse, carries a tag such as
    `!!python/object` (YAML is read with `safe_load`), or is not a mapping is refused with one line naming it."""
    import json

    import yaml

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
    except (yaml.YAMLError, ValueError, RecursionError) as error:  # JSON and Unicode errors are ValueErrors
        raise ValueError(f"{path}: not a valid YAML/JSON recipe ({' '.join(str(error).split())})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a recipe must be a mapping of field: value, got {type(values).__name__}")
    return values
