"""Summary metrics ROUGE cannot replace: hand-computed cases, and the collapse warning on a really collapsed model."""

from __future__ import annotations

import logging

import pytest
import torch

from embsum_hf import EmbSumModel
from embsum_hf.metrics import COLLAPSE_GAP_THRESHOLD, constant_summary, summary_metrics
from embsum_hf.metrics.summary import (
    distinct_ngrams,
    malformed_rate,
    malformed_summary,
    nonword_rate,
    other_user_references,
    repeated_token_rate,
)
from embsum_hf.serving.explain import generate_summaries

from ..conftest import TOPICS, make_item

WARNING = "summaries barely depend on the user"


def test_hand_computed_metrics(caplog):
    # p0 "red fox red" vs own "red fox": LCS 2, P 2/3, R 1 -> F 0.8; p1 "red fox" vs own "blue sky": 0 -> ROUGE-L 0.4.
    # With two users the other user is forced: p0 vs "blue sky" 0, p1 vs "red fox" 1 -> 0.5; gap 0.4 - 0.5 = -0.1.
    predictions, references = ["red fox red", "red fox"], ["red fox", "blue sky"]
    with caplog.at_level(logging.WARNING, logger="embsum_hf.metrics.summary"):
        result = summary_metrics(predictions, references)
    assert result["rouge1"] == pytest.approx(0.4)
    assert result["rougeL"] == pytest.approx(0.4)
    assert result["rougeL_other_user"] == pytest.approx(0.5)
    assert result["specificity_gap"] == pytest.approx(-0.1)
    assert result["distinct_summaries"] == 1.0
    assert result["distinct_1"] == pytest.approx(2 / 5)  # red fox red red fox: {red, fox}
    assert result["distinct_2"] == pytest.approx(2 / 3)  # (red fox) (fox red) (red fox)
    assert result["repeated_token_rate"] == pytest.approx(1 / 5)  # the second "red" of the first summary
    # the constant: both references tie at mean ROUGE-L 0.5 against the references; the first seen wins
    assert result["constant_rougeL"] == pytest.approx(0.5) and result["constant_rouge2"] == pytest.approx(0.5)
    assert result["num_summaries"] == 2
    assert WARNING in caplog.text


def test_specific_summaries_have_a_gap_and_no_warning(caplog):
    references = ["the viewer likes red fox", "the viewer likes blue sky", "the viewer likes green tree"]
    with caplog.at_level(logging.WARNING, logger="embsum_hf.metrics.summary"):
        result = summary_metrics(references, references, constant="the viewer likes")
    # own: 1; any other: LCS 3 of 5 each way -> 0.6; gap 0.4. The constant: LCS 3, P 1, R 3/5 -> F 0.75
    assert result["rougeL"] == 1.0 and result["rougeL_other_user"] == pytest.approx(0.6)
    assert result["specificity_gap"] == pytest.approx(0.4)
    assert result["constant_rougeL"] == pytest.approx(0.75)
    assert result["distinct_summaries"] == 1.0 and result["repeated_token_rate"] == 0.0
    assert WARNING not in caplog.text
    # one sentence for everybody: one distinct summary of three, about as close to any user's reference as to its own
    with caplog.at_level(logging.WARNING, logger="embsum_hf.metrics.summary"):
        collapsed = summary_metrics(["the viewer likes"] * 3, references)
    assert collapsed["distinct_summaries"] == pytest.approx(1 / 3)
    assert collapsed["specificity_gap"] == pytest.approx(0.0)
    assert collapsed["rougeL"] == pytest.approx(0.75)  # LCS 3, P 1, R 3/5
    assert WARNING in caplog.text


def test_other_users_are_other_and_seeded():
    references = [f"user {i}" for i in range(50)]
    others = other_user_references(references, seed=3)
    assert all(other != own for other, own in zip(others, references))
    assert others == other_user_references(references, seed=3) != other_user_references(references, seed=4)
    assert other_user_references(["alone"]) == []
    single = summary_metrics(["x"], ["x"])
    assert single["specificity_gap"] != single["specificity_gap"]  # NaN: no other user to compare with


def test_constant_summary_is_the_most_typical():
    frequent = "the viewer likes drama and comedy"
    assert constant_summary([frequent] * 3 + ["the viewer likes war", "noir"]) == frequent
    # no repeats: the medoid ("a b c" ties with its two neighbours at mean ROUGE-L 7/12; the first seen wins)
    assert constant_summary(["a b c", "a b d", "a b e", "z"]) == "a b c"
    with pytest.raises(ValueError):
        constant_summary([])


def test_distinct_and_repeats_edge_cases():
    assert distinct_ngrams(["a", "b"], 2) != distinct_ngrams(["a", "b"], 2)  # NaN: no bigram at all
    assert repeated_token_rate(["adventure adventure adventure", "war"]) == pytest.approx(2 / 4)
    with pytest.raises(ValueError):
        summary_metrics(["a"], [])


def test_collapsed_model_triggers_the_warning(tokenizer, config, processor, caplog):
    """A tiny EmbSum taught one sentence for every user writes it for every user: the gap is 0 and a warning fires."""
    topics = sorted(TOPICS)
    histories = [[make_item(4 * u + j, topics[u % 4]) for j in range(3)] for u in range(12)]
    references = [f"The user is interested in {topics[u % 4]}." for u in range(12)]  # user-specific teacher
    batch = processor.encode_users(histories, ["The user is interested in news."] * len(histories))  # collapsed one
    items = processor.encode_items([history[0] for history in histories])
    candidates = {name: value[:, None] for name, value in items.items()}  # (B, 1, L): the click loss is constant
    torch.manual_seed(0)
    model = EmbSumModel(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        output = model(
            **batch,
            candidate_input_ids=candidates["item_input_ids"],
            candidate_attention_mask=candidates["item_attention_mask"],
        )
        optimizer.zero_grad()
        output.summary_loss.backward()
        optimizer.step()
    generated = generate_summaries(model, processor, histories)
    assert len(set(generated)) == 1  # collapsed
    with caplog.at_level(logging.WARNING, logger="embsum_hf.metrics.summary"):
        result = summary_metrics(generated, references)
    assert result["specificity_gap"] < COLLAPSE_GAP_THRESHOLD
    assert result["distinct_summaries"] == pytest.approx(1 / 12)
    assert WARNING in caplog.text
    # the teacher's own summaries are specific: no warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="embsum_hf.metrics.summary"):
        summary_metrics(references, references)
    assert WARNING not in caplog.text


@pytest.mark.parametrize(
    ("text", "malformed"),
    [
        ("The reader is interested in love, relationships, struggles, obsession and bullying.", False),
        ("The reader is interested in coming of age, the supernatural and New York.", False),  # stop-words inside
        ("The reader is interested in Garfield, cartoons, racism, coming-of-age and manga", False),  # no full stop
        ("The reader is interested in and love.", True),  # an empty slot before "and"
        ("The reader is interested in novel, as and thought-provoking.", True),  # a stop-word slot
        ("The reader is interested in as, and mystery.", True),  # a stop-word slot and an empty one
        ("The reader is interested in mystery, , romance.", True),  # an empty slot between commas
        ("The reader is interested in mystery and.", True),  # an empty last slot
        ("The reader is interested in.", True),  # no slot at all
        ("The reader is interested in romance, love and love stories.", True),  # "love" twice
        ("The reader is interested in Romance and romance.", True),  # the same word in another case
        ("The reader likes mystery and romance.", True),  # no lead: the template is broken
    ],
)
def test_malformed_summary_by_hand(text, malformed):
    assert malformed_summary(text) is malformed


def test_malformed_rate_in_summary_metrics():
    references = ["The user is interested in food and space.", "The user is interested in sports and politics."]
    predictions = ["The user is interested in food and space.", "The user is interested in and and."]
    result = summary_metrics(predictions, references)
    assert result["malformed_rate"] == pytest.approx(1 / 2)
    # another template's lead: the slots after "enjoys"
    assert summary_metrics(["Ann enjoys the and space."] * 2, references, lead="enjoys")["malformed_rate"] == 1.0
    assert malformed_rate(["Ann enjoys food and space.", "Ann enjoys food, space."], lead="enjoys") == 0.0


def test_nonword_rate_by_hand():
    """A summary counts once when any slot word is none of the given words; words before the lead are no slot's."""
    words = ["the", "user", "is", "interested", "in", "food", "space", "sports"]
    texts = [
        "The user is interested in food and space.",  # every slot word known
        "The user is interested in food and selen.",  # "selen": a run-on word piece
        "Somebody else is interested in Food, SPACE and sports.",  # letter case aside, known; "somebody" is no slot's
        "No lead here, gainesbtractingale.",  # no lead: no slots, no non-word
    ]
    assert [nonword_rate([text], words) for text in texts] == [0.0, 1.0, 0.0, 0.0]
    assert nonword_rate(texts, words) == pytest.approx(1 / 4)
    assert nonword_rate(["Ann enjoys selen."], words, lead="enjoys") == 1.0
    references = texts[:2]
    assert summary_metrics(texts[:2], references, words=words)["nonword_rate"] == pytest.approx(1 / 2)
    assert "nonword_rate" not in summary_metrics(texts[:2], references)
