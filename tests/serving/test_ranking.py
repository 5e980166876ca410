"""Ranking: chunked exact top-k equals brute force, stores, FAISS prefilter recall on structured embeddings."""

import pytest
import torch

from embsum_hf import EmbSumModel, poly_relevance
from embsum_hf.serving import (
    FaissPrefilter,
    StoreMismatchError,
    encode_items,
    encode_users,
    recall_at_k,
    recommend,
    rerank,
    top_k_scores,
)
from tests.conftest import tiny_config


@pytest.fixture()
def tensors():
    generator = torch.Generator().manual_seed(0)
    upe = torch.randn(3, 4, 16, generator=generator)  # (B, K, d)
    cpe = torch.randn(101, 2, 16, generator=generator)  # (N, M, d)
    keys = torch.nn.functional.gelu(torch.randn(101, 2, 16, generator=generator))
    return upe, cpe, keys


def test_chunked_top_k_equals_brute_force(tensors):
    upe, cpe, keys = tensors
    full = poly_relevance(upe, cpe, keys)  # (B, N)
    expected = full.topk(10, dim=1)
    for chunk_size in (None, 1, 7, 10, 100, 101, 1000):
        for user_batch_size in (1, 2, 3, 128):  # blocks of users: one, uneven, all, more than there are
            scores, indices = top_k_scores(upe, cpe, keys, 10, chunk_size=chunk_size, user_batch_size=user_batch_size)
            assert torch.equal(indices, expected.indices), (chunk_size, user_batch_size)
            torch.testing.assert_close(scores, expected.values, atol=1e-6, rtol=1e-6)
    scores, indices = top_k_scores(upe[:0], cpe, keys, 10)  # no users: nothing to rank
    assert scores.shape == indices.shape == (0, 10)
    scores, indices = top_k_scores(upe, cpe.half(), keys.bfloat16(), 500)  # k > N, stored half precision
    assert scores.shape == (3, 101) and scores.dtype == torch.float32
    assert torch.equal(indices.sort(1).values, torch.arange(101).expand(3, -1))


def test_excluded_items_are_never_returned(tensors):
    upe, cpe, keys = tensors
    banned = [torch.tensor([5, 64, 100]), torch.tensor([], dtype=torch.long), torch.arange(0, 101, 2)]
    full = poly_relevance(upe, cpe, keys)
    for user, rows in enumerate(banned):
        full[user, rows] = float("-inf")
    expected = full.topk(10, dim=1)
    for chunk_size, user_batch_size in ((None, 128), (7, 1), (64, 2)):  # bans across chunk and block borders
        scores, indices = top_k_scores(
            upe, cpe, keys, 10, chunk_size=chunk_size, user_batch_size=user_batch_size, exclude=banned
        )
        assert torch.equal(indices, expected.indices) and torch.equal(scores, expected.values)
    # a user who excludes all but 3 of the items gets 3, then -inf
    scores, indices = top_k_scores(upe[:1], cpe, keys, 5, exclude=[torch.arange(3, 101)])
    assert torch.isfinite(scores[0, :3]).all() and scores[0, 3:].eq(float("-inf")).all()
    assert sorted(indices[0, :3].tolist()) == [0, 1, 2] and indices[0, 3:].tolist() == [-1, -1]
    with pytest.raises(ValueError, match="exclude has 1 entries for 3 users"):
        top_k_scores(upe, cpe, keys, 5, exclude=banned[:1])


def test_rerank_scores_candidates_exactly(tensors):
    upe, cpe, keys = tensors
    candidates = torch.tensor([[5, 9, 2, -1], [7, -1, -1, -1], [0, 1, 2, 3]])
    scores, indices = rerank(upe, cpe, keys, candidates, 3)
    full = poly_relevance(upe, cpe, keys)
    best = full[0, [5, 9, 2]].topk(3)
    assert indices[0].tolist() == [[5, 9, 2][i] for i in best.indices.tolist()]
    torch.testing.assert_close(scores[0], best.values)
    assert indices[1].tolist() == [7, -1, -1] and scores[1, 1:].eq(float("-inf")).all()


def test_recommend_from_stores(tmp_path, tokenizer, processor, items):
    torch.manual_seed(0)  # h_sum from the start token: generation is covered by the store tests, and slow
    model = EmbSumModel(tiny_config(tokenizer, summary_mode="start")).eval()
    item_store = encode_items(model, processor, items, tmp_path / "items", shard_size=16, progress=False)
    users = [("a", items[:6]), ("b", items[10:14]), ("c", [])]
    user_store = encode_users(model, processor, users, tmp_path / "users", progress=False)
    result = recommend(user_store, item_store, k=5, chunk_size=7)
    with torch.no_grad():
        upe = model.encode_user(**processor.encode_users([history for _, history in users])).user_embeddings
        cpe = model.encode_item(**processor.encode_items(items))
        full = model.score(upe, cpe)  # (3, 40)
    torch.testing.assert_close(result.scores, full.topk(5, dim=1).values, atol=1e-5, rtol=1e-5)
    # the ids name the items with those scores (a random-init model has near ties, so not compared by position)
    rows = torch.tensor([[int(item_id[1:]) for item_id in ids] for ids in result.item_ids])
    torch.testing.assert_close(full.gather(1, rows), result.scores, atol=1e-5, rtol=1e-5)
    picked = recommend(user_store, item_store, k=5, user_ids=["c", "a"])
    # near-tied items may swap places between chunkings, so the selected users are checked by their scores
    torch.testing.assert_close(picked.scores, result.scores[[2, 0]], atol=1e-5, rtol=1e-5)

    # never an item the user has seen: by user id with a store, by row with UPEs; ids outside the store are ignored
    seen = {"a": [item["item_id"] for item in items[:6]] + ["not-an-item"], "c": ["N39"]}
    for top in (
        recommend(user_store, item_store, k=5, exclude=seen),
        recommend(user_store.embeddings, item_store, k=5, exclude=[seen["a"], [], seen["c"]]),
        recommend(user_store, item_store, k=5, exclude=seen, prefilter=FaissPrefilter.from_store(item_store, nlist=2)),
    ):
        assert not set(top.item_ids[0]) & set(seen["a"]) and "N39" not in top.item_ids[2]
        rows = torch.tensor([[int(item_id[1:]) for item_id in ids] for ids in top.item_ids])
        torch.testing.assert_close(full.gather(1, rows), top.scores, atol=1e-5, rtol=1e-5)
    assert recommend(user_store, item_store, k=40, exclude=seen).item_ids[0][-6:] == [None] * 6  # 34 items left
    with pytest.raises(ValueError, match="needs a user store"):
        recommend(user_store.embeddings, item_store, k=5, exclude=seen)

    with pytest.raises(StoreMismatchError, match="expected an item store"):
        recommend(user_store, user_store, k=5)
    torch.manual_seed(5)
    other = type(model)(model.config).eval()
    other_users = encode_users(other, processor, users, tmp_path / "other", progress=False)
    with pytest.raises(StoreMismatchError, match="different models"):
        recommend(other_users, item_store, k=5)


def test_faiss_prefilter_recall_on_replicated_model_embeddings(model, processor, items):
    # Structured data from the tiny model itself: its 40 item CPEs, each replicated 100 times with noise of 0.3x the
    # spread between items (clusters of near-duplicates, like re-published news), scored against real UPEs of 8 users.
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        base = model.encode_item(**processor.encode_items(items))  # (40, M, d)
        cpe = base.repeat(100, 1, 1)
        cpe = cpe + 0.3 * base.std(0).mean() * torch.randn(cpe.shape, generator=generator)  # (4000, M, d)
        keys = model.item_score_keys(cpe)
        histories = [items[i : i + 5] for i in range(0, 40, 5)]
        upe = model.encode_user(**processor.encode_users(histories)).user_embeddings  # (8, K, d)

    _, exact = top_k_scores(upe, cpe, keys, 10)
    prefilter = FaissPrefilter(cpe)
    candidates = prefilter.candidates(upe, 10)
    assert candidates.shape == (8, 400)  # 10% of the items get scored
    _, approximate = rerank(upe, cpe, keys, candidates, 10)
    recall = recall_at_k(approximate, exact)
    assert recall >= 0.95, recall
    # too few candidates must hurt: the measurement is not vacuous
    _, poor = rerank(upe, cpe, keys, FaissPrefilter(cpe, nprobe=1, num_candidates=10).candidates(upe, 10), 10)
    assert recall_at_k(poor, exact) < recall
