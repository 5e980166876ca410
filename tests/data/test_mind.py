"""MIND loader: parsing, history order, leakage, unlabeled splits, malformed input."""

from pathlib import Path

import pytest

from embsum_hf.data import DataFormatError, load_mind

T1, T2, T3 = "11/15/2019 8:55:22 AM", "11/15/2019 9:00:00 AM", "11/16/2019 1:05:00 PM"


def news_line(news_id: str, category: str = "sports", title: str | None = None) -> str:
    return "\t".join(
        [news_id, category, "football", title or f"Title {news_id}", f"Abstract {news_id}", "url", "[]", "[]"]
    )


def write_mind(folder: Path, behaviors: list[str], news_ids=("N1", "N2", "N3", "N4", "N5"), extra_news=()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [news_line(n) for n in news_ids] + list(extra_news)
    (folder / "news.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "behaviors.tsv").write_text("\n".join(behaviors) + "\n", encoding="utf-8")
    return folder


def test_parses_fields_labels_and_most_recent_first_history(tmp_path):
    folder = write_mind(tmp_path / "MINDsmall_train", [f"7\tU1\t{T1}\tN1 N2 N3\tN4-1 N5-0"])
    data = load_mind(folder).validate()
    assert data.split == "MINDsmall_train" and data.domain == "mind"
    assert data.items.column_names == ["item_id", "title", "abstract", "category", "subcategory"]
    row = data.impressions[0]
    assert row == {
        "impression_id": "7",
        "user_id": "U1",
        "time": "2019-11-15T08:55:22",
        "history": ["N3", "N2", "N1"],  # MIND lists oldest first
        "candidates": ["N4", "N5"],
        "labels": [1, 0],
    }
    assert data.item_lookup()["N4"] == {
        "title": "Title N4",
        "abstract": "Abstract N4",
        "category": "sports",
        "subcategory": "football",
    }


def test_own_clicks_are_removed_from_history_and_counted(tmp_path):
    folder = write_mind(tmp_path / "d", [f"1\tU1\t{T1}\tN1 N4 N5\tN4-1 N5-0 N2-1"])
    data = load_mind(folder).validate()
    # N4 (clicked here) leaks; N5 was shown but not clicked, so it may stay.
    assert data.impressions[0]["history"] == ["N5", "N1"]
    assert data.stats["history_leak_removed"] == 1


def test_unlabeled_test_split_gets_minus_one_labels(tmp_path):
    folder = write_mind(tmp_path / "MINDlarge_test", [f"1\tU1\t{T1}\tN1\tN4 N5 N2", f"2\tU2\t{T2}\t\tN3"])
    data = load_mind(folder).validate()
    assert data.impressions["labels"][:] == [[-1, -1, -1], [-1]]
    assert data.impressions[1]["history"] == [] and data.stats["empty_history"] == 1


@pytest.mark.parametrize(
    "bad_line, message",
    [
        (f"2\tU1\t{T1}\tN1\tN4-x N5-0", "label must be 0 or 1"),
        (f"2\tU1\t{T1}\tN1\tN4-1 N5", "mix labeled"),
        (f"2\tU1\t{T1}\tN1", "expected 5 tab-separated columns, got 4"),
        ("2\tU1\t2019-13-45 8:55\tN1\tN4-1", "bad time"),
    ],
)
def test_malformed_behaviors_line_names_file_and_line(tmp_path, bad_line, message):
    folder = write_mind(tmp_path / "d", [f"1\tU1\t{T1}\tN1\tN4-1 N5-0", bad_line])
    with pytest.raises(DataFormatError, match=message) as error:
        load_mind(folder)
    assert str(error.value).startswith(f"{folder / 'behaviors.tsv'}:2:")
    assert error.value.line == 2


def test_malformed_news_line_names_file_and_line(tmp_path):
    folder = write_mind(tmp_path / "d", [f"1\tU1\t{T1}\tN1\tN2-1"], extra_news=["N9\tsports\tonly three"])
    with pytest.raises(DataFormatError, match=r"news\.tsv:6: expected 8 tab-separated columns, got 3"):
        load_mind(folder)


def test_invalid_utf8_names_file_and_line(tmp_path):
    folder = write_mind(tmp_path / "d", [f"1\tU1\t{T1}\tN1\tN2-1"])
    with open(folder / "news.tsv", "ab") as handle:
        handle.write(news_line("N6").encode().replace(b"Title", b"Ti\xfftle") + b"\n")
    with pytest.raises(DataFormatError, match=r"news\.tsv:6: not valid utf-8"):
        load_mind(folder)


def test_unknown_news_ids_are_dropped_and_counted(tmp_path):
    folder = write_mind(
        tmp_path / "d",
        [
            f"1\tU1\t{T1}\tN1 X1 N2 X2\tN4-1 X3-0 N5-0",
            f"2\tU2\t{T2}\tN1\tX4-1 X5-0",  # every candidate unknown -> impression skipped
        ],
    )
    data = load_mind(folder).validate()
    assert data.impressions["impression_id"][:] == ["1"]
    assert data.impressions[0]["history"] == ["N2", "N1"]
    assert data.impressions[0]["candidates"] == ["N4", "N5"] and data.impressions[0]["labels"] == [1, 0]
    assert data.stats["unknown_history_item"] == 2
    assert data.stats["unknown_candidate_item"] == 3
    assert data.stats["skipped_no_candidates"] == 1


def test_duplicate_news_ids(tmp_path):
    exact = write_mind(tmp_path / "a", [f"1\tU1\t{T1}\tN1\tN2-1"], extra_news=[news_line("N3")])
    data = load_mind(exact)
    assert len(data.items) == 5 and data.stats["duplicate_item_skipped"] == 1

    conflicting = write_mind(tmp_path / "b", [f"1\tU1\t{T1}\tN1\tN2-1"], extra_news=[news_line("N3", title="Other")])
    with pytest.raises(
        DataFormatError, match=r"news\.tsv:6: item id 'N3' already defined with different content at .*news\.tsv:3"
    ):
        load_mind(conflicting)


def test_history_from_impressions_adds_only_strictly_earlier_clicks(tmp_path):
    folder = write_mind(
        tmp_path / "d",
        [
            f"1\tU1\t{T2}\tN1\tN2-1 N3-0",  # file order is not time order
            f"2\tU1\t{T1}\tN1\tN4-1 N5-0",
            f"3\tU1\t{T2}\tN1\tN5-1 N3-0",  # same time as impression 1: not "earlier"
            f"4\tU1\t{T3}\tN1\tN4-1 N3-0",  # N4 was clicked earlier but is this impression's own click
            f"5\tU2\t{T3}\tN1\tN3-1 N2-0",  # other users' clicks never enter
        ],
    )
    plain = load_mind(folder)
    assert all(h == ["N1"] for h in plain.impressions["history"][:4])

    data = load_mind(folder, history_from_impressions=True).validate()
    histories = dict(zip(data.impressions["impression_id"], data.impressions["history"]))
    assert histories["2"] == ["N1"]
    assert histories["1"] == ["N4", "N1"]
    assert histories["3"] == ["N4", "N1"]
    assert histories["4"] == ["N5", "N2", "N1"]  # most recent first, N4 removed as a leak
    assert histories["5"] == ["N1"]
    assert data.stats["history_leak_removed"] == 1


def test_max_history_keeps_most_recent(tmp_path):
    folder = write_mind(tmp_path / "d", [f"1\tU1\t{T1}\tN1 N2 N3\tN4-1"])
    assert load_mind(folder, max_history=2).impressions[0]["history"] == ["N3", "N2"]


def test_path_resolution(tmp_path):
    write_mind(tmp_path / "synthetic" / "dev", [f"1\tU1\t{T1}\tN1\tN4-1"])
    assert load_mind(tmp_path / "synthetic", "dev").split == "synthetic_dev"
    with pytest.raises(FileNotFoundError, match="neither"):
        load_mind(tmp_path / "synthetic")
    with pytest.raises(FileNotFoundError, match="MIND split name"):
        load_mind(tmp_path / "does-not-exist")


def test_impressions_are_built_in_chunks_from_a_stream_with_the_same_rows_and_counts(tmp_path, monkeypatch):
    # behaviors.tsv is read as a stream into Arrow chunks (MINDlarge: 2.2M impressions); chunk edges change nothing,
    # and counts made while the stream is read (unknown ids, leaks, empty histories) all reach `stats`
    behaviors = [
        f"{n}\tU{n % 3}\t{T1 if n % 2 else T2}\t{'N1 N9 N2' if n % 3 else ''}\tN3-1 N4-0 N8-0 N{n % 2 + 1}-1"
        for n in range(1, 8)
    ]
    folder = write_mind(tmp_path / "d", behaviors)
    whole = load_mind(folder, history_from_impressions=False)
    monkeypatch.setattr("embsum_hf.data.schema.IMPRESSION_CHUNK_ROWS", 2)
    chunked = load_mind(folder)
    assert len(chunked.impressions) == 7 and chunked.impressions.to_list() == whole.impressions.to_list()
    assert chunked.stats == whole.stats
    assert whole.stats["unknown_candidate_item"] == 7 and whole.stats["unknown_history_item"] == 5
    assert whole.stats["empty_history"] == 2 and whole.stats["history_leak_removed"] > 0
    with_clicks = load_mind(folder, history_from_impressions=True)  # the path that needs every row at once
    assert with_clicks.impressions["impression_id"] == whole.impressions["impression_id"]
