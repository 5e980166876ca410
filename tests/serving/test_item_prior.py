"""The optional item prior in serving: stored next to the CPE, 0 for items without one, added by every ranker."""

import pytest
import torch

from embsum_hf import EmbSumModel, EmbSumProcessor
from embsum_hf.serving import FaissPrefilter, encode_items, encode_users, recommend

from ..conftest import tiny_config


def test_item_prior_is_stored_and_ranked(tmp_path, tokenizer, items):
    config = tiny_config(tokenizer, item_prior_ids=[item["item_id"] for item in items[:10]])
    torch.manual_seed(0)
    model = EmbSumModel(config).eval()
    with torch.no_grad():
        model.item_prior.weight[1:] = torch.linspace(5.0, 50.0, 10)[:, None]  # strong, distinct priors
    processor = EmbSumProcessor(tokenizer, config, item_template="mind")
    catalogue = items[:20]  # 10 with a prior, 10 cold-start items
    store = encode_items(model, processor, catalogue, tmp_path / "items", progress=False)
    expected = torch.cat([torch.linspace(5.0, 50.0, 10), torch.zeros(10)])
    torch.testing.assert_close(store.prior, expected)

    users = encode_users(
        model, processor, [("U1", items[20:25]), ("U2", items[30:33])], tmp_path / "users", progress=False
    )
    top = recommend(users, store, k=20)
    with torch.no_grad():
        content = model.score(users.embeddings, store.embeddings)  # (2, 20) the content model's scores
    exact = content + expected
    assert torch.allclose(top.scores, exact.sort(dim=1, descending=True).values, atol=1e-4)
    assert top.item_ids[0][0] == "N9"  # the largest prior wins here, whatever the content
    # the FAISS path re-ranks its candidates with the prior too
    prefiltered = recommend(users, store, k=5, prefilter=FaissPrefilter.from_store(store))
    for row in range(2):
        for item_id, score in zip(prefiltered.item_ids[row], prefiltered.scores[row].tolist()):
            position = [item["item_id"] for item in catalogue].index(item_id)
            assert abs(score - float(exact[row, position])) < 1e-4

    # a model without a prior stores none, and ranks by content alone
    plain = EmbSumModel(tiny_config(tokenizer)).eval()
    assert encode_items(plain, processor, catalogue, tmp_path / "plain", progress=False).prior is None


def test_the_pipeline_adds_the_item_prior_of_candidates_with_an_id(tokenizer, items):
    from embsum_hf import EmbSumRecommendationPipeline

    config = tiny_config(tokenizer, item_prior_ids=[item["item_id"] for item in items[:10]])
    torch.manual_seed(0)
    model = EmbSumModel(config).eval()
    with torch.no_grad():
        model.item_prior.weight[1:] = torch.linspace(5.0, 50.0, 10)[:, None]
    processor = EmbSumProcessor(tokenizer, config, item_template="mind")
    ranker = EmbSumRecommendationPipeline(model=model, processor=processor)
    without_id = {key: value for key, value in items[9].items() if key != "item_id"}
    candidates = [items[12], items[9], items[0], without_id]  # cold, the largest prior, the smallest, no id
    ranking = ranker({"history": items[20:24], "candidates": candidates})["ranking"]
    with torch.no_grad():
        upe = model.encode_user(**processor.encode_users([items[20:24]])).user_embeddings
        content = model.score(upe, model.encode_item(**processor.encode_items(candidates)))[0]
    expected = content + torch.tensor([0.0, 50.0, 5.0, 0.0])
    assert [entry["index"] for entry in ranking] == expected.argsort(descending=True).tolist()
    assert [entry["score"] for entry in ranking] == pytest.approx(sorted(expected.tolist(), reverse=True), abs=1e-4)
    assert ranking[0]["item"] == candidates[1]
