"""The reliability suite's machinery: one valid world built once, and `embsum` commands run in forked children.

`run(argv)` forks the already-imported test process (torch, transformers, embsum_hf loaded once) and calls
`embsum_hf.cli.main(argv)` in the child with stdout and stderr sent to files: a real, separate process per case at a
few milliseconds of start-up instead of seconds for a fresh interpreter.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

NEWS = [  # MIND news.tsv rows: id, category, subcategory, title, abstract
    (f"N{i}", topic, topic, f"{topic} {word} news {i}", f"all about {word} and {topic}")
    for i, (topic, word) in enumerate(
        [("sports", "goal"), ("space", "rocket"), ("food", "pasta"), ("politics", "vote")] * 6
    )
]
BEHAVIORS = [  # impression id, user, time, history (oldest first), candidates
    ("1", "U1", "11/15/2019 8:55:22 AM", "N1 N2 N3", "N10-1 N11-0 N12-0"),
    ("2", "U2", "11/15/2019 9:00:00 AM", "N4 N5 N6", "N12-0 N13-1"),
    ("3", "U1", "11/15/2019 10:00:00 AM", "N1 N2", "N14-1 N15-0"),
    ("4", "U3", "11/15/2019 11:00:00 AM", "", "N16-1 N17-0"),
    ("5", "U4", "11/15/2019 11:30:00 AM", "N20 N21", "N18-0 N19-1"),
]


def news_lines(rows=NEWS) -> list[str]:
    return ["\t".join([*row, "", "[]", "[]"]) for row in rows]


def behavior_lines(rows=BEHAVIORS) -> list[str]:
    return ["\t".join(row) for row in rows]


def write_mind(folder: Path, news: list[str] | None = None, behaviors: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "news.tsv").write_text("\n".join(news_lines() if news is None else news) + "\n")
    (folder / "behaviors.tsv").write_text("\n".join(behavior_lines() if behaviors is None else behaviors) + "\n")
    return folder


def write_jsonl(path: Path, records: list) -> Path:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def goodreads_books() -> list[dict]:
    return [
        {
            "book_id": str(i),
            "title": f"Book {i}",
            "authors": [{"author_id": "1"}],
            "description": "poems",
            "popular_shelves": [{"name": "poetry", "count": "3"}],
        }
        for i in range(8)
    ]


def goodreads_interactions() -> list[dict]:
    rows = []
    for user in range(3):
        for i in range(8):
            rating = 5 if (i + user) % 2 else 1
            rows.append({"user_id": f"u{user}", "book_id": str(i), "rating": rating, "timestamp": 1_600_000_000 + i})
    return rows


def custom_items() -> list[dict]:
    return [{"item_id": f"I{i}", "title": f"thing {i}", "brand": "acme"} for i in range(8)]


def custom_logs() -> list[dict]:
    rows = []
    for user in range(3):
        for i in range(8):
            rows.append(
                {
                    "user_id": f"u{user}",
                    "item_id": f"I{i}",
                    "label": (i + user) % 2,
                    "timestamp": 1_600_000_000 + 100 * (i // 2),
                }
            )
    return rows


@dataclass
class World:
    """Valid inputs of every kind; each case copies or damages one of them."""

    root: Path
    model: Path
    mind: Path
    saved: Path
    items_store: Path
    users_store: Path
    goodreads_books: Path
    goodreads_interactions: Path
    custom_items: Path
    custom_logs: Path


def build_world(root: Path, model, processor) -> World:
    from embsum_hf.data import load_data, user_histories
    from embsum_hf.serving import encode_items, encode_users

    model_dir = root / "model"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    mind = write_mind(root / "mind")
    data = load_data(mind)
    saved = data.save_to_disk(root / "saved")
    encode_items(model, processor, data.items, root / "items", shard_size=10, progress=False)
    encode_users(model, processor, user_histories(data), root / "users", shard_size=2, progress=False)
    return World(
        root=root,
        model=model_dir,
        mind=mind,
        saved=saved,
        items_store=root / "items",
        users_store=root / "users",
        goodreads_books=write_jsonl(root / "books.json.gz", goodreads_books()),
        goodreads_interactions=write_jsonl(root / "interactions.json.gz", goodreads_interactions()),
        custom_items=write_jsonl(root / "items.jsonl", custom_items()),
        custom_logs=write_jsonl(root / "logs.jsonl", custom_logs()),
    )


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str
    seconds: float


def fork_cli(argv: list[str], workdir: Path, timeout: float = 60.0, before=None) -> tuple[int, Path, Path]:
    """Start `embsum argv` in a forked child (after calling `before()` there, if given); returns (pid, stdout file,
    stderr file)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, err = workdir / "stdout.txt", workdir / "stderr.txt"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 99
        try:
            signal.alarm(int(timeout))
            with open(out, "w") as stdout, open(err, "w") as stderr:
                os.dup2(stdout.fileno(), 1)
                os.dup2(stderr.fileno(), 2)
                sys.stdout = os.fdopen(1, "w", buffering=1)
                sys.stderr = os.fdopen(2, "w", buffering=1)
                try:
                    from embsum_hf.cli import main

                    if before is not None:
                        before()
                    status = main(argv)
                except SystemExit as exit_:
                    status = exit_.code if isinstance(exit_.code, int) else 1
                except BaseException:
                    traceback.print_exc()
                    status = 99
                sys.stdout.flush()
                sys.stderr.flush()
        finally:
            os._exit(status)
    return pid, out, err


def wait(pid: int, out: Path, err: Path, started: float) -> Result:
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return Result(code, out.read_text(errors="replace"), err.read_text(errors="replace"), time.monotonic() - started)


def run(argv: list[str], workdir: Path, timeout: float = 60.0) -> Result:
    started = time.monotonic()
    return wait(*fork_cli(argv, workdir, timeout), started)


def prepare_parent() -> None:
    """
    Import, once, everything the commands import lazily (the training recipe, serving, teacher, Hub and FAISS
    code), so each forked child starts with it loaded; and keep torch on one intra-op thread (a forked child must
    not inherit a busy thread pool).
    """
    import importlib

    torch.set_num_threads(1)
    for module in (
        "embsum_hf.cli",
        "embsum_hf.training.recipe",
        "embsum_hf.serving",
        "embsum_hf.teacher",
        "embsum_hf.hub",
        "embsum_hf.metrics",
        "faiss",
        "yaml",
        "datasets",
        "safetensors.torch",
    ):
        importlib.import_module(module)
    from embsum_hf.cli import build_parser

    build_parser()
