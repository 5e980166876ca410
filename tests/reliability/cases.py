"""The generated bad inputs: every malformed file kind crossed with every command that reads it, every store
corruption, every bad flag value. Each case damages a copy of one valid input of the `World` and says what the
command must do with it: refuse it (exit 2, one line naming the path, line or field) or skip and count it."""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from safetensors.torch import load_file, save_file

from .harness import (
    BEHAVIORS,
    World,
    behavior_lines,
    custom_items,
    custom_logs,
    goodreads_books,
    goodreads_interactions,
    news_lines,
    write_jsonl,
    write_mind,
)


@dataclass
class Case:
    id: str
    argv: Callable[[World, Path], list[str]]  # builds the inputs under the case's folder, returns the argv
    names: list[str]  # refuse: each must appear in the error line; skip: each must be printed
    expect: str = "refuse"  # or "skip"
    output: str | None = None  # a path (relative to the case folder) that a refusal must leave unwritten
    after: Callable[[Path], None] | None = field(default=None, repr=False)  # more checks on the case folder
    absent: list[str] = field(default_factory=list)  # what the output must not say (e.g. a false "rerun" hint)


# --- data readers: --data of these commands --------------------------------------------------------------------


def data_commands(world: World, tmp: Path, data: Path) -> dict[str, list[str]]:
    model = str(world.model)
    return {
        "evaluate": ["evaluate", "--model", model, "--data", str(data), "--output", str(tmp / "out.json")],
        "predict": ["predict", "--model", model, "--data", str(data), "--output", str(tmp / "out.json")],
        "encode-items": [
            "encode-items",
            "--model",
            model,
            "--data",
            str(data),
            "--output",
            str(tmp / "out.json"),
            "--no-progress",
        ],
        "encode-users": [
            "encode-users",
            "--model",
            model,
            "--data",
            str(data),
            "--output",
            str(tmp / "out.json"),
            "--no-progress",
        ],
        "summarize": [
            "summarize",
            "--data",
            str(data),
            "--backend",
            "heuristic",
            "--output",
            str(tmp / "out.json"),
            "--no-progress",
        ],
        "recommend": [
            "recommend",
            "--users",
            str(world.users_store),
            "--items",
            str(world.items_store),
            "--exclude-history",
            "--data",
            str(data),
            "--output",
            str(tmp / "out.json"),
            "--no-progress",
        ],
        "prepare": ["prepare", "--dataset", "mind", "--train_data", str(data), "--output_dir", str(tmp / "out.json")],
        "train": [
            "train",
            "--dataset",
            "mind",
            "--train_data",
            str(data),
            "--output_dir",
            str(tmp / "out.json"),
            "--max_steps",
            "1",
            "--vocab_size",
            "120",
            "--d_model",
            "16",
            "--num_layers",
            "1",
            "--num_heads",
            "2",
            "--d_ff",
            "16",
            "--report_to",
            "none",
        ],
    }


MIND_READERS = ("evaluate", "predict", "encode-items", "encode-users", "summarize", "recommend", "prepare", "train")
SAVED_READERS = ("evaluate", "predict", "encode-items", "encode-users", "summarize", "recommend")


def _replace(lines: list[str], index: int, line: str) -> list[str]:
    return lines[:index] + [line] + lines[index + 1 :]


def _mind(news=None, behaviors=None, raw_news: bytes | None = None, raw_behaviors: bytes | None = None):
    def build(tmp: Path) -> Path:
        folder = write_mind(tmp / "mind", news, behaviors)
        if raw_news is not None:
            (folder / "news.tsv").write_bytes(raw_news)
        if raw_behaviors is not None:
            (folder / "behaviors.tsv").write_bytes(raw_behaviors)
        return folder

    return build


_TAB_NEWS = "\n".join(news_lines()).encode()
_TAB_BEHAVIORS = "\n".join(behavior_lines()).encode()
MIND_DAMAGE = {  # name -> (folder builder, names the error must hold, expect)
    "news-columns": (_mind(news=_replace(news_lines(), 2, "N2\tsports\tonly three")), ["news.tsv:3", "columns"]),
    "news-not-utf8": (_mind(raw_news=_TAB_NEWS.replace(b"goal", b"g\xff\xfeal", 1)), ["news.tsv:1", "utf-8"]),
    "news-missing": (lambda tmp: (write_mind(tmp / "mind") / "news.tsv").unlink() or tmp / "mind", ["news.tsv"]),
    "news-empty": (_mind(news=[]), ["no impressions"]),
    "behaviors-columns": (_mind(behaviors=_replace(behavior_lines(), 1, "2\tU2\tN1")), ["behaviors.tsv:2"]),
    "behaviors-time": (
        _mind(behaviors=_replace(behavior_lines(), 1, "2\tU2\tyesterday\tN1\tN12-0 N13-1")),
        ["behaviors.tsv:2", "time"],
    ),
    "behaviors-label": (
        _mind(behaviors=_replace(behavior_lines(), 1, "2\tU2\t11/15/2019 9:00:00 AM\tN1\tN12-x N13-1")),
        ["behaviors.tsv:2"],
    ),
    "behaviors-not-utf8": (_mind(raw_behaviors=_TAB_BEHAVIORS.replace(b"U2", b"U\xc3(", 1)), ["behaviors.tsv:2"]),
    "behaviors-all-unknown": (
        _mind(behaviors=["\t".join((str(i), "U1", BEHAVIORS[0][2], "", "X1-1 X2-0")) for i in range(3)]),
        ["no impressions", "unknown_candidate_item"],
    ),
    "behaviors-duplicate-impression": (
        _mind(behaviors=behavior_lines() + [behavior_lines()[0]]),
        ["duplicate impression id '1'"],
    ),
    "behaviors-duplicate-impression-12": (  # reported once, with its count (not once per repeat)
        _mind(behaviors=behavior_lines() + [behavior_lines()[0]] * 11),
        ["duplicate impression id '1' (12 impressions)"],
    ),
    "behaviors-user-empty": (
        _mind(behaviors=_replace(behavior_lines(), 1, "2\t\t11/15/2019 9:00:00 AM\tN4 N5 N6\tN12-0 N13-1")),
        ["behaviors.tsv:2", "empty user id"],
    ),
}
MIND_SKIPS = {  # counted, not refused: name -> (builder, what must be printed, commands that refuse instead)
    "unknown-history": (
        _mind(behaviors=_replace(behavior_lines(), 0, "1\tU1\t11/15/2019 8:55:22 AM\tN1 X9 X8\tN10-1 N11-0 N12-0")),
        ["unknown_history_item: 2"],
        {},
    ),
    "duplicate-history": (
        _mind(behaviors=_replace(behavior_lines(), 0, "1\tU1\t11/15/2019 8:55:22 AM\tN1 N2 N1 N3\tN10-1 N11-0 N12-0")),
        ["duplicate_history_item: 1"],
        {},
    ),
    "mostly-unknown-history": (
        _mind(
            behaviors=_replace(
                behavior_lines(),
                0,
                "1\tU1\t11/15/2019 8:55:22 AM\t" + " ".join(f"X{i}" for i in range(30)) + "\tN10-1 N11-0 N12-0",
            )
        ),
        ["unknown_history_item: 30", "warning: most of the input"],
        {},
    ),
    "unknown-candidate": (
        _mind(behaviors=_replace(behavior_lines(), 0, "1\tU1\t11/15/2019 8:55:22 AM\tN1\tN10-1 X11-0 N12-0")),
        ["unknown_candidate_item: 1"],
        {"predict": ["impression '1'", "X11"]},
    ),
}


def _saved(damage: Callable[[Path], None]):
    def build(tmp: Path, world: World) -> Path:
        folder = tmp / "saved"
        shutil.copytree(world.saved, folder)
        damage(folder)
        return folder

    return build


def _meta(text: str):
    return _saved(lambda folder: (folder / "recommendation_data.json").write_text(text))


SAVED_DAMAGE = {
    "meta-not-json": (_meta("{oops"), ["recommendation_data.json"]),
    "meta-not-object": (_meta("[1]"), ["recommendation_data.json"]),
    "meta-no-domain": (_meta('{"split": "x"}'), ["recommendation_data.json", "domain"]),
    "items-missing": (_saved(lambda f: shutil.rmtree(f / "items")), ["items"]),
    "impressions-damaged": (
        _saved(lambda f: [p.write_bytes(b"garbage") for p in (f / "impressions").glob("*.arrow")]),
        ["impressions"],
    ),
}


# --- model folders ------------------------------------------------------------------------------------------------


def model_commands(world: World, tmp: Path, model: Path) -> dict[str, list[str]]:
    data, out = str(world.mind), str(tmp / "out.json")
    return {
        "evaluate": ["evaluate", "--model", str(model), "--data", data, "--output", out],
        "predict": ["predict", "--model", str(model), "--data", data, "--output", out],
        "encode-items": ["encode-items", "--model", str(model), "--data", data, "--output", out, "--no-progress"],
        "encode-users": ["encode-users", "--model", str(model), "--data", data, "--output", out, "--no-progress"],
        "summarize": [
            "summarize",
            "--model",
            str(model),
            "--data",
            data,
            "--backend",
            "embsum",
            "--output",
            out,
            "--no-progress",
        ],
        "push": ["push", "--model", str(model), "--repo", "org/x", "--dry-run", out],
    }


def _model(damage: Callable[[Path], None]):
    def build(tmp: Path, world: World) -> Path:
        folder = tmp / "model"
        shutil.copytree(world.model, folder)
        damage(folder)
        return folder

    return build


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _random_bytes(path: Path) -> None:
    import random

    path.write_bytes(bytes(random.Random(0).getrandbits(8) for _ in range(4096)))


def _nan_embeddings(folder: Path) -> None:
    """One NaN in every token embedding row: the failure mode of a diverged training run."""
    tensors = load_file(folder / "model.safetensors")
    for name, tensor in tensors.items():
        if "shared" in name or "embed_tokens" in name:
            tensor[:, 0] = math.nan
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


MODEL_DAMAGE = {
    "weights-truncated": (_model(lambda f: _truncate(f / "model.safetensors")), ["model.safetensors"]),
    "weights-random": (_model(lambda f: _random_bytes(f / "model.safetensors")), ["model.safetensors"]),
    "config-not-json": (_model(lambda f: (f / "config.json").write_text("{oops")), ["config.json"]),
    "folder-missing": (lambda tmp, world: tmp / "nothing-here", ["nothing-here"]),
}


# --- stores -------------------------------------------------------------------------------------------------------


def _store(kind: str, damage: Callable[[Path], None]):
    def build(tmp: Path, world: World) -> Path:
        folder = tmp / kind
        shutil.copytree(world.items_store if kind == "items" else world.users_store, folder)
        damage(folder)
        return folder

    return build


def _edit_manifest(change: Callable[[dict], object]):
    def damage(folder: Path) -> None:
        manifest = json.loads((folder / "store.json").read_text())
        change(manifest)  # in place
        (folder / "store.json").write_text(json.dumps(manifest))

    return damage


def _nan_shard(folder: Path) -> None:
    path = folder / "shard-00000.safetensors"
    tensors = load_file(path)
    tensors["embeddings"][0, 0, 0] = math.nan
    save_file(tensors, path)


def _fifo_shard(folder: Path) -> None:
    path = folder / "shard-00000.safetensors"
    path.unlink()
    os.mkfifo(path)


STORE_DAMAGE = {  # name -> (damage, names the error must hold)
    "manifest-not-json": (lambda f: (f / "store.json").write_text("{oops"), ["store.json"]),
    "manifest-not-object": (lambda f: (f / "store.json").write_text("[]"), ["store.json", "object"]),
    "manifest-no-complete": (_edit_manifest(lambda m: m.pop("complete")), ["store.json", "complete"]),
    "manifest-complete-string": (_edit_manifest(lambda m: m.update(complete="yes")), ["store.json", "complete"]),
    "manifest-no-kind": (_edit_manifest(lambda m: m.pop("kind")), ["store.json", "kind"]),
    "manifest-kind-unknown": (_edit_manifest(lambda m: m.update(kind="movies")), ["store.json", "kind"]),
    "manifest-incomplete": (_edit_manifest(lambda m: m.update(complete=False)), ["incomplete"]),
    "manifest-more-shards": (
        _edit_manifest(lambda m: m.update(num_shards=m["num_shards"] + 3)),
        ["store.json", "num_shards"],
    ),
    "manifest-shard-parent": (
        _edit_manifest(lambda m: m["shards"].__setitem__(0, "../shard-00000.safetensors")),
        ["store.json", "shards[0]"],
    ),
    "manifest-shard-absolute": (
        _edit_manifest(lambda m: m["shards"].__setitem__(0, "/etc/passwd")),
        ["store.json", "shards[0]"],
    ),
    "manifest-dtype": (_edit_manifest(lambda m: m.update(dtype="int8")), ["store.json", "dtype"]),
    "manifest-format": (_edit_manifest(lambda m: m.update(format_version=2)), ["store.json", "format"]),
    "manifest-no-shapes": (_edit_manifest(lambda m: m.pop("shapes")), ["store.json", "shapes"]),
    "manifest-entries-string": (_edit_manifest(lambda m: m.update(num_entries="5")), ["store.json", "num_entries"]),
    "manifest-shard-size-zero": (_edit_manifest(lambda m: m.update(shard_size=0)), ["store.json", "shard_size"]),
    "manifest-missing": (lambda f: (f / "store.json").unlink(), ["store.json"]),
    "ids-not-json": (lambda f: (f / "ids.json").write_text("[oops"), ["ids.json"]),
    "ids-repeated": (
        lambda f: (f / "ids.json").write_text(
            json.dumps([json.loads((f / "ids.json").read_text())[0]] * len(json.loads((f / "ids.json").read_text())))
        ),
        ["ids.json", "repeat"],
    ),
    "ids-count": (
        lambda f: (f / "ids.json").write_text(json.dumps(json.loads((f / "ids.json").read_text())[:-1])),
        ["ids.json"],
    ),
    "ids-not-strings": (
        lambda f: (f / "ids.json").write_text(json.dumps(list(range(len(json.loads((f / "ids.json").read_text())))))),
        ["ids.json"],
    ),
    "ids-missing": (lambda f: (f / "ids.json").unlink(), ["ids.json"]),
    "shard-truncated": (lambda f: _truncate(f / "shard-00000.safetensors"), ["shard-00000.safetensors"]),
    "shard-random": (lambda f: _random_bytes(f / "shard-00000.safetensors"), ["shard-00000.safetensors"]),
    "shard-missing": (lambda f: (f / "shard-00000.safetensors").unlink(), ["shard-00000.safetensors"]),
    "shard-nan": (_nan_shard, ["shard-00000.safetensors", "NaN"]),
    "shard-empty": (lambda f: (f / "shard-00000.safetensors").write_bytes(b""), ["shard-00000.safetensors"]),
    "shard-fifo": (_fifo_shard, ["shard-00000.safetensors", "not a regular file"]),  # would block the reader forever
}


# --- Goodreads and custom logs (prepare / train) ------------------------------------------------------------------


def _corrupt_gzip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(16)
    path.write_bytes(bytes(data))


def loader_commands(tmp: Path, flags: list[str]) -> dict[str, list[str]]:
    out = str(tmp / "out.json")
    return {
        "prepare": ["prepare", *flags, "--output_dir", out],
        "train": [
            "train",
            *flags,
            "--output_dir",
            out,
            "--max_steps",
            "1",
            "--vocab_size",
            "120",
            "--d_model",
            "16",
            "--num_layers",
            "1",
            "--num_heads",
            "2",
            "--d_ff",
            "16",
            "--report_to",
            "none",
        ],
    }


def _records(base, index, change):
    rows = [dict(r) for r in base]
    change(rows[index])
    return rows


def _goodreads(books=None, interactions=None, damage_books=None, damage_interactions=None):
    def flags(tmp: Path) -> list[str]:
        b = write_jsonl(tmp / "books.json.gz", books or goodreads_books())
        i = write_jsonl(tmp / "interactions.json.gz", interactions or goodreads_interactions())
        if damage_books:
            damage_books(b)
        if damage_interactions:
            damage_interactions(i)
        return ["--dataset", "goodreads", "--train_data", str(i), "--items_data", str(b)]

    return flags


def _set(key, value):
    return lambda record: record.__setitem__(key, value)


GOODREADS_DAMAGE = {
    "interactions-gz-truncated": (
        _goodreads(damage_interactions=lambda p: _truncate(p, 0.6)),
        ["interactions.json.gz"],
    ),
    "interactions-gz-corrupted": (_goodreads(damage_interactions=_corrupt_gzip), ["interactions.json.gz"]),
    "interactions-not-gzip": (
        _goodreads(damage_interactions=lambda p: p.write_text('{"a": 1}\n')),
        ["interactions.json.gz"],
    ),
    "interactions-bad-json": (
        _goodreads(interactions=goodreads_interactions()[:3] + ["{not json"]),
        ["interactions.json.gz:4", "JSON"],
    ),
    "interactions-array-line": (
        _goodreads(interactions=goodreads_interactions()[:3] + [[1, 2]]),
        ["interactions.json.gz:4"],
    ),
    "interactions-no-rating": (
        _goodreads(interactions=_records(goodreads_interactions(), 2, lambda r: r.pop("rating"))),
        ["interactions.json.gz:3", "rating"],
    ),
    "interactions-rating-text": (
        _goodreads(interactions=_records(goodreads_interactions(), 2, _set("rating", "great"))),
        ["interactions.json.gz:3", "rating"],
    ),
    "interactions-rating-nan": (
        _goodreads(interactions=_records(goodreads_interactions(), 2, _set("rating", "nan"))),
        ["interactions.json.gz:3", "rating"],
    ),
    "interactions-time-infinity": (
        _goodreads(interactions=_records(goodreads_interactions(), 2, _set("timestamp", "Infinity"))),
        ["interactions.json.gz:3", "timestamp"],
    ),
    "interactions-time-huge": (
        _goodreads(interactions=_records(goodreads_interactions(), 2, _set("timestamp", 1e300))),
        ["interactions.json.gz:3", "timestamp"],
    ),
    "interactions-user-null": (
        _goodreads(interactions=_records(goodreads_interactions(), 2, _set("user_id", None))),
        ["interactions.json.gz:3", "user_id"],
    ),
    "interactions-rating-99": (
        _goodreads(interactions=_records(goodreads_interactions(), 2, _set("rating", 99))),
        ["interactions.json.gz:3", "rating", "99", "0..5"],
    ),
    "interactions-rating-negative": (
        _goodreads(interactions=_records(goodreads_interactions(), 2, _set("rating", -1))),
        ["interactions.json.gz:3", "rating", "-1"],
    ),
    "books-empty-file": (_goodreads(damage_books=lambda p: p.write_bytes(b"")), ["books.json.gz", "no books"]),
    "books-gz-truncated": (_goodreads(damage_books=lambda p: _truncate(p, 0.6)), ["books.json.gz"]),
    "books-authors-string": (
        _goodreads(books=_records(goodreads_books(), 1, _set("authors", "Ann"))),
        ["books.json.gz:2", "authors"],
    ),
    "books-authors-number": (
        _goodreads(books=_records(goodreads_books(), 1, _set("authors", 7))),
        ["books.json.gz:2", "authors"],
    ),
    "books-authors-strings": (
        _goodreads(books=_records(goodreads_books(), 1, _set("authors", ["Ann"]))),
        ["books.json.gz:2", "authors"],
    ),
    "books-shelves-string": (
        _goodreads(books=_records(goodreads_books(), 1, _set("popular_shelves", "poetry"))),
        ["books.json.gz:2", "popular_shelves"],
    ),
    "books-shelves-object": (
        _goodreads(books=_records(goodreads_books(), 1, _set("popular_shelves", {"name": "x"}))),
        ["books.json.gz:2", "popular_shelves"],
    ),
    "books-shelf-count-text": (
        _goodreads(books=_records(goodreads_books(), 1, _set("popular_shelves", [{"name": "x", "count": "many"}]))),
        ["books.json.gz:2", "popular_shelves"],
    ),
    "books-title-list": (
        _goodreads(books=_records(goodreads_books(), 1, _set("title", ["a", "b"]))),
        ["books.json.gz:2", "title"],
    ),
    "books-id-null": (
        _goodreads(books=_records(goodreads_books(), 1, _set("book_id", None))),
        ["books.json.gz:2", "book_id"],
    ),
}


def _custom(
    items=None,
    logs=None,
    extra=(),
    items_name="items.jsonl",
    logs_name="logs.jsonl",
    raw_logs=None,
    raw_items: bytes | None = None,
    parquet_keep: float | None = None,
):
    def flags(tmp: Path) -> list[str]:
        if items_name.endswith(".parquet"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            i = tmp / items_name
            pq.write_table(pa.Table.from_pylist(custom_items()), i)
            if parquet_keep is not None:
                _truncate(i, parquet_keep)
            if raw_items is not None:
                i.write_bytes(raw_items)
        else:
            i = write_jsonl(tmp / items_name, items if items is not None else custom_items())
        log = write_jsonl(tmp / logs_name, logs if logs is not None else custom_logs())
        if raw_logs is not None:
            log.write_text(raw_logs)
        return ["--dataset", "custom", "--train_data", str(log), "--items_data", str(i), *extra]

    return flags


CUSTOM_DAMAGE = {
    "logs-user-null": (_custom(logs=_records(custom_logs(), 3, _set("user_id", None))), ["logs.jsonl:4", "user_id"]),
    "logs-user-object": (
        _custom(logs=_records(custom_logs(), 3, _set("user_id", {"a": 1}))),
        ["logs.jsonl:4", "user_id"],
    ),
    "logs-item-list": (_custom(logs=_records(custom_logs(), 3, _set("item_id", ["I1"]))), ["logs.jsonl:4", "item_id"]),
    "logs-item-bool": (_custom(logs=_records(custom_logs(), 3, _set("item_id", True))), ["logs.jsonl:4", "item_id"]),
    "logs-time-infinity": (
        _custom(logs=_records(custom_logs(), 3, _set("timestamp", "Infinity"))),
        ["logs.jsonl:4", "timestamp"],
    ),
    "logs-time-nan": (
        _custom(raw_logs='{"user_id": "u", "item_id": "I1", "label": 1, "timestamp": NaN}\n'),
        ["logs.jsonl:1", "timestamp"],
    ),
    "logs-time-text": (
        _custom(logs=_records(custom_logs(), 3, _set("timestamp", "soon"))),
        ["logs.jsonl:4", "timestamp"],
    ),
    "logs-time-negative-huge": (
        _custom(logs=_records(custom_logs(), 3, _set("timestamp", -1e20))),
        ["logs.jsonl:4", "timestamp"],
    ),
    "logs-label-two": (_custom(logs=_records(custom_logs(), 3, _set("label", 2))), ["logs.jsonl:4", "label"]),
    "logs-label-null": (_custom(logs=_records(custom_logs(), 3, _set("label", None))), ["logs.jsonl:4", "label"]),
    "logs-no-user-column": (
        _custom(logs=_records(custom_logs(), 0, lambda r: r.pop("user_id"))),
        ["logs.jsonl:1", "user_id"],
    ),
    "logs-huge-integer": (
        _custom(raw_logs='{"user_id": ' + "9" * 5000 + ', "item_id": "I1", "label": 1, "timestamp": 1}\n'),
        ["logs.jsonl:1"],
    ),
    "logs-deep-nesting": (_custom(raw_logs='{"user_id": ' + "[" * 100_000 + "]" * 100_000 + "}\n"), ["logs.jsonl:1"]),
    "logs-all-unknown": (
        _custom(logs=[{**r, "item_id": "X" + r["item_id"]} for r in custom_logs()]),
        ["no impressions", "unknown_interaction_item"],
    ),
    "logs-no-clicks": (_custom(logs=[{**r, "label": 0} for r in custom_logs()]), ["no"]),
    "logs-csv-unsupported": (_custom(logs_name="logs.xml"), ["logs.xml", "unsupported"]),
    "items-title-list": (
        _custom(items=_records(custom_items(), 2, _set("title", ["a", "b"]))),
        ["items.jsonl:3", "title"],
    ),
    "items-title-object": (
        _custom(items=_records(custom_items(), 2, _set("title", {"en": "a"}))),
        ["items.jsonl:3", "title"],
    ),
    "items-id-null": (_custom(items=_records(custom_items(), 2, _set("item_id", None))), ["items.jsonl:3", "item_id"]),
    "items-empty": (_custom(items=[]), ["items.jsonl", "empty"]),
    "items-parquet-random": (
        _custom(items_name="items.parquet", raw_items=b"PAR1" + bytes(range(256)) * 8),
        ["items.parquet"],
    ),
    "items-parquet-truncated": (_custom(items_name="items.parquet", parquet_keep=0.7), ["items.parquet"]),
}


# --- YAML / JSON recipes ------------------------------------------------------------------------------------------

RECIPES = {
    "yaml-unparseable": ("run.yaml", "dataset: [mind\ntrain_data: x\n", ["run.yaml"]),
    "yaml-python-tag": ("run.yaml", "dataset: !!python/object/apply:os.system ['true']\n", ["run.yaml"]),
    "yaml-list": ("run.yaml", "- dataset\n- mind\n", ["run.yaml"]),
    "yaml-empty": ("run.yaml", "", ["run.yaml"]),
    "yaml-unknown-key": ("run.yaml", "dataset: mind\nbogus_key: 3\noutput_dir: x\n", ["bogus_key"]),
    "json-unparseable": ("run.json", "{oops", ["run.json"]),
}


# --- flags --------------------------------------------------------------------------------------------------------


def flag_cases() -> list[Case]:
    cases = []

    def recommend(*flags):
        return lambda world, tmp: [
            "recommend",
            "--users",
            str(world.users_store),
            "--items",
            str(world.items_store),
            "--output",
            str(tmp / "recs"),
            "--no-progress",
            *flags,
        ]

    for flags, name in [
        (("--k", "0"), "k"),
        (("--k", "-1"), "k"),
        (("--faiss", "--nprobe", "-1"), "nprobe"),
        (("--faiss", "--nprobe", "0"), "nprobe"),
        (("--faiss", "--num-candidates", "-1"), "num-candidates"),
        (("--faiss", "--num-candidates", "0"), "num-candidates"),
        (("--exclude-history",), "--data"),
    ]:
        cases.append(
            Case(f"flag-recommend{''.join(flags)}", recommend(*flags), [name], output="recs/part-00000.jsonl")
        )
    cases.append(
        Case(
            "flag-recommend-users-are-items",
            lambda world, tmp: [
                "recommend",
                "--users",
                str(world.items_store),
                "--items",
                str(world.items_store),
                "--output",
                str(tmp / "recs"),
            ],
            ["items"],
        )
    )
    for command in ("encode-items", "encode-users"):
        for flag in ("--batch-size", "--shard-size"):
            for value in ("0", "-1"):
                cases.append(
                    Case(
                        f"flag-{command}{flag}{value}",
                        lambda world, tmp, c=command, f=flag, v=value: [
                            c,
                            "--model",
                            str(world.model),
                            "--data",
                            str(world.mind),
                            "--output",
                            str(tmp / "store"),
                            "--no-progress",
                            f,
                            v,
                        ],
                        [flag],
                        output="store/ids.json",
                    )
                )

    def into_other_store(world: World, tmp: Path) -> list[str]:
        shutil.copytree(world.users_store, tmp / "store")
        return [
            "encode-items",
            "--model",
            str(world.model),
            "--data",
            str(world.mind),
            "--output",
            str(tmp / "store"),
            "--no-progress",
        ]

    cases.append(
        Case(
            "flag-encode-items-over-users-store",
            into_other_store,
            ["users store", "store"],
            after=lambda tmp: _assert_kind(tmp / "store", "users"),
        )
    )
    for value in ("0", "-5"):

        def vocab(world, tmp, v=value):
            return loader_commands(tmp, ["--dataset", "mind", "--train_data", str(world.mind)])["train"] + [
                "--vocab_size",
                v,
            ]

        cases.append(Case(f"flag-train-vocab_size{value}", vocab, ["vocab_size"]))
    for flag, value in [
        ("--batch-size", "0"),
        ("--max-users", "-1"),
        ("--concurrency", "0"),
        ("--timeout", "-1"),
        ("--max-new-tokens", "0"),
    ]:
        cases.append(
            Case(
                f"flag-summarize{flag}{value}",
                lambda world, tmp, f=flag, v=value: [
                    "summarize",
                    "--data",
                    str(world.mind),
                    "--backend",
                    "heuristic",
                    "--output",
                    str(tmp / "s.jsonl"),
                    "--no-progress",
                    f,
                    v,
                ],
                [flag.lstrip("-")],
                output="s.jsonl",
            )
        )
    cases.append(
        Case(
            "flag-evaluate-split-missing",
            lambda world, tmp: [
                "evaluate",
                "--model",
                str(world.model),
                "--data",
                str(tmp / "no-such"),
                "--output",
                str(tmp / "m.json"),
            ],
            ["no-such"],
            output="m.json",
        )
    )
    cases.append(
        Case("flag-evaluate-writes-no-cache-into-data", _evaluate_copy, [], expect="ok", after=_assert_no_cache)
    )
    cases += second_round_flag_cases(recommend)
    return cases


def second_round_flag_cases(recommend) -> list[Case]:
    """Messages that say what was written, values named, and refusals that were too strict (issue 22)."""
    cases = [
        Case(
            "flag-recommend--k-beyond-catalogue",
            recommend("--k", "100000"),
            ["top 24 items (--top-k 100000: the catalogue holds 24) of 4 users"],
            expect="ok",
            absent=["top 100000"],
            after=lambda tmp: _assert_items_per_user(tmp / "recs", 24),
        ),
        Case(
            "flag-recommend--faiss-num-candidates-below-k",
            recommend("--faiss", "--num-candidates", "3", "--k", "10"),
            ["--num-candidates 3", "--top-k 10"],
            output="recs/part-00000.jsonl",
        ),
    ]
    for name, data in (("mind", lambda world: world.mind), ("saved", lambda world: world.saved)):
        cases.append(
            Case(
                f"flag-evaluate-split-bogus-{name}",
                lambda world, tmp, d=data: [
                    "evaluate",
                    "--model",
                    str(world.model),
                    "--data",
                    str(d(world)),
                    "--split",
                    "bogus",
                    "--output",
                    str(tmp / "m.json"),
                ],
                ["split 'bogus' not found"],
                output="m.json",
            )
        )

    def no_clicks(world: World, tmp: Path) -> list[str]:
        rows = [(*row[:4], row[4].replace("-1", "-0")) for row in BEHAVIORS]
        data = write_mind(tmp / "mind", behaviors=behavior_lines(rows))
        return ["evaluate", "--model", str(world.model), "--data", str(data), "--output", str(tmp / "m.json")]

    cases.append(
        Case(
            "flag-evaluate-no-clicks",
            no_clicks,
            ["are undefined (null)", "has both a click and a non-click"],
            expect="ok",
            absent=["NaN"],
            after=_assert_strict_json,
        )
    )

    def train(world: World, tmp: Path, *flags: str) -> list[str]:
        return loader_commands(tmp, ["--dataset", "mind", "--train_data", str(world.mind)])["train"] + list(flags)

    cases.append(
        Case(
            "flag-train-summary_loss_weight-1",
            lambda world, tmp: train(world, tmp, "--summary_loss_weight", "-1"),
            ["summary_loss_weight must be >= 0, got -1"],
            output="out.json",
        )
    )
    cases.append(
        Case(
            "flag-train-resume-nonexistent",
            lambda world, tmp: train(world, tmp, "--resume_from_checkpoint", str(tmp / "no-such")),
            ["no-such: no such checkpoint folder"],
            output="out.json/model.safetensors",
        )
    )

    def encode_empty_behaviors(world: World, tmp: Path) -> list[str]:
        data = write_mind(tmp / "mind", behaviors=[])
        return [
            "encode-items",
            "--model",
            str(world.model),
            "--data",
            str(data),
            "--output",
            str(tmp / "store"),
            "--no-progress",
        ]

    cases.append(Case("flag-encode-items-empty-behaviors", encode_empty_behaviors, ["wrote 24 items"], expect="ok"))
    for name, rows in (
        ("unlabeled", [(*row[:4], " ".join(token[:-2] for token in row[4].split())) for row in BEHAVIORS]),
        ("click-free", [(*row[:4], row[4].replace("-1", "-0")) for row in BEHAVIORS]),
    ):

        def prepare(world, tmp, r=rows):
            data = write_mind(tmp / "mind", behaviors=behavior_lines(r))
            return ["prepare", "--dataset", "mind", "--train_data", str(data), "--output_dir", str(tmp / "out")]

        cases.append(
            Case(
                f"flag-prepare-{name}-mind",
                prepare,
                ["5 impressions"],
                expect="ok",
                after=lambda tmp: _assert_saved_split(tmp / "out" / "data" / "train"),
            )
        )
    return cases


def _assert_items_per_user(output: Path, count: int) -> None:
    manifest = json.loads((output / "recommendations.json").read_text())
    assert manifest["items_per_user"] == {"min": count, "max": count}
    lengths = {
        len(json.loads(line)["item_ids"])
        for part in manifest["parts"]
        for line in (output / part).read_text().splitlines()
    }
    assert lengths == {count}


def _assert_strict_json(tmp: Path) -> None:
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    metrics = json.loads((tmp / "m.json").read_text(), parse_constant=refuse)
    assert metrics["auc"] is None and metrics["num_skipped_one_class"] == len(BEHAVIORS)


def _assert_saved_split(folder: Path) -> None:
    from embsum_hf.data import load_data

    assert len(load_data(folder).impressions) == len(BEHAVIORS)


def _evaluate_copy(world: World, tmp: Path) -> list[str]:
    shutil.copytree(world.saved, tmp / "data")
    (tmp / "before.txt").write_text(
        "\n".join(sorted(str(p.relative_to(tmp / "data")) for p in (tmp / "data").rglob("*")))
    )
    return ["evaluate", "--model", str(world.model), "--data", str(tmp / "data"), "--output", str(tmp / "m.json")]


def _assert_no_cache(tmp: Path) -> None:
    after = "\n".join(sorted(str(p.relative_to(tmp / "data")) for p in (tmp / "data").rglob("*")))
    assert after == (tmp / "before.txt").read_text(), "evaluate wrote into its --data folder"


def _assert_kind(store: Path, kind: str) -> None:
    assert json.loads((store / "store.json").read_text())["kind"] == kind


# --- all cases ----------------------------------------------------------------------------------------------------


def all_cases() -> list[Case]:
    cases: list[Case] = []
    for damage, (build, names) in MIND_DAMAGE.items():
        for command in MIND_READERS:
            if damage.startswith("behaviors-duplicate-impression") and command not in ("evaluate", "predict"):
                continue  # only scoring impressions needs their ids unique
            named = names
            if command == "predict" and damage in ("news-empty", "behaviors-all-unknown"):
                named = ["behaviors.tsv:1", "not in news.tsv"]  # predict refuses the first unknown candidate
            if command == "encode-items" and damage in ("news-empty", "behaviors-all-unknown"):
                # encoding items needs no impressions: no items is refused, dropped impressions are only counted
                expect, named = ("refuse", ["no items"]) if damage == "news-empty" else ("skip", names[1:])
                cases.append(
                    Case(
                        f"mind-{damage}-{command}",
                        lambda world, tmp, b=build, c=command: data_commands(world, tmp, b(tmp))[c],
                        named,
                        expect=expect,
                    )
                )
                continue
            cases.append(
                Case(
                    f"mind-{damage}-{command}",
                    lambda world, tmp, b=build, c=command: data_commands(world, tmp, b(tmp))[c],
                    named,
                    output="out.json",
                )
            )
    for damage, (build, names, refusing) in MIND_SKIPS.items():
        for command in MIND_READERS:
            if command == "train":
                continue  # training on the tiny world is not a fast case; prepare reads the same loader
            if command in refusing:
                cases.append(
                    Case(
                        f"mind-{damage}-{command}",
                        lambda world, tmp, b=build, c=command: data_commands(world, tmp, b(tmp))[c],
                        refusing[command],
                        output="out.json",
                    )
                )
            else:
                cases.append(
                    Case(
                        f"mind-{damage}-{command}",
                        lambda world, tmp, b=build, c=command: data_commands(world, tmp, b(tmp))[c],
                        names,
                        expect="skip",
                    )
                )
    for damage, (build, names) in SAVED_DAMAGE.items():
        for command in SAVED_READERS:
            cases.append(
                Case(
                    f"saved-{damage}-{command}",
                    lambda world, tmp, b=build, c=command: data_commands(world, tmp, b(tmp, world))[c],
                    names,
                    output="out.json",
                )
            )
    for command, named in (
        ("encode-items", ["items embeddings", "NaN", "'N0'"]),
        ("encode-users", ["users embeddings", "NaN", "'U1'"]),
        ("evaluate", ["NaN"]),
    ):
        cases.append(
            Case(
                f"model-weights-nan-{command}",
                lambda world, tmp, c=command: model_commands(world, tmp, _model(_nan_embeddings)(tmp, world))[c],
                named,
                output="out.json/ids.json",
            )
        )
    cases.append(
        Case(
            "mind-unknown-candidate-predict--drop-unknown-candidates",
            lambda world, tmp: (
                data_commands(world, tmp, MIND_SKIPS["unknown-candidate"][0](tmp))["predict"]
                + ["--drop-unknown-candidates"]
            ),
            ["unknown_candidate_item: 1"],
            expect="skip",
        )
    )
    for damage, (build, names) in MODEL_DAMAGE.items():
        for command in ("evaluate", "predict", "encode-items", "encode-users", "summarize", "push"):
            cases.append(
                Case(
                    f"model-{damage}-{command}",
                    lambda world, tmp, b=build, c=command: model_commands(world, tmp, b(tmp, world))[c],
                    names,
                    output="out.json",
                )
            )
    for damage, (change, names) in STORE_DAMAGE.items():
        for kind in ("users", "items"):

            def argv(world, tmp, k=kind, c=change):
                store = _store(k, c)(tmp, world)
                users, items = (store, world.items_store) if k == "users" else (world.users_store, store)
                return [
                    "recommend",
                    "--users",
                    str(users),
                    "--items",
                    str(items),
                    "--output",
                    str(tmp / "recs"),
                    "--no-progress",
                ]

            cases.append(Case(f"store-{kind}-{damage}-recommend", argv, names, output="recs/part-00000.jsonl"))
    for table in (GOODREADS_DAMAGE, CUSTOM_DAMAGE):
        for damage, (flags, names) in table.items():
            for command in ("prepare", "train"):
                prefix = "goodreads" if table is GOODREADS_DAMAGE else "custom"
                if damage == "logs-no-clicks" and command == "prepare":  # saved for summaries; training refuses it
                    cases.append(
                        Case(
                            f"{prefix}-{damage}-{command}",
                            lambda world, tmp, f=flags, c=command: loader_commands(tmp, f(tmp))[c],
                            ["impressions"],
                            expect="ok",
                        )
                    )
                    continue
                cases.append(
                    Case(
                        f"{prefix}-{damage}-{command}",
                        lambda world, tmp, f=flags, c=command: loader_commands(tmp, f(tmp))[c],
                        names,
                        output="out.json",
                    )
                )
    for name, (filename, text, names) in RECIPES.items():
        # `prepare` reads its part of a training recipe and ignores the other keys (documented), so an unknown key
        # is refused by `train` only
        for command in ("prepare", "train") if name != "yaml-unknown-key" else ("train",):

            def argv(world, tmp, f=filename, t=text, c=command):
                (tmp / f).write_text(t)
                return [c, str(tmp / f)]

            cases.append(Case(f"recipe-{name}-{command}", argv, names))
    cases += flag_cases()
    return cases


__all__ = ["Case", "all_cases", "gzip"]
