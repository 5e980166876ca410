"""`embsum` command line: one thin module per subcommand in `embsum_hf.commands`.

Each command module exposes `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
Only the command modules and `examples/` parse argv and print; the library returns data and logs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# subcommand module names, in the order `embsum --help` lists them
COMMANDS = ("prepare", "train", "evaluate", "predict", "summarize", "encode", "recommend", "push", "space")


def build_parser() -> argparse.ArgumentParser:
    from embsum_hf import __version__

    description = "EmbSum: prepare data, train, evaluate, summarise, encode, recommend, push to the Hub."
    from embsum_hf.commands import ArgumentParser  # one dialect: --batch-size and --batch_size alike

    parser = ArgumentParser(prog="embsum", description=description)
    parser.add_argument("--version", action="version", version=f"embsum_hf {__version__}")
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
    except expected_failures() as error:
        # bad input (a path, a file's line, a field): one clear line; the traceback only when asked for
        if os.environ.get("EMBSUM_TRACEBACK"):
            raise
        message = " ".join(str(error).split()) or type(error).__name__  # one line, whatever the library wrote
        print(f"embsum {args.command}: error: {message}", file=sys.stderr)
        print("(set EMBSUM_TRACEBACK=1 for the traceback)", file=sys.stderr)
        return 2
    end_distributed()
    return status


def expected_failures() -> tuple[type[BaseException], ...]:
    """
    Every failure that bad input causes, which the CLI reports as one line and exit status 2: OSError and
    ValueError (the project's `DataFormatError`, `StoreMismatchError` and `FolderInUseError` among them, and
    json/Unicode errors), a truncated .gz (`EOFError`) or corrupted deflate stream (`zlib.error`), a damaged
    safetensors file (`SafetensorError`), a YAML recipe that does not parse or carries a refused tag (`YAMLError`),
    and data nested too deeply to read (`RecursionError`). Anything else is a bug and keeps its traceback.
    """
    import zlib

    import yaml
    from safetensors import SafetensorError

    return OSError, ValueError, EOFError, zlib.error, SafetensorError, yaml.YAMLError, RecursionError


def end_distributed() -> None:
    """
    Destroy the process group that a command under `accelerate launch` opened: a rank that exits with it alive can
    abort (SIGABRT, "terminate called without an active exception") while gloo/NCCL threads still hold work.
    """
    if "torch" not in sys.modules:  # a command that never imported torch opened no process group
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
