"""The summary path's settings: generation defaults saved with the model, the loss, the decoder memory."""

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


def test_summary_loss_is_the_token_mean_nll(tokenizer, items):
    processor = EmbSumProcessor(tokenizer, tiny_config(tokenizer, summary_max_tokens=40), item_template="mind")
    summaries = ["The user is interested in sports.", "Space.", "The user likes food and more food."]
    users = users_of(processor, items, summaries)
    candidates = processor.pad_candidates([processor.tokenize_items(items[30:32])] * 3)
    labels = users["summary_labels"]
    assert (labels == -100).any()  # summaries of different lengths: padding the mean skips
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer, summary_max_tokens=40)).eval()
    with torch.no_grad():
        out = model(**users, **candidates)
        # the per-token NLL from the model's logits, recomputed by hand
        states = model.encode_user(
            users["session_input_ids"], users["session_attention_mask"], labels, output_details=True
        )
        decoder = model.t5.decoder(
            input_ids=states.summary_ids,
            encoder_hidden_states=states.session_states.flatten(1, 2),
            encoder_attention_mask=users["session_attention_mask"].flatten(1),
        ).last_hidden_state
        logits = model._lm_logits(decoder)
    nll = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="none").view(
        labels.shape
    )
    valid = (labels != -100).float()
    torch.testing.assert_close(out.summary_loss, (nll * valid).sum() / valid.sum())


def test_the_decoder_reads_every_session_token(tokenizer, processor, items):
    """The summary (and `h_sum`) reads the word states of the sessions, not only the item starts."""
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer)).eval()
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
    assert not torch.allclose(changed.summary_state, base.summary_state)


def start(scores):
    """The decoder's first step: only the start token (pad, which never gains) written so far."""
    return torch.zeros(len(scores), 1, dtype=torch.long)


def test_history_token_boost_by_hand():
    from embsum_hf.modeling_embsum import HistoryTokenBoost

    history = torch.tensor([[6, 6, 8, 5, 9], [7, 3, 3, 3, 3]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 0, 0, 0, 0]])  # token 9 of user 0 and the 3s of user 1 are padding
    classes = torch.tensor([-1, -1, -1, 0, 1, 2, 0, 1, 3, 4])  # 3 ~ 6 and 4 ~ 7 (one word, two cases)
    boost = HistoryTokenBoost(history, mask, 2.0, token_classes=classes, excluded=(5,))
    scores = torch.randn(4, 12)  # 2 beams per user; ids 10 and 11 have no class entry: their own classes
    out = boost(start(scores), scores)
    gained = out - scores.log_softmax(-1)
    expected = torch.zeros(2, 12)
    expected[0, [3, 6]] = 2.0  # user 0 read 6 twice (class 0, shared with 3): the most frequent word, full boost
    expected[0, 8] = 1.0  # read once: half the most frequent word's count; 5 is excluded
    expected[1, [4, 7]] = 2.0  # user 1 read 7 (class 1, shared with 4)
    torch.testing.assert_close(gained, expected.repeat_interleave(2, dim=0))
    alone = HistoryTokenBoost(history, mask, 1.0)(start(scores[::2]), scores[::2]) - scores[::2].log_softmax(-1)
    assert alone.nonzero().tolist() == [[0, 5], [0, 6], [0, 8], [1, 7]]  # without classes: exactly the tokens read
    torch.testing.assert_close(alone[0, [5, 6, 8]], torch.tensor([0.5, 1.0, 0.5]))
    # coverage: once the summary has written a word (here token 3, the class of 6), it gains no more
    written = boost(torch.tensor([[0, 3], [0, 3], [0, 0], [0, 0]]), scores) - scores.log_softmax(-1)
    covered = expected.repeat_interleave(2, dim=0)
    covered[:2, [3, 6]] = 0.0
    torch.testing.assert_close(written, covered)
    # the plausibility constraint: only tokens at least half as likely as the best gain
    sure = torch.full((2, 12), -10.0)
    sure[:, 0] = 0.0  # the decoder is sure of token 0 (not read)
    sure[0, 6] = 0.0  # and hesitates between 0 and 6 for user 0
    gated = HistoryTokenBoost(history, mask, 3.0, token_classes=classes, plausibility=0.5)(start(sure), sure)
    gain = gated - sure.log_softmax(-1)
    assert gain.nonzero().tolist() == [[0, 6]] and float(gain[0, 6]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="plausibility"):
        HistoryTokenBoost(history, mask, 1.0, plausibility=2.0)


def test_token_classes_fold_letter_case(tmp_path):
    from transformers import T5Tokenizer

    from embsum_hf.processing_embsum import add_item_start_token

    pieces = ["▁Comedy", "▁comedy", "▁Horror", "▁horror", "▁drama", ",", "▁", "a", "o", "▁News", "▁Title", ":"]
    tokenizer = T5Tokenizer(vocab=[("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(p, -1.0) for p in pieces])
    add_item_start_token(tokenizer)
    processor = EmbSumProcessor(tokenizer, tiny_config(tokenizer), item_template="mind")
    classes = processor.token_classes()
    assert classes.shape == (len(tokenizer),)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in pieces}
    assert tokenizer.tokenize("Comedy horror, drama") == ["▁Comedy", "▁horror", ",", "▁drama"]
    assert classes[ids["▁Comedy"]] == classes[ids["▁comedy"]] != classes[ids["▁horror"]] == classes[ids["▁Horror"]]
    assert len({int(classes[ids[p]]) for p in ("▁comedy", "▁horror", "▁drama", "o")}) == 4
    assert classes[tokenizer.all_special_ids].eq(-1).all()
    assert classes[ids[","]] == classes[ids["▁"]] == -1  # punctuation and the bare word marker never gain
    assert classes[ids["▁News"]] == classes[ids["▁Title"]] == -1  # words of the item template: every item has them
    assert classes[ids["a"]] == -1  # a piece the tokenizer cuts a template word into ("Abstract" -> ... "a" ...)
    assert processor.token_classes() is classes  # computed once
    processor.save_pretrained(tmp_path)  # the cache is not part of the saved processor
    processor.config.save_pretrained(tmp_path)
    assert "_token_classes" not in (tmp_path / "processor_config.json").read_text()
    torch.testing.assert_close(EmbSumProcessor.from_pretrained(tmp_path).token_classes(), classes)


def test_history_boost_writes_the_users_own_words(tmp_path, tokenizer, processor, items):
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer, summary_generation={}, summary_history_boost=0.0)).eval()
    users = processor.encode_users([items[:3], items[20:22]])
    plain = model.generate_summary(**users)  # boost 0: plain greedy decoding
    boosted = model.generate_summary(**users, history_boost=100.0, history_boost_plausibility=0.0)
    assert not torch.equal(boosted, plain)
    excluded = {tokenizer.pad_token_id, tokenizer.eos_token_id, model.config.item_start_token_id}
    for row in range(2):
        read = set(users["session_input_ids"][row][users["session_attention_mask"][row].bool()].tolist()) - excluded
        remaining = set(read)
        written = [t for t in boosted[row, 1:].tolist() if t not in excluded]
        assert written
        for token in written:  # an untrained decoder copies what it read, each word once, until all are written
            if not remaining:
                break
            assert token in remaining, (token, remaining)
            remaining.discard(token)
    saved = EmbSumModel(
        tiny_config(
            tokenizer, summary_generation={}, summary_history_boost=100.0, summary_history_boost_plausibility=0.0
        )
    ).eval()
    saved.load_state_dict(model.state_dict())
    torch.testing.assert_close(saved.generate_summary(**users), boosted)  # the config's default
    saved.save_pretrained(tmp_path)
    assert EmbSumModel.from_pretrained(tmp_path).config.summary_history_boost == 100.0
    with pytest.raises(ValueError, match="summary_history_boost"):
        tiny_config(tokenizer, summary_history_boost=-1.0)
    with pytest.raises(ValueError, match="summary_history_boost_plausibility"):
        tiny_config(tokenizer, summary_history_boost_plausibility=1.5)


def test_history_boost_changes_the_written_summary_not_the_ranking(tokenizer, processor, items):
    """`h_sum` (summary_mode "generate") reads plain greedy decoding: the boost changes what users see, not scores."""
    torch.manual_seed(0)
    plain = EmbSumModel(tiny_config(tokenizer, summary_mode="generate", summary_history_boost=0.0)).eval()
    boosted = EmbSumModel(
        tiny_config(
            tokenizer, summary_mode="generate", summary_history_boost=100.0, summary_history_boost_plausibility=0
        )
    ).eval()
    boosted.load_state_dict(plain.state_dict())
    users = processor.encode_users([items[:3], items[20:22]])
    assert not torch.equal(boosted.generate_summary(**users), plain.generate_summary(**users))
    with torch.no_grad():
        torch.testing.assert_close(
            boosted.encode_user(**users).user_embeddings, plain.encode_user(**users).user_embeddings
        )
