"""EmbSumProcessor: templates, item budgets, session packing, summaries, persistence, tokenizer training."""

import json

import pytest
import torch
from transformers import AutoProcessor, BatchFeature, ProcessorMixin

from embsum_hf import EmbSumProcessor, train_tokenizer

from ..conftest import make_item, tiny_config


def test_templates_and_missing_field(tokenizer, config, processor):
    item = make_item(1)
    assert processor.format_item(item) == (
        f"News Title: {item['title']}; News Abstract: {item['abstract']}; News Category: {item['category']}"
    )
    books = EmbSumProcessor(tokenizer, config, item_template="goodreads")
    with pytest.raises(ValueError, match=r"item 'N1' lacks field\(s\) \['author', 'description', 'genre'\]"):
        books.tokenize_items([item])
    custom = EmbSumProcessor(tokenizer, config, item_template="Headline: {title} [{category}]")
    assert custom.format_item(item) == f"Headline: {item['title']} [{item['category']}]"
    with pytest.raises(ValueError, match="neither a known domain"):
        EmbSumProcessor(tokenizer, config, item_template="plain text")


def test_items_start_with_sos_and_respect_their_budget(processor):
    long_item = dict(make_item(2), abstract="football " * 200)
    ids = processor.tokenize_items([make_item(1), long_item])
    assert all(row[0] == processor.item_start_token_id for row in ids)
    assert len(ids[1]) == processor.config.item_max_tokens
    assert processor.item_start_token_id not in ids[0][1:]


def test_sessions_pack_oldest_first_within_budget(processor):
    history = processor.tokenize_items([make_item(i) for i in range(10)])  # most recent first
    sessions = processor.pack_sessions(history)
    budget = processor.config.session_max_tokens
    assert all(len(s) <= budget and s[-1] == processor.eos_token_id for s in sessions)
    flat = [token for s in sessions for token in s[:-1]]
    assert flat == [token for row in reversed(history) for token in row]  # every item, oldest first
    # a new engagement changes only the newest session: older sessions stay byte-identical
    newer = processor.pack_sessions(processor.tokenize_items([make_item(99)]) + history)
    assert newer[: len(sessions) - 1] == sessions[:-1]
    assert processor.pack_sessions([]) == [[processor.eos_token_id]]


def test_summary_labels(processor):
    labels = processor.encode_summaries(["The user likes football.", None, ""])
    assert labels[0, (labels[0] != -100).sum() - 1] == processor.eos_token_id
    assert (labels[1] == -100).all() and (labels[2] == -100).all()
    long = processor.encode_summaries(["football " * 100])
    assert long.shape[1] == processor.config.summary_max_tokens
    assert processor.decode_summaries(processor.encode_summaries(["football goal"])) == ["football goal"]


def test_mismatched_item_start_id_is_rejected(tokenizer):
    with pytest.raises(ValueError, match="item_start_token_id"):
        EmbSumProcessor(tokenizer, tiny_config(tokenizer, item_start_token_id=3))


def test_save_and_load(tmp_path, processor, items):
    processor.save_pretrained(tmp_path)
    # the processor saves only its own files; its budgets are the model's config
    assert not (tmp_path / "config.json").exists()
    assert json.loads((tmp_path / "processor_config.json").read_text())["item_template"] == processor.item_template
    with pytest.raises(OSError, match="has no config.json"):
        EmbSumProcessor.from_pretrained(tmp_path)
    processor.config.save_pretrained(tmp_path)
    loaded = EmbSumProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, ProcessorMixin)
    assert loaded.item_template == processor.item_template
    assert loaded.config.session_max_tokens == processor.config.session_max_tokens
    a = processor.encode_users([items[:5]], summaries=["sports fan"])
    b = loaded.encode_users([items[:5]], summaries=["sports fan"])
    assert isinstance(b, BatchFeature) and set(b) == {"session_input_ids", "session_attention_mask", "summary_labels"}
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_strings_are_the_first_field_and_calls_return_batch_features(processor, items):
    titles = [item["title"] for item in items[:3]]
    as_dicts = [{"title": title, "abstract": None, "category": None} for title in titles]
    strings, dicts = processor.encode_items(titles), processor.encode_items(as_dicts)
    assert all(torch.equal(strings[key], dicts[key]) for key in dicts)
    users = processor.encode_users([titles, []])
    assert torch.equal(users["session_input_ids"][0], processor.encode_users([as_dicts])["session_input_ids"][0])
    both = processor(histories=[titles], items=titles, summaries=["space fan"])
    assert set(both) == {
        "session_input_ids",
        "session_attention_mask",
        "summary_labels",
        "item_input_ids",
        "item_attention_mask",
    }
    moved = both.to("meta")  # BatchFeature.to moves every tensor
    assert all(value.device.type == "meta" for value in moved.values())
    with pytest.raises(ValueError, match=r"item must be an item dict or a string, got int"):
        processor.encode_items([3])


def test_auto_processor_returns_the_embsum_processor(tmp_path, processor, model):
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "processor_config.json").read_text())["auto_map"] == {
        "AutoProcessor": "processing_embsum.EmbSumProcessor"
    }
    assert (tmp_path / "processing_embsum.py").is_file()
    assert type(AutoProcessor.from_pretrained(tmp_path)) is EmbSumProcessor  # in the package's process
    loaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(loaded).__name__ == "EmbSumProcessor" and loaded.item_fields == processor.item_fields
    expected = processor.encode_items(["moon"])["item_input_ids"]
    assert torch.equal(loaded.encode_items(["moon"])["item_input_ids"], expected)


def test_train_tokenizer_is_t5_style():
    texts = ["rocket launch orbit", "football goal match", "election vote senate"] * 20
    tok = train_tokenizer(texts, vocab_size=60)
    assert tok.convert_ids_to_tokens([0, 1, 2]) == ["<pad>", "</s>", "<unk>"]
    assert tok.pad_token_id == 0 and tok.eos_token_id == 1
    assert "<sos>" in tok.get_vocab()
    ids = tok("rocket launch", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and tok.decode(ids) == "rocket launch"


def test_item_text_spelling_the_item_start_token_adds_no_history_row(processor):
    ids = processor.tokenize_items([dict(make_item(1), title="breaking <sos> news")])[0]
    assert ids.count(processor.item_start_token_id) == 1
