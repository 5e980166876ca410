"""MIND (Microsoft News Dataset) loader: news.tsv + behaviors.tsv -> `RecommendationData`."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ._io import ItemTable, iter_fields
from .impressions import clean_history
from .schema import DOMAIN_TEXT_FIELDS, UNLABELED, DataFormatError, RecommendationData
from .splits import split_dev_test

if TYPE_CHECKING:  # the run's arguments, read by `read_split`
    from .arguments import DataArguments


__all__ = ["read_split", "MIND_URL", "download_mind", "load_mind", "split_dev_test"]

logger = logging.getLogger(__name__)

MIND_URL = "https://recodatasets.z20.web.core.windows.net/newsrec/{name}.zip"
_MIND_NAME = re.compile(r"MIND(demo|small|large)_(train|dev|test)")
_NEWS_COLUMNS = (
    "item_id",
    "category",
    "subcategory",
    "title",
    "abstract",
    "url",
    "title_entities",
    "abstract_entities",
)
_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"  # 11/15/2019 8:55:22 AM


def _cache_root() -> Path:
    return Path(os.environ.get("EMBSUM_HF_CACHE", Path.home() / ".cache" / "embsum_hf")) / "mind"


def download_mind(name: str, cache_dir: str | Path | None = None, url: str | None = None) -> Path:
    """Download and unzip an official MIND split (e.g. "MINDsmall_train") once; return the folder with the TSVs.

    Files go to `cache_dir/<name>` (default `~/.cache/embsum_hf/mind/<name>`, root overridable with the
    `EMBSUM_HF_CACHE` environment variable). `url` (default: the `EMBSUM_HF_MIND_URL` environment variable, else
    `MIND_URL`) is a template with `{name}`, for mirrors. An interrupted download continues where it stopped (HTTP
    range request) on the next call. Offline machines get an `OSError` explaining how to pass a local folder.
    """
    if not _MIND_NAME.fullmatch(name):
        raise ValueError(f"Unknown MIND split {name!r}; expected e.g. MINDsmall_train, MINDsmall_dev, MINDlarge_test")
    target = Path(cache_dir) if cache_dir is not None else _cache_root()
    target = target / name
    if (target / "behaviors.tsv").is_file() and (target / "news.tsv").is_file():
        return target
    url = (url or os.environ.get("EMBSUM_HF_MIND_URL") or MIND_URL).format(name=name)
    target.parent.mkdir(parents=True, exist_ok=True)
    archive = target.parent / f"{name}.zip.part"  # kept across calls: the next one resumes it
    logger.info("Downloading %s to %s", url, target)
    try:
        _fetch(url, archive, desc=f"Downloading {name}")
    except OSError as error:  # offline mode (HF_HUB_OFFLINE=1) included
        raise OSError(
            f"Could not download {url} ({error}). If this machine is offline, download and unzip it elsewhere "
            f"and pass the folder holding news.tsv and behaviors.tsv to load_mind instead of {name!r}."
        ) from error
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        try:
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(Path(tmp) / name)
        except zipfile.BadZipFile as error:
            problem = str(error)
        else:
            problem = None if (Path(tmp) / name / "behaviors.tsv").is_file() else "no behaviors.tsv at its root"
        if problem:
            archive.unlink()  # unusable: the next call downloads afresh
            raise OSError(f"{url} did not give a MIND zip archive ({problem}); deleted {archive}")
        shutil.rmtree(target, ignore_errors=True)
        (Path(tmp) / name).rename(target)  # atomic: a half-extracted folder never looks complete
    archive.unlink()
    return target


def _fetch(url: str, path: Path, desc: str) -> None:
    """Stream `url` into `path` with huggingface_hub's `http_get` (progress bar, retries), continuing the bytes
    already in `path` with an HTTP range request (from the start when the server ignores ranges). A cut connection
    is resumed within the call; what a failed call got stays in `path` for the next one."""
    import httpx2  # huggingface_hub's HTTP library
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.file_download import http_get

    done = path.stat().st_size if path.exists() else 0
    try:
        with open(path, "ab") as file:
            http_get(url, file, resume_size=done, displayed_filename=desc)
    except HfHubHTTPError as error:
        if error.response.status_code == 416 and done:  # nothing after byte `done`: the earlier call got it all
            return
        raise OSError(f"HTTP Error {error.response.status_code}: {error.response.reason_phrase}") from None
    except httpx2.HTTPError as error:  # a connection that failed or closed early, after http_get's retries
        raise OSError(f"{type(error).__name__}: {error}") from None


def _resolve(path: str | Path, split: str | None, cache_dir: str | Path | None) -> tuple[Path, str]:
    """Find the folder holding news.tsv/behaviors.tsv and the split's display name."""
    folder = Path(path)
    if folder.is_dir():
        if split is not None and (folder / split / "behaviors.tsv").is_file():
            return folder / split, f"{folder.name}_{split}"
        if (folder / "behaviors.tsv").is_file():
            if split is not None and not names_split(folder, split):
                raise FileNotFoundError(
                    f"{folder}: split {split!r} not found (the folder is one split, with behaviors.tsv at its root, "
                    f"and has no {split}/ subfolder); leave --split out or name one of its subfolders"
                )
            return folder, folder.name
        raise FileNotFoundError(f"{folder} holds neither behaviors.tsv nor {split or '<split>'}/behaviors.tsv")
    name = str(path)
    if split is not None and not name.endswith(f"_{split}"):
        name = f"{name}_{split}"
    if not _MIND_NAME.fullmatch(name):
        raise FileNotFoundError(f"{path!r} is neither a folder nor a MIND split name such as 'MINDsmall_train'")
    return download_mind(name, cache_dir), name


def names_split(folder: Path, split: str) -> bool:
    """Whether a folder holding one split is that split by name (`dev`, `MINDsmall_dev`, `.../data/dev`)."""
    return folder.name == split or folder.name.endswith(f"_{split}")


def _read_news(path: Path, stats: Counter) -> ItemTable:
    table = ItemTable(DOMAIN_TEXT_FIELDS["mind"], stats)
    for number, fields in iter_fields(path, len(_NEWS_COLUMNS), desc="Reading news.tsv"):
        record = dict(zip(_NEWS_COLUMNS, fields))
        if not record["item_id"]:
            raise DataFormatError(path, number, "empty news id")
        table.add(record["item_id"], record, path, number)
    return table


def _parse_impressions(text: str, path: Path, number: int) -> tuple[list[str], list[int]]:
    """`N1-1 N2-0` -> ids and labels; `N1 N2` (MIND-large test) -> ids and -1 labels. Mixing both is an error."""
    candidates, labels = [], []
    for token in text.split():
        item_id, dash, label = token.rpartition("-")
        if not dash:
            item_id, label = token, None
        elif label not in ("0", "1"):
            raise DataFormatError(path, number, f"bad impression token {token!r}: label must be 0 or 1")
        candidates.append(item_id)
        labels.append(UNLABELED if label is None else int(label))
    if len({label == UNLABELED for label in labels}) > 1:
        raise DataFormatError(path, number, "impressions mix labeled (N-1) and unlabeled (N) tokens")
    return candidates, labels


def load_mind(
    path: str | Path,
    split: str | None = None,
    *,
    history_from_impressions: bool = False,
    max_history: int | None = None,
    cache_dir: str | Path | None = None,
    strict_candidates: bool = False,
) -> RecommendationData:
    """Load one MIND split.

    Args:
        path: a folder holding `news.tsv` and `behaviors.tsv`; a folder with one such subfolder per split (then
            `split` picks it, e.g. the output of `make_synthetic_mind`); or an official split name
            ("MINDsmall_train", "MINDdemo_dev", "MINDlarge_test", or "MINDsmall" together with `split`), which is
            downloaded once (see `download_mind`).
        split: "train", "dev" or "test" when `path` does not name the split itself.
        history_from_impressions: also put the clicks of the same user's earlier impressions (strictly earlier
            time) in front of the behaviors file's history. Off by default: the file's history is MIND's own
            definition of "clicks before the impression".
        max_history: keep only the most recent items of each history (None keeps all).
        cache_dir: download folder for official split names.

    MIND lists history oldest first; it is reversed to most recent first. A candidate clicked in an impression is
    removed from that impression's history (`history_leak_removed`). Unknown news ids are dropped from histories
    (`unknown_history_item`) and candidates (`unknown_candidate_item`); impressions left without candidates are
    skipped (`skipped_no_candidates`); with `strict_candidates` an unknown candidate is a `DataFormatError` naming the
    impression and the id instead (a leaderboard file must rank every candidate). Impressions without `-label`
    suffixes (MIND-large test) get labels -1.
    Malformed lines raise `DataFormatError` naming file and line.
    """
    folder, split_name = _resolve(path, split, cache_dir)
    stats: Counter = Counter()
    news = _read_news(folder / "news.tsv", stats)

    rows = _read_behaviors(folder / "behaviors.tsv", news, stats, strict_candidates)
    if history_from_impressions:  # needs every impression's time at once; otherwise rows stream into Arrow
        rows = list(rows)
        for row, clicks in zip(rows, _earlier_clicks(rows)):
            row["history"] = clicks + row["history"]
    finished = (_finish(row, stats, max_history) for row in rows)
    return RecommendationData.from_rows(news.to_dataset(), finished, "mind", split_name, stats)


def _finish(row: dict, stats: Counter, max_history: int | None) -> dict:
    """The history cleaned (no own clicks, no repeats, at most `max_history`), the time as ISO-8601 text."""
    clicked = {c for c, y in zip(row["candidates"], row["labels"]) if y == 1}
    row["history"] = clean_history(row["history"], clicked, stats, max_history)
    row["time"] = row["time"].isoformat()
    return row


def _read_behaviors(behaviors_path: Path, news: ItemTable, stats: Counter, strict_candidates: bool) -> Iterator[dict]:
    """The impressions of behaviors.tsv, one row dict at a time (history most recent first, unknown ids dropped)."""
    for number, fields in iter_fields(behaviors_path, 5, desc="Reading behaviors.tsv"):
        impression_id, user_id, time_text, history_text, impressions_text = fields
        for column, (name, value) in enumerate((("impression id", impression_id), ("user id", user_id)), start=1):
            if not value.strip():  # "" would become one anonymous user (or impression) shared by every such line
                raise DataFormatError(behaviors_path, number, f"empty {name} (column {column})")
        try:
            time = datetime.strptime(time_text.strip(), _TIME_FORMAT)
        except ValueError:
            raise DataFormatError(
                behaviors_path, number, f"bad time {time_text!r}, expected like '11/15/2019 8:55:22 AM'"
            ) from None
        candidates, labels = _parse_impressions(impressions_text, behaviors_path, number)
        # `news.canonical` maps every id to one shared string object: MIND-large repeats ids millions of times.
        history = [news.canonical(item_id) for item_id in reversed(history_text.split())]  # MIND: oldest first
        known_history = [item_id for item_id in history if item_id is not None]
        stats["unknown_history_item"] += len(history) - len(known_history)
        kept = [(news.canonical(c), y) for c, y in zip(candidates, labels)]
        unknown = [c for c, (known, _) in zip(candidates, kept) if known is None]
        if unknown and strict_candidates:
            raise DataFormatError(
                behaviors_path, number, f"impression {impression_id!r}: candidates {unknown[:5]} are not in news.tsv"
            )
        kept = [(c, y) for c, y in kept if c is not None]
        stats["unknown_candidate_item"] += len(candidates) - len(kept)
        if not kept:
            stats["skipped_no_candidates"] += 1
            continue
        yield {
            "impression_id": impression_id,
            "user_id": user_id,
            "time": time,
            "history": known_history,
            "candidates": [c for c, _ in kept],
            "labels": [y for _, y in kept],
        }


def _earlier_clicks(rows: list[dict]) -> list[list[str]]:
    """For each row, the clicks of the same user's strictly earlier impressions, most recent first."""
    order = sorted(range(len(rows)), key=lambda i: rows[i]["time"])  # stable: file order breaks time ties
    clicks: dict[str, list[str]] = defaultdict(list)  # per user, oldest first
    result: list[list[str]] = [[] for _ in rows]
    pending: list[dict] = []  # impressions at the current timestamp, whose clicks are not "earlier" for each other
    for index in order:
        row = rows[index]
        if pending and pending[0]["time"] != row["time"]:
            for done in pending:
                clicks[done["user_id"]] += [c for c, y in zip(done["candidates"], done["labels"]) if y == 1]
            pending = []
        result[index] = clicks[row["user_id"]][::-1]
        pending.append(row)
    return result


def read_split(args: DataArguments, path: str, split: str) -> RecommendationData:
    """`embsum train --dataset mind`'s reading of one file (`sources.SOURCES["mind"]`): a MIND root or one split's
    folder."""
    return load_mind(path, split if Path(path, split).is_dir() else None)
