"""File reading helpers shared by the loaders: line/record iteration with `path:line` errors, time parsing, items.

CSV/TSV and JSON lines are read here rather than with `datasets.load_dataset("csv"/"json")`, which cannot name a bad
line: it loads a row with a missing CSV field or an invalid UTF-8 line without an error, and names bad JSON by a row
of pyarrow's block, not the file's line (`benchmarks/io_loader_check.py`). Parquet is read with pyarrow and a
`datasets.Dataset` with its own batched iterator.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.utils import tqdm as hf_tqdm

from .schema import DataFormatError, items_dataset


def progress(iterable, desc: str, total: int | None = None):
    """A tqdm bar that honours `datasets.disable_progress_bars()` / `HF_DATASETS_DISABLE_PROGRESS_BARS`."""
    return hf_tqdm(iterable, desc=desc, total=total, unit=" rows", leave=False)


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _raw_lines(path: Path, desc: str | None) -> Iterator[bytes]:
    """The byte lines of `path`; a truncated or corrupted .gz is a `DataFormatError` naming the file and the line."""
    number = 0
    try:
        with _open_binary(path) as handle:
            for number, raw in enumerate(progress(handle, desc or f"Reading {path.name}"), start=1):
                yield raw
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataFormatError(path, number + 1, f"truncated or corrupted gzip data ({error})") from None


def _decoded_lines(path: Path, encoding: str, desc: str | None) -> Iterator[tuple[int, str]]:
    """Every line of `path` (blank ones included) with its 1-based number; invalid bytes raise with the number."""
    for number, raw in enumerate(_raw_lines(path, desc), start=1):
        try:
            line = raw.decode(encoding)
        except UnicodeDecodeError as error:
            message = f"not valid {encoding} ({error.reason} at byte {error.start})"
            raise DataFormatError(path, number, message) from None
        yield number, (line.removeprefix("\ufeff") if number == 1 else line)


def iter_lines(path: str | Path, *, encoding: str = "utf-8", desc: str | None = None) -> Iterator[tuple[int, str]]:
    """Yield `(1-based line number, line without its newline)` for the non-blank lines of a (possibly .gz) file.

    Lines are decoded one by one (rather than by `open(..., encoding=...)`) so an invalid byte sequence is reported
    as a `DataFormatError` with its line number. A UTF-8 byte-order mark is dropped.
    """
    for number, line in _decoded_lines(Path(path), encoding, desc):
        line = line.rstrip("\r\n")
        if line.strip():
            yield number, line


def iter_fields(
    path: str | Path, width: int, *, separator: str = "\t", encoding: str = "utf-8", desc: str | None = None
) -> Iterator[tuple[int, list[str]]]:
    """`iter_lines`, each line split on `separator` into exactly `width` fields; any other count is a
    `DataFormatError` naming the line."""
    kind = "tab" if separator == "\t" else repr(separator)
    for number, line in iter_lines(path, encoding=encoding, desc=desc):
        fields = line.split(separator)
        if len(fields) != width:
            raise DataFormatError(path, number, f"expected {width} {kind}-separated columns, got {len(fields)}")
        yield number, fields


def iter_rows(dataset: datasets.Dataset, batch_size: int = 1024) -> Iterator[dict[str, Any]]:
    """The rows of a `datasets.Dataset` as dicts, read in column batches: far faster than the Dataset's own row
    iterator, which formats one row at a time, and holding one batch at a time."""
    for batch in dataset.iter(batch_size=batch_size):
        names = list(batch)
        for values in zip(*batch.values()):
            yield dict(zip(names, values))


def iter_records(source: str | Path | datasets.Dataset) -> Iterator[tuple[int, dict[str, Any], str]]:
    """Yield `(line or row number, record, source name)` from a CSV/TSV/JSON-lines/parquet file or a Dataset.

    Formats follow the file suffix (`.csv`, `.tsv`, `.json`, `.jsonl`, `.ndjson`, `.parquet`, each text format
    optionally `.gz`; `.json` is read as JSON lines, like the UCSD Goodreads dumps). CSV numbers are the file's
    line numbers (the header is line 1); parquet and Dataset numbers are 1-based row numbers.
    """
    if isinstance(source, datasets.Dataset):
        name = f"<Dataset {source.info.dataset_name or 'in memory'}>"
        for number, row in enumerate(progress(iter_rows(source), "Reading dataset", len(source)), start=1):
            yield number, row, name
        return
    path = Path(source)
    suffixes = [s for s in path.suffixes if s != ".gz"]
    kind = suffixes[-1] if suffixes else ""
    if kind == ".parquet":  # read directly with pyarrow: no copy into the datasets cache
        number = 0
        try:
            batches = pq.ParquetFile(path).iter_batches()
            rows = (row for batch in batches for row in batch.to_pylist())
            for number, row in enumerate(progress(rows, f"Reading {path.name}"), start=1):
                yield number, row, str(path)
        except (pa.ArrowException, OSError) as error:  # not parquet, truncated, or a corrupted page
            if isinstance(error, FileNotFoundError):
                raise
            raise DataFormatError(path, None, f"unreadable parquet after row {number} ({error})") from None
    elif kind in (".json", ".jsonl", ".ndjson"):
        for number, line in iter_lines(path):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataFormatError(path, number, f"invalid JSON ({error.msg})") from None
            except (ValueError, RecursionError) as error:  # a 5,000-digit integer, nesting too deep to read
                raise DataFormatError(path, number, f"unreadable JSON ({error})") from None
            if not isinstance(record, dict):
                raise DataFormatError(path, number, f"expected a JSON object, got {type(record).__name__}")
            yield number, record, str(path)
    elif kind in (".csv", ".tsv"):
        # csv needs every physical line (blank ones too) so that `reader.line_num` is the file's line number.
        lines = (line for _, line in _decoded_lines(path, "utf-8", None))
        reader = csv.DictReader(lines, delimiter="," if kind == ".csv" else "\t")
        for record in reader:
            width = len(reader.fieldnames)
            if None in record:  # DictReader files surplus fields under the key None
                raise DataFormatError(path, reader.line_num, f"{width + len(record[None])} fields, header has {width}")
            if any(value is None for value in record.values()):
                raise DataFormatError(path, reader.line_num, f"fewer fields than the {width} header columns")
            yield reader.line_num, record, str(path)
    else:
        raise ValueError(
            f"{path}: unsupported file type {kind or '(none)'}; use .csv, .tsv, .jsonl, .json or .parquet"
        )


def scalar(value: Any, column: str, source: str | Path, number: int, *, required: bool = False) -> str:
    """
    The one rule for a field that becomes text (an id, a title): a string or a number, as a string; null is ""
    (refused when `required`, e.g. for ids, where it would become a user named "None"); objects, arrays and booleans
    are refused (they would become text like "['a', 'b']"). Refusals are `DataFormatError`s naming the field.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if required:
            raise DataFormatError(source, number, f"{column!r} is missing (null)")
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        kind = {dict: "an object", list: "an array", bool: "a boolean"}.get(type(value), type(value).__name__)
        raise DataFormatError(source, number, f"{column!r} must be a string or a number, got {kind}")
    text = str(value)
    if required and not text.strip():
        raise DataFormatError(source, number, f"{column!r} is empty")
    return text


def require_columns(record: dict[str, Any], columns: list[str], source: str, number: int) -> None:
    """Raise a `DataFormatError` naming the first of `columns` missing from `record`."""
    for column in columns:
        if column not in record:
            raise DataFormatError(source, number, f"missing required column {column!r} (found {sorted(record)})")


_TIME_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",  # MIND: 11/15/2019 8:55:22 AM
    "%a %b %d %H:%M:%S %z %Y",  # Goodreads: Fri Aug 25 13:55:02 -0700 2017
)


_LABELS = {"0": 0, "1": 1, "false": 0, "true": 1}


def parse_label(value: Any, column: str, source: str | Path, number: int) -> int:
    """A click label of a user's file: 0/1 or true/false (any case), else `DataFormatError` naming the line."""
    label = _LABELS.get(str(value).strip().lower())
    if label is None and isinstance(value, (int, float)) and value in (0, 1):
        label = int(value)
    if label is None:
        raise DataFormatError(source, number, f"label column {column!r} must be 0/1 or true/false, got {value!r}")
    return label


def parse_time(value: Any) -> datetime:
    """Parse a unix timestamp (seconds, or milliseconds when > 1e11), an ISO-8601 string or a MIND/Goodreads time.

    Timezone-aware results are converted to UTC; naive ones are kept naive (MIND times carry no zone). Raises
    `ValueError` on anything else; callers add the file and line.
    """
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"unrecognised time {value!r}")
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"time {value!r} is out of range") from None
    text = str(value).strip()
    if text.replace(".", "", 1).isdigit():
        return parse_time(float(text))
    candidates = [datetime.fromisoformat] + [lambda t, f=f: datetime.strptime(t, f) for f in _TIME_FORMATS]
    for parse in candidates:
        try:
            return parse_time(parse(text))
        except ValueError:
            continue
    raise ValueError(f"unrecognised time {text!r}")


def sort_key(time: datetime) -> float:
    """A comparable number for aware and naive datetimes alike (naive ones are read as UTC)."""
    return (time if time.tzinfo else time.replace(tzinfo=timezone.utc)).timestamp()


class ItemTable:
    """Collects item records, rejecting conflicting duplicates and counting exact ones.

    Args:
        fields: the text columns every item has (values are stored as strings; None becomes "").
        stats: the loader's counter; exact duplicate ids increment `duplicate_item_skipped`.
    """

    def __init__(self, fields: list[str] | tuple[str, ...], stats: Counter):
        self.fields = list(fields)
        self.stats = stats
        self._rows: dict[str, tuple[str, ...]] = {}
        self._ids: dict[str, str] = {}
        self._origin: dict[str, str] = {}

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._rows

    def canonical(self, item_id: str) -> str | None:
        """The stored id object equal to `item_id` (None if unknown), so repeated ids share one string."""
        return self._ids.get(item_id)

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, item_id: str, values: dict[str, Any], source: str | Path, number: int) -> None:
        """Add one item read at `source:number`; a duplicate id with different text is a `DataFormatError`."""
        row = tuple(scalar(values.get(name), name, source, number) for name in self.fields)
        if item_id in self._rows:
            if self._rows[item_id] != row:
                raise DataFormatError(
                    source,
                    number,
                    f"item id {item_id!r} already defined with different content at {self._origin[item_id]}",
                )
            self.stats["duplicate_item_skipped"] += 1
            return
        self._rows[item_id] = row
        self._ids[item_id] = item_id
        self._origin[item_id] = f"{source}:{number}"

    def to_dataset(self, keep: set[str] | None = None) -> datasets.Dataset:
        """The items table (`item_id` + fields), optionally restricted to the ids in `keep`, in insertion order."""
        ids = [item_id for item_id in self._rows if keep is None or item_id in keep]
        columns = {"item_id": ids}
        for index, name in enumerate(self.fields):
            columns[name] = [self._rows[item_id][index] for item_id in ids]
        return items_dataset(columns)


def read_item_table(
    source: str | Path | datasets.Dataset, id_column: str, text_columns: Sequence[str] | None, stats: Counter
) -> ItemTable:
    """A user's items table (`load_custom`, `load_impressions`): `id_column` and the text columns (default: every
    column of the first record but the id), each line checked and named on error."""
    table = None
    for number, record, name in iter_records(source):
        if table is None:  # the first record fixes the default text columns
            require_columns(record, [id_column], name, number)
            columns = list(text_columns) if text_columns is not None else [c for c in record if c != id_column]
            table = ItemTable(columns, stats)
        require_columns(record, [id_column, *table.fields], name, number)
        table.add(scalar(record[id_column], id_column, name, number, required=True), record, name, number)
    if table is None:
        raise ValueError(f"{source}: the items table is empty")
    return table
