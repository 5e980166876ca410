"""Non-finite embeddings are refused where they are produced (naming the entries) and where they are ranked."""

from __future__ import annotations

import math

import pytest
import torch

from embsum_hf import EmbSumModel
from embsum_hf.serving import encode_items, recommend
from embsum_hf.serving.store import ShardedStoreWriter


def test_writer_refuses_nan_rows_naming_their_ids(tmp_path):
    writer = ShardedStoreWriter(tmp_path / "s", "items", ["a", "b", "c"], "fp", "float32", {"embeddings": (2, 4)}, 3)
    tensors = {"embeddings": torch.zeros(3, 2, 4)}
    tensors["embeddings"][1, 0, 3] = math.inf
    with pytest.raises(ValueError, match=r"1 entries hold NaN or infinite values, e\.g\. \['b'\]"):
        writer.write(0, tensors, "key")
    assert not list((tmp_path / "s").iterdir())  # nothing written


def test_ranking_refuses_nan_user_embeddings(tmp_path, config, processor, items):
    torch.manual_seed(0)
    store = encode_items(EmbSumModel(config).eval(), processor, items, tmp_path / "items", progress=False)
    users = torch.randn(2, config.num_user_codes, config.t5_config.d_model)
    assert len(recommend(users, store, k=3).item_ids[0]) == 3
    users[1, 0, 0] = math.nan
    with pytest.raises(ValueError, match="user embeddings: 1 entries hold NaN"):
        recommend(users, store, k=3)
