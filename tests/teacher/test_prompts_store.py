"""Prompts, the heuristic teacher, the store's file format and recovery, `user_histories` and the CLI."""

import argparse
import dataclasses
import json

import datasets
import pytest

from embsum_hf.teacher import (
    HeuristicBackend,
    OpenAIChatBackend,
    SummaryRequest,
    SummaryStore,
    build_messages,
    build_prompt,
    prompt_hash,
    summarize_users,
    user_histories,
)
from embsum_hf.teacher.store import SummaryRecord


def news(i, words=5, category="sports"):
    return {"item_id": f"N{i}", "title": f"Title{i}", "abstract": " ".join(["word"] * words), "category": category}


def test_prompt_most_recent_first_at_most_30_items_abstract_cut_at_100_words():
    history = [news(i, words=150 if i == 0 else 5) for i in range(35)]  # history[0] is the most recent
    prompt = build_prompt(history, "mind")
    lines = [line for line in prompt.splitlines() if line[:1].isdigit()]
    assert len(lines) == 30
    assert lines[0].startswith("1. Title: Title0; Abstract: ") and lines[29].startswith("30. Title: Title29;")
    assert "Title30" not in prompt
    abstract = lines[0].split("Abstract: ")[1].split(";")[0]
    assert abstract.split() == ["word"] * 100 + ["..."]
    assert lines[1] == "2. Title: Title1; Abstract: word word word word word; Category: sports"
    assert "recommendation assistant" in prompt and "three sentences" in prompt
    assert "do not list or quote any specific news article" in prompt


def test_prompt_domains_and_messages():
    book = {"title": "Dune", "author": "Frank Herbert", "description": "Spice.", "genre": "science fiction"}
    assert "1. Title: Dune; Author: Frank Herbert; Description: Spice.; Genre: science fiction" in build_prompt(
        [book], "goodreads"
    )
    movie = {"title": "Heat", "year": "1995", "genres": "Action|Crime"}
    assert "movies a user liked" in build_prompt([movie], "movielens")
    assert "1. Title: Heat; Year: 1995; Genres: Action|Crime" in build_prompt([movie], "movies")
    assert "items a user engaged with" in build_prompt([{"name": "Widget", "text": "A tool"}], "custom")
    messages = build_messages([book], "books")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert build_prompt([book], "books") == messages[0]["content"] + "\n\n" + messages[1]["content"]
    with pytest.raises(ValueError, match="unknown domain 'podcasts'"):
        build_prompt([book], "podcasts")
    assert prompt_hash("a") != prompt_hash("b") and len(prompt_hash("a")) == 64


def test_heuristic_backend_is_deterministic_and_names_the_top_category():
    history = [news(0, category="travel"), news(1, category="sports"), news(2, category="sports")]
    history[1]["title"] = "Olympic marathon record broken"
    request = SummaryRequest.build("U1", history, "mind")
    first, second = HeuristicBackend().generate([request]), HeuristicBackend().generate([request])
    assert first == second
    summary = first[0]
    assert summary.startswith("The user mostly read news articles about sports and travel.")
    # "word" recurs in every abstract; the one title's "olympic" does not recur, so it is no theme
    assert "Recurring topics include word" in summary and "olympic" not in summary
    assert summary.endswith("The top category, sports, appears in 2 of the 3 news articles.")
    assert summary.count(".") == 3
    assert HeuristicBackend.name == "heuristic"


def test_store_drops_a_torn_last_line_and_rejects_corruption(tmp_path, caplog):
    path = tmp_path / "s.jsonl"
    with SummaryStore(path) as store:
        store.append([SummaryRecord.now("U1", "h1", "likes a", "heuristic"), SummaryRecord.now("U2", "h2", "b", "x")])
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"user_id": "U3", "prompt_ha')  # a write cut by a crash
    with SummaryStore(path) as store:
        assert store.as_dict() == {"U1": "likes a", "U2": "b"}
        assert "interrupted write" in caplog.text
        store.append([SummaryRecord.now("U3", "h3", "c", "x")])
    assert path.read_bytes().startswith(intact) and path.read_bytes().count(b"\n") == 3
    assert json.loads(path.read_text().splitlines()[2])["user_id"] == "U3"

    path.write_bytes(b"not json\n" + intact)
    with pytest.raises(ValueError, match=r"s.jsonl:1: corrupt summary record"):
        SummaryStore(path)


def test_store_exports(tmp_path):
    with SummaryStore(tmp_path / "s.jsonl") as store:
        store.append([SummaryRecord.now("U1", "h1", "old", "heuristic"), SummaryRecord.now("U2", "h2", "b", "h")])
        store.append([SummaryRecord.now("U1", "h9", "new", "heuristic")])
        assert store.is_current("U1", "h9") and not store.is_current("U1", "h1") and "U3" not in store
        table = store.to_dataset()
        assert table.column_names == ["user_id", "prompt_hash", "summary", "backend", "created"]
        assert table["summary"][:] == ["new", "b"]
        exported = store.write_jsonl(tmp_path / "export" / "summaries.jsonl")
    assert [json.loads(line) for line in exported.read_text().splitlines()] == [
        {"user_id": "U1", "summary": "new"},
        {"user_id": "U2", "summary": "b"},
    ]


@dataclasses.dataclass
class TinyData:
    """The `RecommendationData` contract: items, impressions, domain."""

    items: datasets.Dataset
    impressions: datasets.Dataset
    domain: str = "mind"


def tiny_data():
    items = datasets.Dataset.from_list([news(1), news(2, category="finance"), news(3, category="travel")])
    rows = [
        ("I1", "U1", "2019-11-10T09:00:00", ["N1"]),
        ("I2", "U2", "2019-11-10T10:00:00", ["N3", "N2"]),
        ("I3", "U1", "2019-11-11T09:00:00", ["N2", "N1", "N404"]),  # longest: wins; N404 is unknown
        ("I4", "U1", "2019-11-09T09:00:00", ["N1"]),
        ("I5", "U3", "2019-11-09T09:00:00", []),
    ]
    impressions = datasets.Dataset.from_list(
        [
            {"impression_id": i, "user_id": u, "time": t, "history": h, "candidates": ["N1"], "labels": [1]}
            for i, u, t, h in rows
        ]
    )
    return TinyData(items, impressions)


def test_user_histories_takes_the_longest_history(caplog):
    histories = dict(user_histories(tiny_data()))
    assert list(histories) == ["U1", "U2", "U3"]
    assert [item["item_id"] for item in histories["U1"]] == ["N2", "N1"]
    assert histories["U2"][0] == news(3, category="travel")
    assert histories["U3"] == []
    assert "1 history items were not found" in caplog.text


def test_driver_counts_empty_histories_and_rejects_repeated_users(tmp_path, caplog):
    with SummaryStore(tmp_path / "s.jsonl") as store:
        stats = summarize_users(user_histories(tiny_data()), HeuristicBackend(), store, domain="mind", progress=False)
        assert (stats.done, stats.empty, stats.backend) == (2, 1, "heuristic")
        assert "U1" in store
    with SummaryStore(tmp_path / "s.jsonl") as store:
        other = OpenAIChatBackend("http://127.0.0.1:9/v1", "never-called")
        stats = summarize_users(user_histories(tiny_data()), other, store, domain="mind", progress=False)
        assert (stats.done, stats.skipped) == (0, 2)
        assert "kept 2 stored summaries written by other backends ({'heuristic': 2})" in caplog.text
        with pytest.raises(ValueError, match="user 'U9' appears twice"):
            summarize_users([("U9", [news(1)])] * 2, HeuristicBackend(), store, domain="mind", progress=False)


def test_cli_summarize(tmp_path, capsys):
    pytest.importorskip("embsum_hf.data.mind")
    from embsum_hf.commands import summarize

    (tmp_path / "mind").mkdir()
    (tmp_path / "mind" / "news.tsv").write_text(
        "N1\tsports\tnba\tLakers win\tThe Lakers won.\t\t[]\t[]\n"
        "N2\tfinance\tmarkets\tStocks rally\tMarkets rose.\t\t[]\t[]\n"
    )
    (tmp_path / "mind" / "behaviors.tsv").write_text(
        "1\tU1\t11/11/2019 9:05:58 AM\tN1 N2\tN1-0 N2-0 N3-1\n2\tU2\t11/11/2019 9:06:58 AM\tN2\tN1-1 N2-0\n"
    )
    parser = argparse.ArgumentParser()
    summarize.register(parser.add_subparsers())
    argv = ["summarize", "--data", str(tmp_path / "mind"), "--backend", "heuristic", "--no-progress"]
    argv += ["--output", str(tmp_path / "store.jsonl"), "--export", str(tmp_path / "summaries.jsonl")]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    assert "done 2, skipped 0, failed 0" in capsys.readouterr().out
    assert args.func(parser.parse_args(argv)) == 0
    assert "done 0, skipped 2, failed 0" in capsys.readouterr().out
    assert len((tmp_path / "summaries.jsonl").read_text().splitlines()) == 2
