"""Explanations: weights sum to 1, they decompose the score, and the top history item carries the most weight."""

import torch

from embsum_hf.serving import UserState, explain, explain_recommendation, update_user


def test_explanation_decomposes_the_score(model, processor, items):
    history, item = items[:6], items[30]
    explanation = explain_recommendation(model, processor, history, item)
    with torch.no_grad():
        user = model.encode_user(**processor.encode_users([history]), output_details=True)
        cpe = model.encode_item(**processor.encode_items([item]))
        score = model.score(user.user_embeddings, cpe)[0, 0]
    assert abs(explanation.score - float(score)) < 1e-5
    pairs = explanation.pairs
    assert len(pairs) == 4 * 2 and abs(sum(p.weight for p in pairs) - 1) < 1e-5
    assert abs(sum(p.weight * p.similarity for p in pairs) - explanation.score) < 1e-4
    assert [p.weight for p in pairs] == sorted((p.weight for p in pairs), reverse=True)

    assert len(explanation.history) == 7  # 6 items + the summary state
    assert abs(sum(entry.weight for entry in explanation.history) - 1) < 1e-5
    # brute force: weight mass of history row j = sum over code pairs (a, m) of w_am * alpha_aj
    alpha = user.attention_weights[0]  # (K, n + 1), rows in session order = oldest first
    mass = {}
    for pair in pairs:
        for j in range(alpha.shape[1]):
            key = "summary" if j == alpha.shape[1] - 1 else history[::-1][j]["item_id"]
            mass[key] = mass.get(key, 0.0) + pair.weight * float(alpha[pair.user_code, j])
    top = explanation.history[0]
    assert (top.item_id or "summary") == max(mass, key=mass.get)
    for entry in explanation.history:
        assert abs(entry.weight - mass[entry.item_id or "summary"]) < 1e-5

    text = explanation.text(top=2)
    assert text.startswith("Recommended because of: ") and text.count("(") == 2
    first_title = top.title if top.item_id else "your interest summary"
    assert f"{first_title} ({top.weight:.2f})" in text


def test_explain_from_incremental_state_and_empty_history(model, processor, items):
    state, _ = update_user(model, processor, UserState(), items[:3])
    with torch.no_grad():
        cpe = model.encode_item(**processor.encode_items([items[20]]))[0]
        keys = model.item_score_keys(cpe)
    explanation = explain(state.user_embeddings, state.attention_weights, cpe, keys, items[:3])
    assert {entry.item_id for entry in explanation.history} == {"N0", "N1", "N2", None}

    empty = explain_recommendation(model, processor, [], items[20])  # only h_sum is left to explain the score
    assert [(entry.item_id, entry.weight) for entry in empty.history] == [(None, 1.0)]
    assert empty.text() == "Recommended because of: your interest summary (1.00)"
