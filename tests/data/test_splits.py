"""Deterministic evaluation splits."""

from embsum_hf.data import RecommendationData, split_by_time, split_dev_test
from embsum_hf.data.schema import impressions_dataset, items_dataset


def make_data(rows, split="MINDsmall_dev"):
    items = items_dataset({"item_id": ["a", "b"], "title": ["A", "B"]})
    return RecommendationData(items, impressions_dataset(rows), "custom", split, {"empty_history": 1})


def row(impression_id, user_id="u", time="2019-11-15T08:00:00"):
    return {
        "impression_id": impression_id,
        "user_id": user_id,
        "time": time,
        "history": [],
        "candidates": ["a", "b"],
        "labels": [1, 0],
    }


def ids(data):
    return list(data.impressions["impression_id"])


def test_split_dev_test_is_deterministic_disjoint_and_10_90():
    data = make_data([row(str(i), user_id=f"u{i % 7}") for i in range(200)])
    dev, test = split_dev_test(data, seed=42)
    assert (len(dev.impressions), len(test.impressions)) == (20, 180)
    assert not set(ids(dev)) & set(ids(test)) and set(ids(dev)) | set(ids(test)) == set(ids(data))
    assert ids(dev) == sorted(ids(dev), key=int)  # original order kept
    assert dev.split == "MINDsmall_dev:dev(10%)" and test.split == "MINDsmall_dev:test(90%)"
    assert dev.items is data.items and dev.stats == data.stats

    again, _ = split_dev_test(data, seed=42)
    other, _ = split_dev_test(data, seed=7)
    assert ids(again) == ids(dev) and ids(other) != ids(dev)


def test_split_by_time_holds_out_each_users_last_impressions():
    rows = [
        row("u1-late", "u1", "2019-11-15T12:00:00"),  # file order is not time order
        row("u1-a", "u1", "2019-11-15T08:00:00"),
        row("u1-b", "u1", "2019-11-15T09:00:00"),
        row("u1-c", "u1", "2019-11-15T10:00:00"),
        row("u2-a", "u2", "2019-11-15T08:00:00"),
        row("u2-b", "u2", "2019-11-15T09:00:00"),  # only two impressions: all train
    ]
    train, dev, test = split_by_time(make_data(rows, "ml-100k"))
    assert ids(test) == ["u1-late"] and ids(dev) == ["u1-c"]
    assert set(ids(train)) == {"u1-a", "u1-b", "u2-a", "u2-b"}
    assert (train.split, dev.split, test.split) == ("ml-100k:train", "ml-100k:dev", "ml-100k:test")
