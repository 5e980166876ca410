"""RecommendationData invariants."""

import pytest

from embsum_hf.data import RecommendationData
from embsum_hf.data.schema import impressions_dataset, items_dataset


def make(item_ids, rows, domain="custom"):
    items = items_dataset({"item_id": item_ids, "title": [f"T{i}" for i in item_ids]})
    return RecommendationData(items, impressions_dataset(rows), domain, "test")


def row(history, candidates, labels, impression_id="1"):
    return {
        "impression_id": impression_id,
        "user_id": "u",
        "time": "",
        "history": history,
        "candidates": candidates,
        "labels": labels,
    }


def test_valid_data_and_lookup():
    data = make(["a", "b"], [row(["a"], ["b"], [1]), row(["b"], ["a"], [-1], "2")])
    assert data.validate() is data
    assert data.item_lookup() == {"a": {"title": "Ta"}, "b": {"title": "Tb"}}
    assert data.text_fields == ["title"]
    assert data.impressions.features["labels"].feature.dtype == "int8"


@pytest.mark.parametrize(
    "item_ids, rows, message",
    [
        (["a", "a"], [row([], ["a"], [1])], "duplicate item ids"),
        (["a", "b"], [row(["b"], ["b"], [1])], "own clicks"),
        (["a", "b"], [row(["z"], ["a"], [1])], "unknown items"),
        (["a", "b"], [row([], ["a", "b"], [1])], "2 candidates but 1 labels"),
        (["a", "b"], [row([], ["a", "b"], [1, -1])], "expected 0/1 or all -1"),
        (["a", "b"], [row([], [], [])], "no candidates"),
        (["a", "b"], [row([], ["a"], [1]), row([], ["b"], [0])], "duplicate impression id"),
    ],
)
def test_validate_reports_violations(item_ids, rows, message):
    with pytest.raises(ValueError, match=message):
        make(item_ids, rows).validate()


def test_validate_requires_domain_text_fields():
    with pytest.raises(ValueError, match="lacks the mind text columns"):
        make(["a"], [row([], ["a"], [1])], domain="mind").validate()
