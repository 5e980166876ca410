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


def test_a_store_refused_for_nan_says_so_not_rerun(tmp_path, config, processor, items):
    """After encode-items refused NaN embeddings, readers of the half-written store say that the job failed and why;
    "rerun the job to finish it" (which would fail again) is for a run that was interrupted."""
    from embsum_hf.serving import EmbeddingStore
    from embsum_hf.serving.store import StoreMismatchError

    from .harness import run

    torch.manual_seed(0)
    model = EmbSumModel(config).eval()
    with torch.no_grad():
        model.get_input_embeddings().weight[:, 0] = math.nan  # a diverged run's token embeddings
    with pytest.raises(ValueError, match="NaN"):
        encode_items(model, processor, items, tmp_path / "items", progress=False)
    with pytest.raises(
        StoreMismatchError,
        match=r"its encoding job failed \(items embeddings computed for shard 0: "
        r"\d+ entries hold NaN",
    ) as refused:
        EmbeddingStore.load(tmp_path / "items")
    assert "rerun" not in str(refused.value)

    result = run(
        [
            "recommend",
            "--users",
            str(tmp_path / "items"),
            "--items",
            str(tmp_path / "items"),
            "--output",
            str(tmp_path / "recs"),
        ],
        tmp_path / "run",
    )
    assert result.status == 2 and "its encoding job failed" in result.stderr and "rerun" not in result.stderr
