"""Embedding jobs and the store: values equal the model's, dtypes, ids, fingerprints, reruns."""

import json

import pytest
import torch

from embsum_hf import EmbSumModel
from embsum_hf.serving import EmbeddingStore, StoreMismatchError, encode_items, encode_users, model_fingerprint
from tests.conftest import make_item


def count_encoder_rows(model):
    """Rows fed to the real T5 encoder, counted with a forward hook."""
    rows = []
    handle = model.t5.encoder.register_forward_hook(
        lambda module, args, kwargs, output: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    return rows, handle


def test_item_store_equals_model_and_keeps_order(tmp_path, model, processor, items):
    # shard_size 16 over 40 items: 3 shards, the last one partial; batch 5 cuts each shard into length-sorted batches
    store = encode_items(model, processor, items, tmp_path / "items", batch_size=5, shard_size=16, progress=False)
    assert store.ids == [item["item_id"] for item in items]
    manifest = json.loads((tmp_path / "items" / "store.json").read_text())
    assert manifest["complete"] and manifest["num_shards"] == 3 and manifest["kind"] == "items"
    assert manifest["shapes"] == {"embeddings": [40, 2, 32], "keys": [40, 2, 32]}
    assert manifest["fingerprint"] == model_fingerprint(model)
    with torch.no_grad():
        for row in (0, 17, 39):  # one at a time, no padding at all
            cpe = model.encode_item(**processor.encode_items([items[row]]))[0]
            torch.testing.assert_close(store.embeddings[row], cpe, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(store.keys[row], model.item_score_keys(cpe), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(store.embeddings[store.positions(["N17", "N3"])], store.embeddings[[17, 3]])
    assert model.training is False  # restored as it was (the fixture is in eval mode)


def test_item_store_from_dataset_and_half_precision(tmp_path, model, processor, items):
    import datasets

    table = datasets.Dataset.from_list(items[:12])
    reference = encode_items(model, processor, items[:12], tmp_path / "fp32", progress=False)
    for dtype, torch_dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        store = encode_items(model, processor, table, tmp_path / dtype, dtype=dtype, progress=False)
        assert store.embeddings.dtype == torch_dtype and store.keys.dtype == torch_dtype
        assert store.ids == reference.ids
        tolerance = 1e-2 if dtype == "bfloat16" else 1e-3
        torch.testing.assert_close(store.embeddings.float(), reference.embeddings, atol=tolerance * 4, rtol=tolerance)
        assert store.disk_bytes() < 0.6 * reference.disk_bytes()


def test_user_store_equals_model(tmp_path, model, processor, items):
    users = [("u0", items[:9]), ("u1", []), ("u2", items[20:23]), ("u3", items[5:6]), ("u4", items[:30])]
    store = encode_users(model, processor, users, tmp_path / "users", batch_size=2, shard_size=3, progress=False)
    assert store.kind == "users" and store.ids == ["u0", "u1", "u2", "u3", "u4"]
    assert tuple(store.embeddings.shape) == (5, 4, 32)
    with torch.no_grad():
        for row, (_, history) in enumerate(users):
            upe = model.encode_user(**processor.encode_users([history])).user_embeddings[0]
            torch.testing.assert_close(store.embeddings[row], upe, atol=1e-5, rtol=1e-5)
    with pytest.raises(StoreMismatchError, match="holds users"):
        EmbeddingStore.load(tmp_path / "users", kind="items")


def test_fingerprint_is_stable_and_detects_another_model(tmp_path, model, processor, items, config):
    model.save_pretrained(tmp_path / "model")
    reloaded = EmbSumModel.from_pretrained(tmp_path / "model")
    assert model_fingerprint(reloaded) == model_fingerprint(model)
    store = encode_items(model, processor, items[:6], tmp_path / "items", progress=False)

    with torch.no_grad():
        reloaded.score_projection.weight[0, 0] += 1e-3  # a tiny change of one weight
    other = model_fingerprint(reloaded)
    assert other != store.fingerprint
    with pytest.raises(StoreMismatchError) as error:
        EmbeddingStore.load(tmp_path / "items", expected_fingerprint=other)
    assert (
        store.fingerprint in str(error.value)
        and other in str(error.value)
        and str(tmp_path / "items") in str(error.value)
    )

    torch.manual_seed(1)  # same config, other weights; and same weights, other config
    assert model_fingerprint(EmbSumModel(config)) != store.fingerprint
    changed = EmbSumModel(config.__class__(**{**config.to_dict(), "summary_mode": "start"}))
    changed.load_state_dict(model.state_dict())
    assert model_fingerprint(changed) != store.fingerprint


def test_rerun_reuses_matching_shards_and_recomputes_changed_ones(tmp_path, model, processor, items):
    first = encode_items(model, processor, items, tmp_path / "items", shard_size=10, progress=False)
    rows, handle = count_encoder_rows(model)
    again = encode_items(model, processor, items, tmp_path / "items", shard_size=10, progress=False)
    assert rows == []  # every shard reused
    torch.testing.assert_close(again.embeddings, first.embeddings, atol=0, rtol=0)

    # one item's text changes: only its shard is recomputed; a shorter item list drops the stale shards
    edited = [
        *items[:25],
        make_item(25, topic="space") | {"item_id": "N25", "title": "brand new title"},
        *items[26:30],
    ]
    store = encode_items(model, processor, edited, tmp_path / "items", shard_size=10, progress=False)
    handle.remove()
    assert sum(rows) == 10 and len(store) == 30
    assert sorted(p.name for p in (tmp_path / "items").iterdir()) == [
        ".embsum.lock",  # the job's lock (released; the file stays)
        "ids.json",
        *(f"shard-0000{i}.safetensors" for i in range(3)),
        "store.json",
    ]
    assert not torch.equal(store.embeddings[25], first.embeddings[25])
    torch.testing.assert_close(store.embeddings[:20], first.embeddings[:20], atol=0, rtol=0)


def test_bad_inputs_are_clear(tmp_path, model, processor, items):
    with pytest.raises(ValueError, match="duplicate items ids"):
        encode_items(model, processor, [items[0], items[0]], tmp_path / "dup", progress=False)
    with pytest.raises(ValueError, match="dtype"):
        encode_items(model, processor, items[:2], tmp_path / "dt", dtype="int8", progress=False)
    with pytest.raises(FileNotFoundError, match="not an embedding store"):
        EmbeddingStore.load(tmp_path)


def test_user_store_reuses_sessions_across_batches_with_the_same_values(tmp_path, tokenizer, items):
    # one item per session (the from-scratch recipe): the users share items, so with the cache each distinct item is
    # encoded once for the whole job; without it once per batch it appears in
    from embsum_hf import EmbSumProcessor
    from tests.conftest import tiny_config

    config = tiny_config(tokenizer, session_max_items=1)
    processor = EmbSumProcessor(tokenizer, config, item_template="mind")
    torch.manual_seed(0)
    model = EmbSumModel(config).eval()
    users = [(f"u{n}", [items[(n * 7 + k) % 12] for k in range(1 + n % 5)]) for n in range(24)] + [("empty", [])]
    rows, handle = count_encoder_rows(model)
    try:
        cached = encode_users(model, processor, users, tmp_path / "cached", batch_size=4, progress=False)
        encoded_with_cache = sum(rows)
        rows.clear()
        plain = encode_users(
            model, processor, users, tmp_path / "plain", batch_size=4, progress=False, session_cache_mb=0
        )
        encoded_without = sum(rows)
    finally:
        handle.remove()
    assert encoded_with_cache == 13  # the 12 distinct items and the empty history's lone </s>, each once
    assert encoded_without > 2 * encoded_with_cache
    torch.testing.assert_close(cached.embeddings, plain.embeddings, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        for row in (0, 5, 24):
            upe = model.encode_user(**processor.encode_users([users[row][1]])).user_embeddings[0]
            torch.testing.assert_close(cached.embeddings[row], upe, atol=1e-5, rtol=1e-5)


def test_session_cache_keeps_within_its_memory(model):
    from embsum_hf.serving import SessionStateCache

    sessions = [[[5 + n, 6, 1]] for n in range(10)]  # ten one-session users, 3 tokens each
    row = model.config.hidden_size * 4  # one token's float32 states
    cache = SessionStateCache(max_bytes=13 * row)  # room for 4 sessions of 3 tokens
    with torch.no_grad():
        first = cache.session_states(model, sessions)
        assert len(cache) == 4 and cache.bytes == 12 * row  # the 4 most recent kept, the older ones overwritten
        again = cache.session_states(model, sessions[-4:])
    assert cache.hits == 4 and cache.misses == 10
    torch.testing.assert_close(again, first[-4:])
    with torch.no_grad():  # the ring goes on: the 2 new sessions take the place of the 2 oldest
        cache.session_states(model, [[[40, 6, 1]], [[41, 6, 1]]])
        assert len(cache) == 4 and cache.hits == 4 and cache.misses == 12
        kept = cache.session_states(model, [sessions[-2], sessions[-1], [[40, 6, 1]], [[41, 6, 1]]])
    assert cache.hits == 8 and cache.misses == 12
    torch.testing.assert_close(kept[:2], first[-2:])
    with pytest.raises(ValueError, match="max_bytes"):
        SessionStateCache(-1)
