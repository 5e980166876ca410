"""Small helpers several layers share: durable file replacement, a no-grad evaluation context, the jobs' processes,
the package's progress bars."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env
from tqdm.auto import tqdm as _tqdm

_progress_bars = True


def tqdm(*args, **kwargs) -> _tqdm:
    """The package's progress bar (`tqdm.auto`), silent after [`disable_progress_bars`]."""
    kwargs["disable"] = kwargs.get("disable") or not _progress_bars
    return _tqdm(*args, **kwargs)


def disable_progress_bars() -> None:
    """Silence every progress bar: the package's own, `datasets`' (table maps, file readers) and transformers'."""
    global _progress_bars
    import datasets
    from transformers.utils import logging as transformers_logging

    _progress_bars = False
    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with `text` atomically: write a temporary sibling, fsync it, rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no autograd inside; the model's train/eval mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def job_state() -> PartialState:
    """
    The processes of an offline job (one, or the ranks of `accelerate launch` / `torchrun`). Built as `Accelerator()`
    builds it: a bare `PartialState()` ignores `ACCELERATE_USE_CPU` and would leave every CPU rank running alone.
    """
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
