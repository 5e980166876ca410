"""RecommendationData invariants."""

import pytest

from embsum_hf.data import SAVED_DATA_NAME, RecommendationData, load_data
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


def test_saved_data_round_trips_and_load_data_finds_it(tmp_path):
    data = make(["a", "b"], [row(["a"], ["b"], [1]), row(["b"], ["a"], [0], "2")])
    data.stats = {"skipped_unknown_item": 2}
    data.save_to_disk(tmp_path / "shop" / "test")
    for loaded in (
        RecommendationData.load_from_disk(tmp_path / "shop" / "test"),
        load_data(tmp_path / "shop" / "test"),
        load_data(tmp_path / "shop", "test"),  # a folder of splits, as `embsum train --save_splits` writes it
    ):
        assert (loaded.domain, loaded.split, loaded.stats) == ("custom", "test", {"skipped_unknown_item": 2})
        assert loaded.items.to_list() == data.items.to_list()
        assert loaded.impressions.to_list() == data.impressions.to_list()
        assert loaded.impressions.features == data.impressions.features
    # without the metadata file (written last) a folder is not saved data: it is read as MIND, and refused
    (tmp_path / "shop" / "test" / SAVED_DATA_NAME).unlink()
    with pytest.raises(FileNotFoundError, match="holds neither behaviors.tsv"):
        load_data(tmp_path / "shop" / "test")
    with pytest.raises(FileNotFoundError, match="no saved RecommendationData"):
        RecommendationData.load_from_disk(tmp_path / "shop" / "test")


def test_the_impressions_table_is_built_without_cyclic_collections_and_the_collector_comes_back():
    import gc

    from embsum_hf.data.schema import impressions_dataset

    seen = []

    def rows():
        for n in range(3):
            seen.append(gc.isenabled())
            yield {
                "impression_id": f"I{n}",
                "user_id": "U",
                "time": "",
                "history": ["N1"],
                "candidates": ["N2"],
                "labels": [1],
            }

    assert gc.isenabled()
    table = impressions_dataset(rows())
    assert len(table) == 3 and seen == [False, False, False] and gc.isenabled()
    gc.disable()  # a caller that paused it already keeps it paused
    try:
        impressions_dataset(rows())
        assert not gc.isenabled()
    finally:
        gc.enable()

    def broken():
        yield {"impression_id": "I0"}  # a row without its other columns: the build fails, the collector is back

    with pytest.raises(KeyError):
        impressions_dataset(broken())
    assert gc.isenabled()
