"""The summary decoder's session order (`EmbSumConfig.summary_session_positions`, `SessionPositions`)."""

import random

import pytest
import torch

from embsum_hf import EmbSumModel, EmbSumProcessor
from embsum_hf.modeling_embsum import UserState, update_user_state

from ..conftest import TOPICS, tiny_config


def word_item(word: str) -> dict:
    return {"item_id": word, "title": word, "abstract": "news", "category": "news", "subcategory": "news"}


def histories(processor, pairs, summaries=None):
    """Users whose history is two one-word items, most recent first (`(newer, older)`), one session each."""
    return processor.encode_users([[word_item(newer), word_item(older)] for newer, older in pairs], summaries)


def order_config(tokenizer, positions: bool):
    # every item its own session, as `embsum train` from scratch encodes them (FROM_SCRATCH_SESSION_MAX_ITEMS)
    return tiny_config(
        tokenizer, summary_session_positions=positions, summary_copy=True, session_max_items=1, summary_max_tokens=20
    )


def test_session_positions_start_as_the_model_without_them_and_give_the_decoder_the_order(tmp_path, tokenizer):
    words = TOPICS["space"].split()
    pairs = [(words[i], words[i + 1]) for i in range(0, 8, 2)]
    swapped = [(older, newer) for newer, older in pairs]
    torch.manual_seed(0)
    plain = EmbSumModel(order_config(tokenizer, False)).eval()
    torch.manual_seed(0)
    model = EmbSumModel(order_config(tokenizer, True)).eval()
    assert not tiny_config(tokenizer).summary_session_positions  # off by default
    assert model.session_positions.weight.shape == (12, 32)  # (max_history_items, d_model)
    assert all(
        name.startswith(EmbSumModel.new_layer_prefixes)
        for name, _ in model.session_positions.named_parameters(prefix="session_positions")
    )
    processor = EmbSumProcessor(tokenizer, model.config, item_template="mind")
    users, reversed_users = histories(processor, pairs), histories(processor, swapped)
    ids, mask = users["session_input_ids"], users["session_attention_mask"]
    assert ids.shape[1] == 2  # two sessions per user

    def summaries(m, batch):
        return m.generate_summary(batch["session_input_ids"], batch["session_attention_mask"], history_boost=0.0)

    # zero at initialisation: the same model as without them
    torch.testing.assert_close(model.session_positions.weight, torch.zeros(12, 32))
    torch.testing.assert_close(summaries(model, users), summaries(plain, users))
    # without positions the decoder reads a bag of sessions: the reversed history writes the same summary, h_sum alike
    torch.testing.assert_close(summaries(plain, users), summaries(plain, reversed_users))
    with torch.no_grad():
        before = plain.encode_user(ids, mask, output_details=True)
        model.session_positions.weight.normal_(generator=torch.Generator().manual_seed(0))
        after = model.encode_user(ids, mask, output_details=True)
    # with them, the order reaches the decoder; the ranking's history rows are the encoder's, unchanged
    assert not torch.equal(summaries(model, users), summaries(model, reversed_users))
    assert not torch.allclose(after.summary_state, before.summary_state)
    torch.testing.assert_close(after.item_states, before.item_states)

    # the incremental user update reuses the sessions' encoder states and adds the positions of where they now stand
    history = [word_item(word) for word in words[:3]]  # most recent first
    with torch.no_grad():
        state = update_user_state(model, processor, UserState(), history[1:])
        state = update_user_state(model, processor, state, history[:1])
        full = processor.encode_users([history])
        whole = model.encode_user(full["session_input_ids"], full["session_attention_mask"])
    assert state.sessions_encoded == 1
    torch.testing.assert_close(state.user_embeddings, whole.user_embeddings[0])

    model.save_pretrained(tmp_path)
    loaded = EmbSumModel.from_pretrained(tmp_path).eval()
    assert loaded.config.summary_session_positions
    torch.testing.assert_close(loaded.session_positions.weight, model.session_positions.weight)
    torch.testing.assert_close(summaries(loaded, users), summaries(model, users))
    with pytest.raises(ValueError, match="summary_session_positions"):
        tiny_config(tokenizer, summary_session_positions="yes")


STEPS = 120


def test_trained_session_positions_write_the_older_interest_first(tokenizer):
    """Taught summaries that name the older book first, the decoder learns the order only when it can read it."""
    words = " ".join(TOPICS[topic] for topic in ("sports", "space", "politics", "food")).split()
    rng = random.Random(0)
    config = order_config(tokenizer, True)
    processor = EmbSumProcessor(tokenizer, config, item_template="mind")
    torch.manual_seed(0)
    model = EmbSumModel(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(STEPS):
        pairs = [tuple(rng.sample(words, 2)) for _ in range(16)]
        users = histories(processor, pairs, [f"{older} and {newer}." for newer, older in pairs])
        candidates = processor.pad_candidates([processor.tokenize_items([word_item(words[0])] * 2)] * len(pairs))
        loss = model(**users, **candidates).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    pairs = [tuple(rng.sample(words, 2)) for _ in range(20)]
    pairs += [(older, newer) for newer, older in pairs]  # both orders of every pair
    users = histories(processor, pairs)
    written = model.generate_summary(
        users["session_input_ids"], users["session_attention_mask"], processor=processor, history_boost=0.0
    )
    in_order = [
        text.find(older) < text.find(newer)
        for text, (newer, older) in zip(written, pairs)
        if older in text and newer in text
    ]
    # a decoder that reads a bag of sessions writes one order for both histories of a pair: half of them right
    assert len(in_order) >= 24 and sum(in_order) / len(in_order) >= 0.9, written
