"""EmbSumModel against the spec: exact pre-computation, padding invariance, losses, gradients, bad input."""

import pytest
import torch
import torch.nn.functional as F

from embsum_hf import EmbSumConfig, EmbSumModel

from ..conftest import make_item, tiny_config


def user_batch(processor, items, summaries=("The user likes sports.", None, "Space and food.")):
    histories = [items[:9], [], items[20:23]]
    return processor.encode_users(histories, summaries=list(summaries))


def candidate_batch(processor, items):
    groups = [items[30:33], items[33:36], [items[36], items[37]]]  # the last user has 2 candidates, padded to 3
    return processor.pad_candidates([processor.tokenize_items(group) for group in groups])


@pytest.mark.parametrize("summary_mode", ["generate", "start"])
def test_forward_logits_equal_precomputed_scores(tokenizer, processor, items, summary_mode):
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer, summary_mode=summary_mode)).eval()
    users = user_batch(processor, items, summaries=(None, None, None))
    candidates = candidate_batch(processor, items)
    with torch.no_grad():
        out = model(**users, **candidates)
        upe = model.encode_user(users["session_input_ids"], users["session_attention_mask"]).user_embeddings
        # items encoded one by one, as an offline job would, then scored against the stored embeddings
        for b in range(3):
            present = candidates["candidate_attention_mask"][b].any(-1)
            ids = candidates["candidate_input_ids"][b][present]
            cpe = model.encode_item(ids, candidates["candidate_attention_mask"][b][present])
            torch.testing.assert_close(
                model.score(upe[b : b + 1], cpe)[0], out.logits[b][present], atol=1e-5, rtol=1e-5
            )
    assert out.logits[2, 2] == float("-inf")  # the padded candidate


def test_padding_changes_nothing(model, processor, items):
    users = user_batch(processor, items, summaries=(None, None, None))
    with torch.no_grad():
        base = model.encode_user(users["session_input_ids"], users["session_attention_mask"])
        # an extra empty session and extra pad tokens on every session
        ids = F.pad(users["session_input_ids"], (0, 7, 0, 1), value=processor.pad_token_id)
        mask = F.pad(users["session_attention_mask"], (0, 7, 0, 1), value=0)
        padded = model.encode_user(ids, mask)
        torch.testing.assert_close(padded.user_embeddings, base.user_embeddings, atol=1e-5, rtol=1e-5)

        item_inputs = processor.encode_items(items[:4])
        cpe = model.encode_item(**item_inputs)
        cpe_padded = model.encode_item(
            F.pad(item_inputs["item_input_ids"], (0, 5), value=processor.pad_token_id),
            F.pad(item_inputs["item_attention_mask"], (0, 5), value=0),
        )
        torch.testing.assert_close(cpe_padded, cpe, atol=1e-5, rtol=1e-5)
        # an extra, fully padded candidate leaves the real candidates' scores unchanged
        candidates = candidate_batch(processor, items)
        out = model(**users, **candidates)
        extra = {k: F.pad(v, (0, 0, 0, 1), value=0) for k, v in candidates.items()}
        out_extra = model(**users, **extra)
        torch.testing.assert_close(out_extra.logits[:, :3], out.logits, atol=1e-5, rtol=1e-5)


def test_empty_history_is_finite_including_autocast(model, processor, items):
    users = processor.encode_users([[], items[:2]])
    assert users["session_input_ids"][0, 0, 0] == processor.eos_token_id  # the documented empty-history session
    candidates = processor.pad_candidates([processor.tokenize_items(items[2:5])] * 2)
    for dtype in (None, torch.bfloat16, torch.float16):
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(**users, **candidates)
            user = model.encode_user(users["session_input_ids"], users["session_attention_mask"], output_details=True)
        assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss), dtype
        assert torch.isfinite(user.user_embeddings).all(), dtype
        assert user.item_mask[0].sum() == 0 and user.attention_weights[0, :, -1].eq(1).all()  # only h_sum


def test_losses_match_manual_definitions(model, processor, items):
    users = user_batch(processor, items)
    candidates = candidate_batch(processor, items)
    out = model(**users, **candidates)
    logits = out.logits
    manual_nce = torch.stack(
        [-(logits[b, 0] - torch.logsumexp(logits[b][torch.isfinite(logits[b])], 0)) for b in range(3)]
    ).mean()
    torch.testing.assert_close(out.ctr_loss, manual_nce)

    # the summary loss is T5's own teacher-forced cross-entropy over the concatenated session states
    taught = [0, 2]
    states = model.t5.encoder(
        input_ids=users["session_input_ids"].flatten(0, 1),
        attention_mask=users["session_attention_mask"].flatten(0, 1),
    ).last_hidden_state
    memory = states.reshape(3, -1, states.shape[-1])[taught]
    memory_mask = users["session_attention_mask"].reshape(3, -1)[taught]
    from transformers.modeling_outputs import BaseModelOutput

    t5_out = model.t5(
        encoder_outputs=BaseModelOutput(last_hidden_state=memory),
        attention_mask=memory_mask,
        labels=users["summary_labels"][taught].contiguous(),
    )
    torch.testing.assert_close(out.summary_loss, t5_out.loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.loss, out.ctr_loss + model.config.summary_loss_weight * out.summary_loss)


def test_every_parameter_gets_a_gradient(model, processor, items):
    model.train()
    model(**user_batch(processor, items), **candidate_batch(processor, items)).loss.backward()
    missing = [
        name for name, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert missing == []


def test_lambda_zero_leaves_the_decoder_without_summary_gradient(tokenizer, processor, items):
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer, summary_loss_weight=0.0))
    out = model(**user_batch(processor, items), **candidate_batch(processor, items))
    assert out.summary_loss is not None  # still reported
    out.loss.backward()
    with_lambda_zero = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    out = model(**user_batch(processor, items), **candidate_batch(processor, items))
    out.ctr_loss.backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(with_lambda_zero[name], p.grad, msg=name)


def test_thirty_steps_cut_the_loss(tokenizer, processor, items):
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer)).train()
    batch = {**user_batch(processor, items), **candidate_batch(processor, items)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(**batch).loss
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.5 * losses[0], losses


def test_decoder_reads_every_session(model, processor, items):
    history = [make_item(100 + i, topic="sports") for i in range(8)]
    users = processor.encode_users([history])
    sessions = users["session_input_ids"].shape[1]
    assert sessions >= 3
    with torch.no_grad():
        base = model.encode_user(users["session_input_ids"], users["session_attention_mask"], output_details=True)
        for g in range(sessions):
            # change one item token of session g only
            ids = users["session_input_ids"].clone()
            ids[0, g, 3] = (ids[0, g, 3] + 5) % (processor.item_start_token_id - 3) + 3
            changed = model.encode_user(ids, users["session_attention_mask"], output_details=True)
            assert not torch.allclose(changed.summary_state, base.summary_state), f"session {g} ignored"


def test_history_truncated_to_latest_items(model, processor, items):
    too_long = [make_item(200 + i) for i in range(processor.config.max_history_items + 5)]
    users = processor.encode_users([too_long])
    with torch.no_grad():
        out = model.encode_user(users["session_input_ids"], users["session_attention_mask"], output_details=True)
    assert int(out.item_mask.sum()) == processor.config.max_history_items
    # the kept items are the most recent ones (the history is most recent first)
    kept = processor.encode_users([too_long[: processor.config.max_history_items]])
    torch.testing.assert_close(kept["session_input_ids"], users["session_input_ids"])


def test_bad_inputs_raise_clear_errors(model, processor, items):
    users = user_batch(processor, items, summaries=(None, None, None))
    candidates = candidate_batch(processor, items)
    with pytest.raises(ValueError, match="session_input_ids must be an integer tensor"):
        model.encode_user(users["session_input_ids"].float(), users["session_attention_mask"])
    with pytest.raises(ValueError, match="candidate_input_ids has 2 users"):
        model(**users, **{k: v[:2] for k, v in candidates.items()})
    with pytest.raises(ValueError, match="item_attention_mask must have the shape"):
        model.encode_item(candidates["candidate_input_ids"], candidates["candidate_attention_mask"][..., :-1])
    with pytest.raises(ValueError, match="at least one session token"):
        model.encode_user(users["session_input_ids"], torch.zeros_like(users["session_attention_mask"]))
    with pytest.raises(ValueError, match="num_user_codes"):
        EmbSumConfig(num_user_codes=0)
    with pytest.raises(ValueError, match="summary_mode"):
        EmbSumConfig(summary_mode="beam")


def test_activation_checkpointing_gives_the_same_loss_and_gradients(tokenizer, processor, items):
    # `--activation_checkpointing true`: the backbone recomputes activations in backward instead of keeping them
    batch = {**user_batch(processor, items), **candidate_batch(processor, items)}
    gradients = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = EmbSumModel(tiny_config(tokenizer)).train()  # dropout 0: both passes see the same network
        if checkpointing:
            model.activation_checkpointing_enable()
        out = model(**batch)
        out.loss.backward()
        gradients.append((out.loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    assert model.t5.encoder.gradient_checkpointing and model.t5.decoder.gradient_checkpointing
    (plain_loss, plain), (checkpointed_loss, checkpointed) = gradients
    torch.testing.assert_close(checkpointed_loss, plain_loss)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=name)
