"""Synthetic MIND generator: determinism, format, and a learnable (content, not popularity) signal."""

import json
import statistics
from collections import Counter

from embsum_hf.data import load_mind, load_summaries, make_synthetic_mind

SMALL = dict(num_users=40, num_news=120, num_train_impressions=80, num_dev_impressions=20)


def file_bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_deterministic_for_a_seed(tmp_path):
    a = file_bytes(make_synthetic_mind(tmp_path / "a", seed=3, **SMALL))
    b = file_bytes(make_synthetic_mind(tmp_path / "b", seed=3, **SMALL))
    c = file_bytes(make_synthetic_mind(tmp_path / "c", seed=4, **SMALL))
    assert set(a) == {"train/news.tsv", "train/behaviors.tsv", "dev/news.tsv", "dev/behaviors.tsv", "summaries.jsonl"}
    assert a == b and a != c


def test_loads_as_mind_and_is_chronological(tmp_path, assert_no_leakage):
    root = make_synthetic_mind(tmp_path / "syn", **SMALL)
    train, dev = load_mind(root, "train").validate(), load_mind(root, "dev").validate()
    assert_no_leakage(train)
    assert_no_leakage(dev)
    assert (len(train.impressions), len(dev.impressions), len(train.items)) == (80, 20, 120)
    assert train.split == "syn_train" and "history_leak_removed" not in train.stats
    times = list(train.impressions["time"]) + list(dev.impressions["time"])
    assert times == sorted(times)
    assert all(5 <= len(c) <= 20 for c in train.impressions["candidates"])
    assert all(1 in labels and 0 in labels for labels in train.impressions["labels"])
    summaries = load_summaries(root / "summaries.jsonl")
    assert set(summaries) >= set(train.impressions["user_id"])
    assert all(s.startswith("The user is interested in ") for s in summaries.values())
    first = json.loads((root / "summaries.jsonl").read_text().splitlines()[0])
    assert set(first) == {"user_id", "summary"}


def auc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_default_data_has_content_signal_but_no_popularity_signal(tmp_path):
    root = make_synthetic_mind(tmp_path / "syn")  # the `make demo` defaults
    train, dev = load_mind(root, "train"), load_mind(root, "dev")
    category = {item["item_id"]: item["category"] for item in train.items}
    histories = list(train.impressions["history"])
    lengths = [len(h) for h in histories]
    assert 0 in lengths and max(lengths) >= 60 and statistics.median(lengths) < 20  # long-tailed, some empty

    # clicked candidates share the category of a history item far more often than unclicked ones
    shares = {0: [], 1: []}
    for row in train.impressions:
        history_categories = {category[h] for h in row["history"]}
        for candidate, label in zip(row["candidates"], row["labels"]):
            shares[label].append(category[candidate] in history_categories)
    assert statistics.mean(shares[1]) > statistics.mean(shares[0]) + 0.3

    # a bag-of-categories "content model" ranks well; train click counts (popularity) barely beat random
    clicks = Counter(c for row in train.impressions for c, y in zip(row["candidates"], row["labels"]) if y == 1)
    content, popularity = [], []
    for row in dev.impressions:
        counts = Counter(category[h] for h in row["history"])
        content.append(auc([counts[category[c]] for c in row["candidates"]], row["labels"]))
        popularity.append(auc([clicks[c] for c in row["candidates"]], row["labels"]))
    assert statistics.mean(content) >= 0.75
    assert statistics.mean(popularity) < 0.6
