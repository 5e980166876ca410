"""Small helpers several layers share: durable file replacement, a no-grad evaluation context, the jobs' processes,
the package's progress bars."""

from __future__ import annotations

import contextlib
import errno
import fcntl
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


def file_mode() -> int:
    """The mode a plain `open(path, "w")` gives a new file: 0666 less the process's umask (0644 under the usual
    022). `os.umask` only reads the mask by setting it, so it is set back at once."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def make_readable(*paths: str | os.PathLike) -> None:
    """Give files that a writer created private (`tempfile.mkstemp`, safetensors' `save_file`: 0600) the mode of a
    plain new file ([`file_mode`]), so a serving process running as another user can read them."""
    mode = file_mode()
    for path in paths:
        os.chmod(path, mode)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with `text` atomically: write a temporary sibling, fsync it, rename it over `path`. The file
    gets the mode of a plain new file (0644 under umask 022; `mkstemp`'s own 0600 would hide it from other users)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_safetensors(folder: str | os.PathLike) -> None:
    """Open the header of every `*.safetensors` file of a model folder (no-op for a Hub id): a truncated or foreign
    file is an `OSError` naming it, instead of a bare "Error while deserializing header" from deep in loading."""
    from safetensors import safe_open

    folder = Path(folder)
    for weights in sorted(folder.glob("*.safetensors")) if folder.is_dir() else ():
        try:
            with safe_open(str(weights), framework="pt") as handle:
                handle.keys()
        except Exception as error:  # safetensors' own SafetensorError for damaged bytes
            raise OSError(f"{weights}: unreadable safetensors file ({error})") from None


class FolderInUseError(OSError):
    """Another process holds the lock of a job's output folder (see `folder_lock`)."""


LOCK_NAME = ".embsum.lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """
    Hold an exclusive lock on a job's output folder while the job writes it: one job per folder at a time, so two
    runs with different settings never mix their files. The lock is `fcntl.flock` on `folder/.embsum.lock` (which
    holds the owner's pid); the kernel releases it when its process ends, even by SIGKILL, so a killed run never
    leaves the folder locked. A second job on the folder fails at once with `FolderInUseError` naming the pid.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise FolderInUseError(
                f"{folder}: folder in use by pid {owner} (another job is writing it); wait, or use another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield folder
    finally:
        os.close(fd)  # releases the lock


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
