"""A trained folder as plain transformers reads it: `AutoTokenizer` finds a plain T5 tokenizer (no processor
`auto_map` in `tokenizer_config.json`, so no custom-code prompt and no model-type warning), while `AutoProcessor`
(remote code) still finds the processor."""

from __future__ import annotations

import json
import logging

from transformers import AutoProcessor, AutoTokenizer, T5Tokenizer

from embsum_hf import EmbSumModel


def test_trained_folder_tokenizer_is_a_plain_tokenizer(tmp_path, config, processor, caplog):
    EmbSumModel(config).save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert "auto_map" not in json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert json.loads((tmp_path / "processor_config.json").read_text())["auto_map"] == {
        "AutoProcessor": "processing_embsum.EmbSumProcessor"
    }
    with caplog.at_level(logging.WARNING):
        tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert type(tokenizer) is T5Tokenizer and tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    assert "model of type" not in caplog.text and "custom code" not in caplog.text
    loaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert loaded.item_template == processor.item_template and type(loaded).__name__ == "EmbSumProcessor"
    assert "auto_map" not in processor.tokenizer.init_kwargs  # the live tokenizer is left as it was
