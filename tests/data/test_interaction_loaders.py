"""Goodreads, MovieLens and custom loaders, and the shared impression builder behind them."""

import gzip
import json
from collections import Counter
from datetime import datetime, timezone

import datasets
import pytest

from embsum_hf.data import (
    DataFormatError,
    Interaction,
    build_impressions,
    load_custom,
    load_goodreads,
    load_movielens,
)


def write_jsonl(path, records):
    text = "".join(json.dumps(r) + "\n" for r in records)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def goodreads_time(day: int, hour: int = 12) -> str:
    return f"Mon Aug {day:02d} {hour:02d}:00:00 -0700 2017"


def book(book_id, title, shelves=(), authors=()):
    return {
        "book_id": book_id,
        "title": title,
        "authors": [{"author_id": a, "role": ""} for a in authors],
        "description": f"About {title}",
        "popular_shelves": [{"name": n, "count": str(c)} for n, c in shelves],
    }


@pytest.fixture
def goodreads_files(tmp_path):
    books = write_jsonl(
        tmp_path / "books.json.gz",
        [
            book(
                "B1",
                "One",
                [("to-read", 900), ("favorites", 500), ("currently-reading", 400), ("fantasy", 20), ("sci-fi", 20)],
                ["A1", "A2"],
            ),
            book("B2", "Two", [("to-read", 5)]),
            book("B3", "Three"),
            book("B4", "Four"),
            book("B5", "Five"),
            book("B6", "Six"),
            book("B7", "Seven"),
        ],
    )
    authors = write_jsonl(
        tmp_path / "authors.json", [{"author_id": "A1", "name": "Ann"}, {"author_id": "A2", "name": "Bo"}]
    )
    interactions = write_jsonl(
        tmp_path / "interactions.json",
        [  # deliberately not in time order
            {"user_id": "u1", "book_id": "B4", "rating": 4, "date_added": goodreads_time(4)},
            {"user_id": "u1", "book_id": "B1", "rating": 5, "date_added": goodreads_time(1)},
            {"user_id": "u1", "book_id": "B2", "rating": 3, "date_added": goodreads_time(2)},  # neutral: dropped
            {"user_id": "u1", "book_id": "B3", "rating": 1, "date_added": goodreads_time(3)},
            {"user_id": "u1", "book_id": "B5", "rating": 0, "date_added": goodreads_time(5)},  # unrated: dropped
            {"user_id": "u1", "book_id": "B9", "rating": 5, "date_added": goodreads_time(5)},  # unknown book
            {"user_id": "u1", "book_id": "B6", "rating": 5, "date_added": goodreads_time(6)},
            {"user_id": "u1", "book_id": "B7", "rating": 2, "date_added": goodreads_time(7)},
            {"user_id": "u2", "book_id": "B1", "rating": 2, "date_added": goodreads_time(1)},
        ],
    )
    return books, interactions, authors


def test_goodreads_protocol_history_and_fields(goodreads_files, assert_no_leakage):
    books, interactions, authors = goodreads_files
    data = load_goodreads(books, interactions, authors_path=authors, window_size=2).validate()
    assert_no_leakage(data)
    assert data.stats["dropped_neutral_rating"] == 1 and data.stats["dropped_unrated"] == 1
    assert data.stats["unknown_interaction_item"] == 1
    u1 = [row for row in data.impressions if row["user_id"] == "u1"]
    assert [row["candidates"] for row in u1] == [["B1", "B3"], ["B4", "B6"], ["B7"]]
    assert [row["labels"] for row in u1] == [[1, 0], [1, 1], [0]]
    assert [row["history"] for row in u1] == [[], ["B1"], ["B6", "B4", "B1"]]  # most recent first
    assert u1[0]["time"] == "2017-08-01T19:00:00+00:00"
    lookup = data.item_lookup()
    # genre: most-counted shelf outside to-read/favorites/currently-reading; ties keep the first listed
    assert lookup["B1"] == {"title": "One", "author": "Ann, Bo", "description": "About One", "genre": "fantasy"}
    # only books with a kept rating are items by default (B2: neutral, B5: unrated)
    assert set(lookup) == {"B1", "B3", "B4", "B6", "B7"}
    all_books = load_goodreads(books, interactions, keep_all_books=True).item_lookup()
    assert len(all_books) == 7 and all_books["B2"]["genre"] == ""  # only generic shelves


def test_goodreads_day_grouping_and_csv_timestamps(tmp_path, goodreads_files, assert_no_leakage):
    books, _, _ = goodreads_files
    csv_path = tmp_path / "interactions.csv"
    day = 86400
    csv_path.write_text(
        "user_id,book_id,rating,timestamp\n"
        f"u1,B1,5,{10 * day + 100}\n"
        f"u1,B3,4,{10 * day + 200}\n"
        f"u1,B4,2,{11 * day}\n"
        f"u1,B6,5,{12 * day}\n",
        encoding="utf-8",
    )
    data = load_goodreads(books, csv_path, grouping="day")
    assert_no_leakage(data)
    assert data.impressions["candidates"][:] == [["B1", "B3"], ["B4"], ["B6"]]
    assert data.impressions["history"][:] == [[], ["B3", "B1"], ["B3", "B1"]]
    assert data.items.column_names == ["item_id", "title", "author", "description", "genre"]
    assert data.item_lookup()["B1"]["author"] == ""  # no authors file


def test_goodreads_missing_column_and_bad_json(tmp_path, goodreads_files):
    books, _, _ = goodreads_files
    missing = write_jsonl(
        tmp_path / "missing.jsonl", [{"user_id": "u1", "book_id": "B1", "date_added": goodreads_time(1)}]
    )
    with pytest.raises(DataFormatError, match=r"missing\.jsonl:1: missing required column 'rating'"):
        load_goodreads(books, missing)
    broken = tmp_path / "broken.jsonl"
    good = {"user_id": "u1", "book_id": "B1", "rating": 5, "date_added": goodreads_time(1)}
    broken.write_text(json.dumps(good) + '\n{"user_id": \n')
    with pytest.raises(DataFormatError, match=r"broken\.jsonl:2: invalid JSON"):
        load_goodreads(books, broken)


def write_movielens(folder, ratings, extra_items=()):
    folder.mkdir()
    (folder / "u.genre").write_text("unknown|0\nAction|1\nComedy|2\n\n", encoding="iso-8859-1")
    items = [
        "1|Café Society (1995)|01-Jan-1995||http://x|0|1|1",
        "2|Mystery Film|01-Jan-1997||http://x|0|0|1",
        "3|Third (1996)|01-Jan-1996||http://x|0|1|0",
        "4|Fourth (1994)|||http://x|1|0|0",
        "5|Fifth (1993)|||http://x|0|0|1",
        *extra_items,
    ]
    (folder / "u.item").write_text("\n".join(items) + "\n", encoding="iso-8859-1")
    (folder / "u.data").write_text("\n".join("\t".join(map(str, r)) for r in ratings) + "\n")
    return folder


def test_movielens_fields_protocol_and_order(tmp_path, assert_no_leakage):
    ratings = [
        (1, 3, 4, 300),
        (1, 1, 5, 100),
        (1, 2, 3, 200),  # neutral: dropped
        (1, 4, 1, 400),
        (1, 5, 5, 500),
        (1, 99, 5, 600),  # unknown movie
        (2, 1, 2, 50),
    ]
    data = load_movielens(write_movielens(tmp_path / "ml-tiny", ratings), window_size=2).validate()
    assert_no_leakage(data)
    assert data.split == "ml-tiny" and data.domain == "movielens"
    assert data.item_lookup()["1"] == {"title": "Café Society", "year": "1995", "genres": "Action, Comedy"}
    assert data.item_lookup()["2"]["year"] == "1997"  # no year in the title: release date
    assert data.stats == {"dropped_neutral_rating": 1, "unknown_interaction_item": 1, "empty_history": 2}
    u1 = [row for row in data.impressions if row["user_id"] == "1"]
    assert [row["candidates"] for row in u1] == [["1", "3"], ["4", "5"]]
    assert [row["labels"] for row in u1] == [[1, 1], [0, 1]]
    assert u1[1]["history"] == ["3", "1"]
    assert u1[0]["time"] == "1970-01-01T00:01:40+00:00"
    assert data.impressions["impression_id"][:] == ["2_0", "1_0", "1_1"]  # chronological


def test_movielens_malformed_rating_line(tmp_path):
    folder = write_movielens(tmp_path / "ml", [(1, 1, 5, 100), (1, 2, "x", 200)])
    with pytest.raises(DataFormatError, match=r"u\.data:2: bad rating 'x'"):
        load_movielens(folder)


def test_movielens_bad_item_line(tmp_path):
    folder = write_movielens(tmp_path / "ml", [(1, 1, 5, 100)], extra_items=["6|Short|||"])
    with pytest.raises(DataFormatError, match=r"u\.item:6: expected 8"):
        load_movielens(folder)


@pytest.fixture
def custom_items(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("item_id,title,body\nI1,Alpha,a\nI2,Beta,b\nI3,Gamma,c\nI4,Delta,d\n", encoding="utf-8")
    return path


def test_custom_with_impression_column(tmp_path, custom_items, assert_no_leakage):
    logs = write_jsonl(
        tmp_path / "logs.jsonl",
        [
            {"user_id": "u1", "item_id": "I1", "label": 1, "timestamp": "2024-01-01T10:00:00", "imp": "a"},
            {"user_id": "u1", "item_id": "I2", "label": 0, "timestamp": "2024-01-01T10:00:00", "imp": "a"},
            {"user_id": "u1", "item_id": "I2", "label": 1, "timestamp": "2024-01-02T10:00:00", "imp": "b"},
            {"user_id": "u1", "item_id": "I3", "label": 0, "timestamp": "2024-01-02T10:00:00", "imp": "b"},
            {"user_id": "u1", "item_id": "I1", "label": 1, "timestamp": "2024-01-03T10:00:00", "imp": "c"},
            {"user_id": "u1", "item_id": "I4", "label": 0, "timestamp": "2024-01-03T10:00:00", "imp": "c"},
            {"user_id": "u1", "item_id": "I9", "label": 0, "timestamp": "2024-01-03T10:00:00", "imp": "c"},
        ],
    )
    data = load_custom(custom_items, logs, impression_column="imp").validate()
    assert_no_leakage(data)
    assert data.text_fields == ["title", "body"] and data.domain == "custom"
    rows = {row["impression_id"]: row for row in data.impressions}
    assert rows["a"]["history"] == [] and rows["b"]["history"] == ["I1"]
    assert rows["c"]["history"] == ["I2"]  # I1 is clicked again in c: a leak, removed
    assert rows["c"]["candidates"] == ["I1", "I4"] and rows["c"]["labels"] == [1, 0]
    assert data.stats["history_leak_removed"] == 1 and data.stats["unknown_interaction_item"] == 1


def test_custom_from_datasets_grouped_by_time(custom_items):
    items = datasets.Dataset.from_dict({"id": ["I1", "I2", "I3"], "title": ["A", "B", "C"], "extra": ["x", "y", "z"]})
    logs = datasets.Dataset.from_dict(
        {
            "user": ["u1", "u1", "u1", "u1"],
            "item_id": ["I1", "I2", "I3", "I1"],
            "clicked": [True, False, True, False],
            "timestamp": [1_700_000_000, 1_700_000_000, 1_700_000_500, 1_700_000_500],
        }
    )
    data = load_custom(items, logs, id_column="id", text_columns=["title"], user_column="user", label_column="clicked")
    assert data.items.column_names == ["item_id", "title"]
    assert data.impressions["candidates"][:] == [["I1", "I2"], ["I3", "I1"]]
    assert data.impressions["labels"][:] == [[1, 0], [1, 0]]
    assert data.impressions["history"][:] == [[], ["I1"]]

    items.to_parquet(str(custom_items.with_suffix(".parquet")))
    from_parquet = load_custom(
        custom_items.with_suffix(".parquet"), logs, id_column="id", user_column="user", label_column="clicked"
    )
    assert from_parquet.item_lookup()["I2"] == {"title": "B", "extra": "y"}  # default: every non-id column

    unlabeled = load_custom(items, logs, id_column="id", user_column="user", label_column=None).validate()
    assert {y for labels in unlabeled.impressions["labels"] for y in labels} == {-1}


def test_custom_errors_name_column_file_and_line(tmp_path, custom_items):
    no_label = tmp_path / "logs.csv"
    no_label.write_text("user_id,item_id,timestamp\nu1,I1,5\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"logs\.csv:2: missing required column 'label'"):
        load_custom(custom_items, no_label)

    bad_label = tmp_path / "bad.csv"
    bad_label.write_text("user_id,item_id,label,timestamp\nu1,I1,1,5\n\nu1,I2,2,6\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.csv:4: label column 'label' must be 0/1"):
        load_custom(custom_items, bad_label)

    shared = tmp_path / "shared.csv"
    shared.write_text("user_id,item_id,label,timestamp,imp\nu1,I1,1,5,a\nu2,I2,0,5,a\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"shared\.csv:3: impression 'a' belongs to user 'u1'"):
        load_custom(custom_items, shared, impression_column="imp")

    items_without_id = tmp_path / "items.jsonl"
    write_jsonl(items_without_id, [{"news": "I1", "title": "x"}])
    with pytest.raises(DataFormatError, match=r"items\.jsonl:1: missing required column 'item_id'"):
        load_custom(items_without_id, shared)

    bad_time = tmp_path / "time.csv"
    bad_time.write_text("user_id,item_id,label,timestamp\nu1,I1,1,yesterday\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"time\.csv:2: column 'timestamp'"):
        load_custom(custom_items, bad_time)


def test_build_impressions_strictly_before_and_duplicates():
    def at(seconds):
        return datetime.fromtimestamp(seconds, tz=timezone.utc)

    stats = Counter()
    events = [
        Interaction("u", "a", at(1), 1),
        Interaction("u", "b", at(2), 1),
        Interaction("u", "c", at(2), 1),  # same time as b, but lands in the next window
        Interaction("u", "d", at(3), 0),
        Interaction("u", "a", at(0), 0),  # an older rating of a: the latest one wins
    ]
    rows = build_impressions(events, grouping="window", window_size=2, stats=stats)
    assert [r["candidates"] for r in rows] == [["a", "b"], ["c", "d"]]
    assert rows[1]["history"] == ["a"]  # b shares c's time, so it is not strictly before
    assert stats["duplicate_interaction_dropped"] == 1
    with pytest.raises(ValueError, match="grouping"):
        build_impressions(events, grouping="week", stats=stats)


def test_build_impressions_with_overlapping_explicit_impressions():
    def at(seconds):
        return datetime.fromtimestamp(seconds, tz=timezone.utc)

    events = [
        Interaction("u", "i1", at(1), 1, "x"),
        Interaction("u", "i2", at(5), 1, "x"),  # x spans t1..t5
        Interaction("u", "i3", at(3), 1, "y"),
        Interaction("u", "i4", at(4), 1, "z"),
        Interaction("u", "i5", at(4), 0, "z"),
    ]
    rows = {r["impression_id"]: r for r in build_impressions(events, grouping="impression", stats=Counter())}
    assert rows["z"]["history"] == ["i3", "i1"]  # positives strictly before t4, most recent first; not i2 (t5)
    assert rows["x"]["history"] == [] and rows["y"]["history"] == ["i1"]


def test_custom_dataset_logs_over_several_read_batches_keep_rows_and_numbers():
    """A `datasets.Dataset` log is read in column batches of 1,024 rows: every row arrives once with its own values,
    and an error names the Dataset row number past the first batch."""
    items = datasets.Dataset.from_dict({"item_id": [f"I{n}" for n in range(5)], "title": list("abcde")})
    count = 2_500
    logs = {
        "user_id": [f"u{n % 7}" for n in range(count)],
        "item_id": [f"I{n % 5}" for n in range(count)],
        "label": [int(n % 3 == 0) for n in range(count)],
        "timestamp": [1_700_000_000 + n for n in range(count)],  # one row per timestamp: one impression per row
    }
    data = load_custom(items, datasets.Dataset.from_dict(logs), grouping="time")
    assert len(data.impressions) == count
    for row in data.impressions:
        n = int(datetime.fromisoformat(row["time"]).timestamp()) - 1_700_000_000
        assert (row["user_id"], row["candidates"], row["labels"]) == (
            logs["user_id"][n],
            [logs["item_id"][n]],
            [logs["label"][n]],
        )

    logs["label"][2_000] = 7  # row 2,001 of the Dataset (numbers are 1-based)
    with pytest.raises(DataFormatError, match=r"<Dataset in memory>:2001: label column 'label' must be 0/1"):
        load_custom(items, datasets.Dataset.from_dict(logs), grouping="time")
