"""The embsum-recommendation pipeline in-process: ranking structure, scores, explanations, summaries, errors.

With random weights any candidate may come first, so the tests check structure and that every number equals what
the model computes directly.
"""

import pytest
import torch
from transformers import pipeline

from embsum_hf import EmbSumRecommendationPipeline


@pytest.fixture()
def recommender(model, processor) -> EmbSumRecommendationPipeline:
    return pipeline("embsum-recommendation", model=model, processor=processor, device="cpu")


def direct_scores(model, processor, history, candidates) -> torch.Tensor:
    with torch.no_grad():
        user = model.encode_user(**processor.encode_users([history])).user_embeddings
        return model.score(user, model.encode_item(**processor.encode_items(candidates)))[0]


def test_ranks_every_candidate_with_the_models_scores(recommender, model, processor, items):
    assert isinstance(recommender, EmbSumRecommendationPipeline)
    history, candidates = items[:6], items[20:27]
    result = recommender({"history": history, "candidates": candidates})
    ranking = result["ranking"]
    assert set(result) == {"ranking"}
    assert sorted(entry["index"] for entry in ranking) == list(range(len(candidates)))
    scores = [entry["score"] for entry in ranking]
    assert scores == sorted(scores, reverse=True)
    assert all(entry["item"] == candidates[entry["index"]] for entry in ranking)
    expected = direct_scores(model, processor, history, candidates)
    torch.testing.assert_close(
        torch.tensor([entry["score"] for entry in ranking]), expected[[e["index"] for e in ranking]]
    )


def test_top_k_strings_batches_and_chunked_candidates(recommender, model, processor, items):
    history, candidates = items[:4], items[10:15]
    full = recommender({"history": history, "candidates": candidates})["ranking"]
    assert recommender({"history": history, "candidates": candidates}, top_k=2)["ranking"] == full[:2]
    # encoding candidates in chunks of 2 gives the same scores as one pass
    chunked = recommender({"history": history, "candidates": candidates}, candidate_batch_size=2)["ranking"]
    torch.testing.assert_close(torch.tensor([e["score"] for e in chunked]), torch.tensor([e["score"] for e in full]))

    # a string is the template's first field, the other fields empty
    titles = [item["title"] for item in candidates]
    as_text = recommender({"history": [], "candidates": titles})["ranking"]
    expected = direct_scores(model, processor, [], [{"title": t, "abstract": None, "category": None} for t in titles])
    torch.testing.assert_close(torch.tensor([e["score"] for e in as_text]), expected[[e["index"] for e in as_text]])
    assert all(e["item"] == titles[e["index"]] for e in as_text)

    batch = recommender([{"history": history, "candidates": candidates}, {"history": [], "candidates": titles}])
    assert [result["ranking"] for result in batch] == [full, as_text]
    assert recommender([]) == []


def test_explanations_map_attention_rows_back_to_history(recommender, model, processor, items):
    history = items[:15]  # longer than max_history_items = 12: the 3 oldest are not read
    kept = processor.session_item_count(len(history))
    result = recommender(
        {"history": history, "candidates": items[30:33]}, return_explanations=True, num_explanations=kept
    )
    explanations = result["explanations"]
    assert sorted(e["index"] for e in explanations) == list(range(kept))
    assert all(e["item"] == history[e["index"]] for e in explanations)
    weights = [e["weight"] for e in explanations]
    assert weights == sorted(weights, reverse=True)

    with torch.no_grad():
        user = model.encode_user(**processor.encode_users([history]), output_details=True)
    rows = user.attention_weights[0].mean(0)  # (n + 1,): oldest kept item first, h_sum last
    expected = {kept - 1 - row: float(weight) for row, weight in enumerate(rows[:-1])}
    assert {e["index"]: e["weight"] for e in explanations} == pytest.approx(expected)
    assert sum(weights) + float(rows[-1]) == pytest.approx(1.0, abs=1e-5)

    top = recommender({"history": history, "candidates": items[30:33]}, return_explanations=True)
    assert top["explanations"] == explanations[:3]
    assert recommender({"history": [], "candidates": ["x"]}, return_explanations=True)["explanations"] == []


def test_summary_is_the_models_own(recommender, model, processor, items):
    history = items[:5]
    result = recommender({"history": history, "candidates": items[20:22]}, return_summary=True)
    with torch.no_grad():
        expected = model.generate_summary(**processor.encode_users([history]), processor=processor)
    assert result["summary"] == expected[0]


@pytest.mark.parametrize(
    "inputs, kwargs, message",
    [
        ({"history": [], "candidates": []}, {}, "candidates"),
        ({"history": [], "candidates": [3]}, {}, "candidates[0]"),
        ({"history": "news", "candidates": ["a"]}, {}, "history"),
        ({"history": [{"title": "t"}], "candidates": ["a"]}, {}, "abstract"),
        ({"history": [], "candidates": ["a"]}, {"top_k": 0}, "top_k"),
        ({"history": [], "candidates": ["a"]}, {"batch_size": 4}, "batch_size"),
    ],
)
def test_clear_errors(recommender, inputs, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        recommender(inputs, **kwargs)
