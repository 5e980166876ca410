"""Training rows, negative sampling, teacher summaries."""

import logging
from collections import Counter

import datasets
import pytest

from embsum_hf.data import DataFormatError, build_training_rows, load_summaries, sample_negatives
from embsum_hf.data.rows import history_click_rows, sample_unread
from embsum_hf.data.schema import impressions_dataset


def imp(impression_id, user_id, candidates, labels, history=("h1",)):
    return {
        "impression_id": impression_id,
        "user_id": user_id,
        "time": "",
        "history": list(history),
        "candidates": candidates,
        "labels": labels,
    }


def test_build_training_rows_one_row_per_click(caplog):
    impressions = impressions_dataset(
        [
            imp("1", "u1", ["a", "b", "c", "d"], [1, 0, 1, 0]),
            imp("2", "u2", ["e", "f"], [1, 1]),  # no negative: both clicks skipped
            imp("3", "u2", ["g", "h"], [0, 0]),  # no click
            imp("4", "u2", ["i", "j"], [0, 1], history=()),
        ]
    )
    with caplog.at_level(logging.INFO, logger="embsum_hf.data.rows"):
        rows = build_training_rows(impressions, summaries={"u1": "Likes a."})
    assert rows.column_names == ["user_id", "impression_id", "history", "positive", "negative_pool", "summary"]
    assert rows.to_list() == [
        {
            "user_id": "u1",
            "impression_id": "1",
            "history": ["h1"],
            "positive": "a",
            "negative_pool": ["b", "d"],
            "summary": "Likes a.",
        },
        {
            "user_id": "u1",
            "impression_id": "1",
            "history": ["h1"],
            "positive": "c",
            "negative_pool": ["b", "d"],
            "summary": "Likes a.",
        },
        {
            "user_id": "u2",
            "impression_id": "4",
            "history": [],
            "positive": "j",
            "negative_pool": ["i"],
            "summary": None,
        },
    ]
    assert "'skipped_no_negative': 2" in caplog.text and "'impression_without_click': 1" in caplog.text


def test_build_training_rows_rejects_unlabeled():
    with pytest.raises(ValueError, match="unlabeled"):
        build_training_rows(impressions_dataset([imp("1", "u1", ["a", "b"], [-1, -1])]))


def test_sample_negatives_deterministic_varies_and_replacement_rule():
    pool = [f"n{i}" for i in range(20)]
    first = sample_negatives(pool, 4, seed=0, epoch=0, index=5)
    assert first == sample_negatives(pool, 4, seed=0, epoch=0, index=5)
    assert len(set(first)) == 4 and set(first) <= set(pool)  # without replacement
    assert first != sample_negatives(pool, 4, seed=0, epoch=1, index=5)
    assert first != sample_negatives(pool, 4, seed=0, epoch=0, index=6)
    assert first != sample_negatives(pool, 4, seed=1, epoch=0, index=5)
    assert len({tuple(sample_negatives(pool, 4, seed=0, epoch=e, index=5)) for e in range(10)}) > 5

    small = sample_negatives(["x", "y"], 5, seed=0, epoch=0, index=0)  # with replacement, every item used
    assert len(small) == 5 and set(small) == {"x", "y"}
    assert sample_negatives(["x", "y"], 2, seed=0, epoch=0, index=0) in (["x", "y"], ["y", "x"])
    assert sample_negatives([], 0, seed=0, epoch=0, index=0) == []
    with pytest.raises(ValueError, match="empty pool"):
        sample_negatives([], 1, seed=0, epoch=0, index=0)


def test_load_summaries(tmp_path):
    path = tmp_path / "summaries.jsonl"
    path.write_text(
        '{"user_id": "u1", "summary": "Likes space."}\n\n{"user_id": "u2", "summary": "Likes food."}\n'
        '{"user_id": "u1", "summary": "Likes space."}\n',
        encoding="utf-8",
    )
    assert load_summaries(path) == {"u1": "Likes space.", "u2": "Likes food."}
    dataset = datasets.Dataset.from_dict({"user_id": ["u3"], "summary": ["Likes jazz."]})
    assert load_summaries(dataset) == {"u3": "Likes jazz."}

    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"user_id": "u2", "summary": "Likes tennis."}\n')
    with pytest.raises(
        DataFormatError, match=r"summaries\.jsonl:5: second, different summary for user 'u2' \(first at .*:3\)"
    ):
        load_summaries(path)

    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"user_id": "u1", "text": "x"}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"missing\.jsonl:1: missing required column 'summary'"):
        load_summaries(missing)


def test_build_training_rows_in_chunks_gives_the_same_rows_and_counts(monkeypatch, caplog):
    # the rows are turned into Arrow a chunk at a time (MINDlarge: 3.3M rows): chunk edges change nothing
    impressions = impressions_dataset(
        [imp(str(n), f"u{n % 3}", ["a", "b", "c"], [1, n % 2, 0], history=[f"h{n}"]) for n in range(7)]
    )
    summaries = {"u0": "Likes a.", "u2": "Likes c."}
    whole = build_training_rows(impressions, summaries=summaries)
    monkeypatch.setattr("embsum_hf.data.rows._ROWS_PER_CHUNK", 2)
    with caplog.at_level(logging.INFO, logger="embsum_hf.data.rows"):
        chunked = build_training_rows(impressions, summaries=summaries)
    assert len(whole) == 10 and chunked.to_list() == whole.to_list()
    assert chunked.features == whole.features
    assert "'with_summary': 7" in caplog.text  # counted over every chunk, not the last one


def test_history_click_rows_train_on_the_most_recent_reads_with_the_older_ones_as_history():
    # histories most recent first: u1 read a, then b, then c, then clicked d
    impressions = impressions_dataset(
        [
            imp("1", "u1", ["d", "x", "y"], [1, 0, 0], history=("c", "b", "a")),
            imp("2", "u2", ["e", "f", "z"], [1, 1, 0], history=("g",)),  # one read before: no history-click row
            imp("3", "u3", ["e", "f", "z"], [1, 1, 0], history=("g", "h")),  # two clicks, two rows: one g <- [h]
            imp("4", "u3", ["i", "z"], [1, 0], history=("g", "h")),  # the same history again: g <- [h] once
        ]
    )
    rows = build_training_rows(impressions, summaries={"u1": "Likes a."})
    catalogue = [f"item{i}" for i in range(50)] + ["a", "b", "c", "d", "x", "y"]
    catalogue += ["e", "f", "g", "h", "i"]
    every = history_click_rows(rows, catalogue, per_user=8, seed=1)
    assert [(r["user_id"], r["impression_id"], r["positive"], r["history"]) for r in every] == [
        ("u1", "1/read-0", "c", ["b", "a"]),
        ("u1", "1/read-1", "b", ["a"]),
        ("u3", "3/read-0", "g", ["h"]),
    ]
    reads = {"u1": {"a", "b", "c", "d"}, "u3": {"e", "f", "g", "h", "i"}}  # histories and clicks
    for row in every:
        assert row["summary"] is None  # the teacher wrote it from later reads
        size = {"u1": 2, "u3": 1}[row["user_id"]]  # as many as the user's (first) row has
        assert len(row["negative_pool"]) == len(set(row["negative_pool"])) == size
        assert not set(row["negative_pool"]) & reads[row["user_id"]]  # never one of the user's reads
    assert every["negative_pool"] != history_click_rows(rows, catalogue, per_user=8, seed=2)["negative_pool"]
    assert every.to_list() == history_click_rows(rows, catalogue, per_user=8, seed=1).to_list()
    assert history_click_rows(rows, catalogue, per_user=1, seed=1).to_list() == every.select([0, 2]).to_list()
    assert len(history_click_rows(rows, catalogue, per_user=0, seed=1)) == 0


def test_sample_unread_draws_distinct_unread_items_deterministically():
    catalogue = [f"i{n}" for n in range(40)]
    reads = {f"i{n}" for n in range(10)}
    drawn = sample_unread(catalogue, reads, 12, key="7/u1")
    assert len(drawn) == len(set(drawn)) == 12 and not set(drawn) & reads
    assert drawn == sample_unread(catalogue, reads, 12, key="7/u1") != sample_unread(catalogue, reads, 12, key="8/u1")
    # uniform over the 30 unread items: 300 draws of 12 give each about 120 times
    counts = Counter(item for n in range(300) for item in sample_unread(catalogue, reads, 12, key=str(n)))
    assert set(counts) == set(catalogue) - reads and 80 < min(counts.values()) <= max(counts.values()) < 160
    assert sorted(sample_unread(catalogue[:12], reads, 5, key="x")) == ["i10", "i11"]  # fewer: only 2 are unread
    assert sample_unread(catalogue, reads, 0, key="x") == []
