"""`embsum` command line: one thin module per subcommand in `embsum_hf.commands`.

Each command module exposes `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
Only the command modules and `examples/` parse argv and print; the library returns data and logs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import torch.distributed as dist

# subcommand module names, in the order `embsum --help` lists them
COMMANDS = ("prepare", "train", "evaluate", "predict", "summarize", "encode", "recommend", "push")


def build_parser() -> argparse.ArgumentParser:
    description = "EmbSum: prepare data, train, evaluate, summarise, encode, recommend, push to the Hub."
    from embsum_hf.commands import ArgumentParser  # one dialect: --batch-size and --batch_size alike

    parser = ArgumentParser(prog="embsum", description=description)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"embsum_hf.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # `train` and `prepare` forward their flags to transformers.HfArgumentParser; other commands take their own
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "forwards_flags", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        status = int(args.func(args) or 0)
    except (OSError, ValueError) as error:
        # bad input (a path, a file's line, a field): one clear line; the traceback only when asked for
        if os.environ.get("EMBSUM_TRACEBACK"):
            raise
        print(f"embsum {args.command}: error: {error}", file=sys.stderr)
        print("(set EMBSUM_TRACEBACK=1 for the traceback)", file=sys.stderr)
        return 2
    end_distributed()
    return status


def end_distributed() -> None:
    """
    Destroy the process group that a command under `accelerate launch` opened: a rank that exits with it alive can
    abort (SIGABRT, "terminate called without an active exception") while gloo/NCCL threads still hold work.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
