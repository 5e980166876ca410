"""Incremental user updates equal a full re-encode and run the real encoder on the changed session only."""

import pytest
import torch

from embsum_hf import EmbSumModel
from embsum_hf.serving import UserState, update_user
from tests.conftest import tiny_config


def encoder_rows(model):
    rows = []
    hook = lambda module, args, kwargs, output: rows.append(kwargs["input_ids"].shape[0])  # noqa: E731
    return rows, model.t5.encoder.register_forward_hook(hook, with_kwargs=True)


def full_encode(model, processor, history):
    with torch.no_grad():
        return model.encode_user(**processor.encode_users([history]), output_details=True)


@pytest.mark.parametrize("summary_mode", ["generate", "start"])
def test_update_equals_full_encode_and_encodes_one_session(tokenizer, processor, items, summary_mode):
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer, summary_mode=summary_mode)).eval()
    history = items[:7]  # most recent first; 7 items of about 11 tokens fill 3 sessions of 40 tokens
    state, upe = update_user(model, processor, UserState(), history)
    assert len(state.sessions) >= 2
    torch.testing.assert_close(upe, full_encode(model, processor, history).user_embeddings, atol=1e-5, rtol=1e-5)

    rows, hook = encoder_rows(model)
    sessions_seen = set()
    for new in items[7:11]:  # one engagement at a time: sometimes fills the newest session, sometimes opens one
        rows.clear()
        history = [new, *history]
        before = state.sessions
        state, upe = update_user(model, processor, state, [new])
        counted = list(rows)  # before the reference encode below adds its own rows
        expected = full_encode(model, processor, history)
        torch.testing.assert_close(upe, expected.user_embeddings, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(state.attention_weights, expected.attention_weights[0], atol=1e-5, rtol=1e-5)
        assert counted == [1], counted  # the encoder ran once, on one session
        assert state.sessions_encoded == 1  # and the state says so (the Space's status line shows it)
        assert state.sessions[: len(before) - 1] == before[:-1]  # older sessions untouched
        sessions_seen.add(len(state.sessions) > len(before))
    hook.remove()
    assert sessions_seen == {True, False}  # both cases happened: a grown newest session and a new session


def test_update_past_the_history_limit_reencodes_what_changed(model, processor, items):
    history = items[:12]  # config.max_history_items == 12: the next item pushes the oldest out
    state, _ = update_user(model, processor, UserState(), history)
    rows, hook = encoder_rows(model)
    state, upe = update_user(model, processor, state, items[12:14])
    hook.remove()  # before the reference encode
    history = [*items[12:14], *history][:12]
    torch.testing.assert_close(upe, full_encode(model, processor, history).user_embeddings, atol=1e-5, rtol=1e-5)
    assert sum(rows) == len(state.sessions) == state.sessions_encoded  # every session shifted
    assert len(state.history_token_ids) == 12
