"""`user_histories`: each user's longest (latest on ties) history, read in two passes over column batches."""

from embsum_hf.data import user_histories
from embsum_hf.data.schema import RecommendationData, impressions_dataset, items_dataset


def test_user_histories_match_a_row_by_row_reading_over_many_batches():
    # 12,000 impressions span two of the first pass's batches and 12 of the second's
    items = items_dataset({"item_id": [f"N{i}" for i in range(50)], "title": [f"t{i}" for i in range(50)]})
    rows = []
    for n in range(12_000):
        user = f"U{(n * 7919) % 9001}"
        history = [f"N{(n + j) % 60}" for j in range(n % 5)]  # N50-N59 are not in the items table
        time = f"2019-11-{10 + n % 5}T00:00:00"
        rows.append(dict(impression_id=str(n), user_id=user, time=time, history=history, candidates=["N"], labels=[1]))
    data = RecommendationData(items, impressions_dataset(rows), "mind", "test")
    expected: dict[str, tuple] = {}
    for row in rows:  # the definition: longest history, the latest time on ties (later rows win exact ties)
        if row["user_id"] not in expected or (len(row["history"]), row["time"]) >= expected[row["user_id"]][:2]:
            expected[row["user_id"]] = (len(row["history"]), row["time"], row["history"])
    histories = list(user_histories(data))
    assert [user for user, _ in histories] == list(expected)  # order of first appearance
    lookup = {row["item_id"]: row for row in items.to_list()}
    for user, history in histories:
        assert history == [lookup[i] for i in expected[user][2] if i in lookup]
