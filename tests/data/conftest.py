import pytest

from embsum_hf.data import RecommendationData


def _assert_no_leakage(data: RecommendationData) -> None:
    """Every impression: no clicked candidate in its own history, and history ids are known items."""
    known = set(data.items["item_id"])
    for row in data.impressions:
        clicked = {c for c, y in zip(row["candidates"], row["labels"]) if y == 1}
        assert not clicked & set(row["history"]), row
        assert set(row["history"]) <= known, row


@pytest.fixture
def assert_no_leakage():
    return _assert_no_leakage
