"""Backbone loading, save/load, and the trust_remote_code load in a process that never imports embsum_hf."""

import json
import logging
import os
import subprocess
import sys

import torch
from transformers import T5Config, T5ForConditionalGeneration

from embsum_hf import EmbSumConfig, EmbSumModel, EmbSumProcessor


def test_from_backbone_keeps_t5_weights(tmp_path, tokenizer):
    torch.manual_seed(3)
    t5 = T5ForConditionalGeneration(
        T5Config(
            vocab_size=len(tokenizer), d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2, decoder_start_token_id=0
        )
    )
    t5.save_pretrained(tmp_path / "t5")
    model = EmbSumModel.from_backbone(
        str(tmp_path / "t5"), item_start_token_id=tokenizer.convert_tokens_to_ids("<sos>"), num_user_codes=5
    )
    assert model.config.num_user_codes == 5 and model.config.t5_config.d_model == 32
    reference = t5.state_dict()
    for name, value in model.t5.state_dict().items():
        torch.testing.assert_close(value, reference[name], msg=name)
    # a larger tokenizer grows the embedding matrix and keeps the old rows
    grown = EmbSumModel.from_backbone(str(tmp_path / "t5"), vocab_size=len(tokenizer) + 8, item_start_token_id=3)
    assert grown.t5.shared.weight.shape[0] == len(tokenizer) + 8
    torch.testing.assert_close(grown.t5.shared.weight[: len(tokenizer)], reference["shared.weight"])


def test_save_load_and_fresh_process_remote_code(tmp_path, model, processor, items):
    folder = tmp_path / "embsum"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    saved = set(os.listdir(folder))
    assert {
        "model.safetensors",
        "config.json",
        "configuration_embsum.py",
        "modeling_embsum.py",
        "processor_config.json",
        "tokenizer.json",
    } <= saved
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_embsum.EmbSumConfig",
        "AutoModel": "modeling_embsum.EmbSumModel",
    }
    for name in ("configuration_embsum.py", "modeling_embsum.py"):  # the Hub-facing files stay flat
        imports = [line for line in (folder / name).read_text().splitlines() if line.startswith(("import ", "from "))]
        allowed = {"torch", "transformers", "__future__", "dataclasses", ""}
        assert all(line.split()[1].split(".")[0] in allowed for line in imports), imports

    batch = {
        **processor.encode_users([items[:6], items[10:12]]),
        **processor.pad_candidates([processor.tokenize_items(items[20:24])] * 2),
    }
    with torch.no_grad():
        expected = model(**batch).logits
        loaded = EmbSumModel.from_pretrained(folder).eval()
        torch.testing.assert_close(loaded(**batch).logits, expected, atol=0, rtol=0)
    assert EmbSumProcessor.from_pretrained(folder).item_template == processor.item_template

    torch.save(batch, tmp_path / "batch.pt")
    script = (
        "import sys, torch\n"
        "from transformers import AutoModel\n"
        f"model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()\n"
        "assert 'embsum_hf' not in sys.modules, 'the package must not be needed'\n"
        f"batch = torch.load({str(tmp_path / 'batch.pt')!r})\n"
        "with torch.no_grad():\n"
        f"    torch.save(model(**batch).logits, {str(tmp_path / 'logits.pt')!r})\n"
    )
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", PYTHONPATH="")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), expected, atol=0, rtol=0)


def test_a_config_saved_with_the_removed_summary_levers_still_loads(tmp_path, model, processor, items, caplog):
    """config.json as the previous release wrote it: every field, the four summary levers removed since among them."""
    model.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    previous = {  # the removed fields at their old defaults, the model's behaviour now
        "summary_label_smoothing": 0.0,
        "summary_prefix_weight": 1.0,
        "summary_memory": "sessions",
        "summary_guidance": 1.0,
    }
    assert not set(previous) & set(saved)
    users = processor.encode_users([items[:6], items[10:12]])
    with torch.no_grad():
        expected = model.encode_user(**users).user_embeddings
        summaries = model.generate_summary(**users)

    def load(**fields) -> tuple[EmbSumModel, list[str]]:
        path.write_text(json.dumps({**saved, **previous, **fields}))
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            config = EmbSumConfig.from_pretrained(tmp_path)
            loaded = EmbSumModel.from_pretrained(tmp_path).eval()
        assert not any(hasattr(c, name) for c in (config, loaded.config) for name in previous)
        with torch.no_grad():  # it loads and runs as the model it is now
            torch.testing.assert_close(loaded.encode_user(**users).user_embeddings, expected, atol=0, rtol=0)
            torch.testing.assert_close(loaded.generate_summary(**users), summaries)
        loaded.save_pretrained(tmp_path / "again")
        assert not set(previous) & set(json.loads((tmp_path / "again" / "config.json").read_text()))
        return loaded, [r.getMessage() for r in caplog.records if "removed" in r.getMessage()]

    assert load()[1] == []  # the old defaults are what the model does now: nothing to warn about
    _, warnings = load(summary_memory="items", summary_guidance=2.0)
    assert any(m.startswith("EmbSumConfig: summary_memory='items' was removed") for m in warnings), warnings
    assert any("summary_guidance=2.0 was removed in this version (measured no gain)" in m for m in warnings)
    assert not any("summary_label_smoothing" in m or "summary_prefix_weight" in m for m in warnings)
    assert any("now reads every session token" in m for m in warnings)
