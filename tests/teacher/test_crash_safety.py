"""The teacher never loses, duplicates or regenerates work: SIGKILL a real run halfway, then rerun."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from embsum_hf.teacher import HeuristicBackend, SummaryStore, summarize_users

REPO_ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = ["sports", "finance", "travel", "health", "music"]

# the driver in a child process; users arrive slowly (as from a slow teacher) so the parent can kill it mid-run
DRIVER = """
import json, sys, time
from embsum_hf.teacher import HeuristicBackend, SummaryStore, summarize_users

def slow(users):
    for user_id, history in users:
        time.sleep(0.03)
        yield user_id, history

users = json.load(open(sys.argv[1]))
with SummaryStore(sys.argv[2]) as store:
    summarize_users(slow(users), HeuristicBackend(), store, domain="news", batch_size=4, progress=False)
"""


def make_users(n):
    return [
        (
            f"U{i}",
            [
                {"title": f"Story {i} about {CATEGORIES[(i + j) % 5]} today", "category": CATEGORIES[(i + j) % 5]}
                for j in range(1 + i % 4)
            ],
        )
        for i in range(n)
    ]


def stored_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_sigkill_then_rerun_loses_and_duplicates_nothing(tmp_path):
    users = make_users(80)
    users_file, store_path = tmp_path / "users.json", tmp_path / "summaries.jsonl"
    users_file.write_text(json.dumps(users))
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(users_file), str(store_path)], env=env, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 90
    while (store_path.read_bytes().count(b"\n") if store_path.exists() else 0) < 12:
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline, "the driver wrote nothing in time"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stderr.close()

    with SummaryStore(store_path) as store:
        before = {record.user_id: record for record in store}
        assert 12 <= len(before) < len(users)  # killed halfway
        stats = summarize_users(users, HeuristicBackend(), store, domain="news", batch_size=4, progress=False)
        assert (stats.done, stats.skipped, stats.failed) == (len(users) - len(before), len(before), 0)
        after = {record.user_id: record for record in store}

    lines = stored_lines(store_path)
    assert len(lines) == len(users)  # no summary lost, none duplicated
    assert sorted(line["user_id"] for line in lines) == sorted(user_id for user_id, _ in users)
    assert all(after[user_id] == record for user_id, record in before.items())  # none regenerated


def test_changed_history_is_regenerated(tmp_path):
    users = make_users(6)
    path = tmp_path / "summaries.jsonl"
    with SummaryStore(path) as store:
        summarize_users(users, HeuristicBackend(), store, domain="news", progress=False)
        first = store.get("U2")
    users[2] = ("U2", [{"title": "Election results", "category": "politics"}, *users[2][1]])
    with SummaryStore(path) as store:
        stats = summarize_users(users, HeuristicBackend(), store, domain="news", progress=False)
        assert (stats.done, stats.skipped) == (1, 5)
        assert store.get("U2").prompt_hash != first.prompt_hash
        assert "politics" in store.as_dict()["U2"]
        assert len(store) == 6 and store.num_lines == 7
    with SummaryStore(path) as store:  # the latest record wins on reopen too
        assert store.get("U2").summary != first.summary
        assert len(store.to_dataset()) == 6
