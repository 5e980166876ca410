"""The summary path's settings: generation defaults saved with the model, the weighted loss, the decoder memory."""

import pytest
import torch
import torch.nn.functional as F

from embsum_hf import EmbSumConfig, EmbSumModel, EmbSumProcessor

from ..conftest import tiny_config


def users_of(processor, items, summaries=None):
    return processor.encode_users([items[:9], items[20:23], []], summaries=summaries)


def test_generation_defaults_are_saved_and_used(tmp_path, tokenizer, processor, items):
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer, summary_generation={"no_repeat_ngram_size": 1}))  # no token twice
    assert model.t5.generation_config.no_repeat_ngram_size == 1
    users = users_of(processor, items)
    ids = model.generate_summary(**users)
    for row in ids[:, 1:].tolist():  # after the start token; a random tiny model repeats tokens when left alone
        written = [token for token in row if token != tokenizer.pad_token_id]
        assert len(written) == len(set(written)), written
    free = model.generate_summary(**users, no_repeat_ngram_size=0)  # a call's own kwargs win
    assert any(len(set(row)) < len(row) for row in free[:, 1:].tolist())
    model.save_pretrained(tmp_path)
    loaded = EmbSumModel.from_pretrained(tmp_path)
    assert loaded.config.summary_generation == {"no_repeat_ngram_size": 1}
    assert loaded.t5.generation_config.no_repeat_ngram_size == 1
    torch.testing.assert_close(loaded.generate_summary(**users), ids)
    assert EmbSumConfig(t5_config={"vocab_size": 64}, item_start_token_id=10).summary_generation == {
        "no_repeat_ngram_size": 2
    }


def test_prefix_weight_and_label_smoothing_loss(tokenizer, items):
    processor = EmbSumProcessor(tokenizer, tiny_config(tokenizer, summary_max_tokens=40), item_template="mind")
    summaries = [f"The user is interested in {topic}." for topic in ("sports", "space", "food")]
    users = users_of(processor, items, summaries)
    candidates = processor.pad_candidates([processor.tokenize_items(items[30:32])] * 3)
    labels = users["summary_labels"]
    shared = 0
    while (labels[:, shared] == labels[0, shared]).all():
        shared += 1
    assert shared >= 5  # "The user is interested in" is the batch's common prefix
    torch.manual_seed(0)
    plain = EmbSumModel(tiny_config(tokenizer, summary_max_tokens=40)).eval()
    weighted = EmbSumModel(
        tiny_config(tokenizer, summary_max_tokens=40, summary_prefix_weight=0.25, summary_label_smoothing=0.1)
    ).eval()
    weighted.load_state_dict(plain.state_dict())
    with torch.no_grad():
        base = plain(**users, **candidates)
        out = weighted(**users, **candidates)
        # the per-token NLL from the plain model's logits, recomputed by hand
        states = plain.encode_user(
            users["session_input_ids"], users["session_attention_mask"], labels, output_details=True
        )
        decoder = plain.t5.decoder(
            input_ids=states.summary_ids,
            encoder_hidden_states=states.session_states.flatten(1, 2),
            encoder_attention_mask=users["session_attention_mask"].flatten(1),
        ).last_hidden_state
        logits = plain._lm_logits(decoder)
    nll = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="none").view(
        labels.shape
    )
    smooth = F.cross_entropy(
        logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="none", label_smoothing=0.1
    ).view(labels.shape)
    valid = (labels != -100).float()
    torch.testing.assert_close(base.summary_loss, (nll * valid).sum() / valid.sum())
    weights = valid.clone()
    weights[:, :shared] *= 0.25
    torch.testing.assert_close(out.summary_loss, (smooth * weights).sum() / weights.sum())
    with pytest.raises(ValueError, match="summary_prefix_weight"):
        tiny_config(tokenizer, summary_prefix_weight=0.0)
    with pytest.raises(ValueError, match="summary_memory"):
        tiny_config(tokenizer, summary_memory="everything")


@pytest.mark.parametrize("memory, reads_words", [("sessions", True), ("items", False)])
def test_decoder_memory(tokenizer, processor, items, memory, reads_words):
    """With "items" the decoder reads only item-start and end-of-session states: other token states change nothing."""
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer, summary_memory=memory)).eval()
    users = users_of(processor, items, ["The user likes sports.", "Space.", "Food."])
    ids, mask = users["session_input_ids"], users["session_attention_mask"]
    with torch.no_grad():
        base = model.encode_user(ids, mask, users["summary_labels"], output_details=True)
        states = base.session_states.clone()
        words = mask.bool() & (ids != model.config.item_start_token_id) & (ids != tokenizer.eos_token_id)
        states[words] += 1.0
        changed = model.encode_user(ids, mask, users["summary_labels"], session_states=states)
        generated = model.generate_summary(ids, mask)  # every user, the empty history too, gets a summary
    assert torch.isfinite(changed.user_embeddings).all() and generated.shape[0] == 3
    assert torch.allclose(changed.summary_state, base.summary_state) != reads_words


def test_population_contrast(tokenizer, processor, items):
    """Guidance leaves the population's own summary (an empty history) alone and moves the others away from it."""
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer, summary_generation={})).eval()
    users = users_of(processor, items)  # the last user has an empty history
    plain = model.generate_summary(**users)
    torch.testing.assert_close(model.generate_summary(**users, guidance=1.0), plain)
    guided = model.generate_summary(**users, guidance=4.0)
    width = min(plain.shape[1], guided.shape[1])
    assert torch.equal(guided[2, :width], plain[2, :width])  # user == population: null + 4 * 0 = null
    assert not torch.equal(guided[:2, :width], plain[:2, :width])
    saved = EmbSumModel(tiny_config(tokenizer, summary_generation={}, summary_guidance=4.0)).eval()
    saved.load_state_dict(model.state_dict())
    torch.testing.assert_close(saved.generate_summary(**users), guided)  # the config's default
    with pytest.raises(ValueError, match="summary_guidance"):
        tiny_config(tokenizer, summary_guidance=-1.0)
