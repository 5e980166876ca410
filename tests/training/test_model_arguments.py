"""`ModelArguments`: a plain dataclass whose defaults, help and validation are the configs' own (one place per knob),
and a config saved by the previous release still loads."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest
from transformers import T5Config

from embsum_hf import EmbSumConfig
from embsum_hf.cli import main
from embsum_hf.training import ModelArguments
from embsum_hf.training.arguments import PAPER_MODEL_LEVERS, docstring_entry

EMBSUM_FIELDS = {f.name for f in dataclasses.fields(EmbSumConfig)}


def owner(name: str) -> type:
    return EmbSumConfig if name in EMBSUM_FIELDS else T5Config


def test_train_help_lists_every_model_field_with_the_configs_default_and_help():
    help_text = subprocess.run(
        [sys.executable, "-m", "embsum_hf.cli", "train", "--help"], capture_output=True, text=True, timeout=120
    ).stdout
    # one block per option: its line `  --name ...` and the indented help lines under it, on one line
    blocks = {}
    for block in re.split(r"\n(?=  --)", help_text):
        if block.startswith("  --"):
            blocks[block.split()[0][2:]] = " ".join(block.split())
    defaults = {f.name: f.default for f in dataclasses.fields(ModelArguments)}
    assert {"num_user_codes", "summary_copy", "d_model", "dropout_rate"} <= set(defaults)
    for name in defaults:
        config_class = owner(name)
        default = getattr(config_class(), name)  # what the config itself becomes without the argument
        entry = docstring_entry(config_class, name)
        assert entry, f"{config_class.__name__}'s docstring documents no {name}"
        if name in PAPER_MODEL_LEVERS:  # unset: `embsum train` chooses it from the data, else the config's default
            assert blocks[name].endswith(f"otherwise the config's {default}. (default: None)"), blocks[name]
        elif name == "dropout_rate":  # unset: the recipe's from-scratch dropout, not T5's
            assert blocks[name].endswith(f"not T5's {default}. (default: None)"), blocks[name]
        else:
            assert blocks[name].endswith(f"(default: {default})"), blocks[name]
        assert f"{config_class.__name__}.{name}: {' '.join(entry.split()[:6])}" in blocks[name]


def test_model_arguments_are_config_fields_and_build_the_default_model():
    t5 = T5Config()
    assert all(owner(f.name) is EmbSumConfig or hasattr(t5, f.name) for f in dataclasses.fields(ModelArguments))
    args = ModelArguments()
    config = EmbSumConfig(t5_config=args.t5_overrides(), **args.config_overrides())
    assert config.to_dict() == EmbSumConfig().to_dict()  # every default is the configs' own
    assert set(args.t5_overrides()) == {"d_model", "num_layers", "num_heads", "d_ff", "d_kv"}  # dropout: the recipe's
    assert ModelArguments(dropout_rate=0.2).t5_overrides()["dropout_rate"] == 0.2
    assert "d_model" not in args.config_overrides() and "num_user_codes" in args.config_overrides()
    # the summary levers left unset are the config's (the paper's) unless `embsum train` chooses them; given, they stay
    assert not set(PAPER_MODEL_LEVERS) & set(args.config_overrides())
    given = ModelArguments(**{name: type(paper)(0) for name, paper in PAPER_MODEL_LEVERS.items()})
    assert given.summary_copy is not None and not given.summary_session_positions
    chosen = {name: given.config_overrides()[name] for name in PAPER_MODEL_LEVERS}
    assert chosen == dict.fromkeys(PAPER_MODEL_LEVERS, 0)


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--d_model", "0", "EmbSumConfig.t5_config.d_model must be a positive integer, got 0"),
        ("--num_heads", "0", "EmbSumConfig.t5_config.num_heads must be a positive integer, got 0"),
        ("--num_heads", "1024", "EmbSumConfig.t5_config.d_kv must be a positive integer, got 0"),  # d_model 512
        ("--dropout_rate", "1", "EmbSumConfig.t5_config.dropout_rate must be in [0, 1), got 1.0"),
        ("--num_user_codes", "-2", "EmbSumConfig.num_user_codes must be a positive integer, got -2"),
        ("--summary_loss_weight", "nan", "EmbSumConfig.summary_loss_weight must be >= 0, got nan"),
        ("--summary_mode", "beam", "EmbSumConfig.summary_mode must be one of ('generate', 'start'), got 'beam'"),
        ("--vocab_size", "0", "vocab_size must be a positive integer, got 0"),
    ],
)
def test_a_bad_model_value_is_one_line_naming_the_field(flag, value, message, tmp_path, capsys):
    status = main(["train", "--train_data", "x", "--output_dir", str(tmp_path / "out"), flag, value])
    lines = capsys.readouterr().err.splitlines()
    assert status == 2 and lines[0] == f"embsum train: error: {message}"
    assert not (tmp_path / "out").exists()  # refused as the flags are read, before any work


# config.json of a tiny model saved by the previous release (main c27640d), as `save_pretrained` wrote it
PREVIOUS_RELEASE_CONFIG = """{
  "auto_map": {"AutoConfig": "configuration_embsum.EmbSumConfig"},
  "item_max_tokens": 64, "item_prior_ids": null, "item_start_token_id": 299, "max_history_items": 60,
  "model_type": "embsum", "num_item_codes": 2, "num_user_codes": 4, "poly_projection_size": 16,
  "session_max_items": 1, "session_max_tokens": 512, "summary_copy": false,
  "summary_generation": {"no_repeat_ngram_size": 2}, "summary_history_boost": 16.0,
  "summary_history_boost_plausibility": 0.01, "summary_loss_weight": 1.0, "summary_max_tokens": 64,
  "summary_mode": "start", "summary_slot_lead": "interested in",
  "t5_config": {
    "classifier_dropout": 0.0, "d_ff": 32, "d_kv": 8, "d_model": 16, "decoder_start_token_id": 0,
    "dense_act_fn": "relu", "dropout_rate": 0.0, "eos_token_id": 1, "feed_forward_proj": "relu",
    "initializer_factor": 1.0, "is_decoder": false, "is_gated_act": false, "layer_norm_epsilon": 1e-06,
    "model_type": "t5", "num_decoder_layers": 1, "num_heads": 2, "num_layers": 1, "pad_token_id": 0,
    "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32, "scale_decoder_outputs": true,
    "tie_word_embeddings": true, "use_cache": true, "vocab_size": 300
  },
  "tie_word_embeddings": true, "transformers_version": "5.25.0"
}"""


def test_a_config_saved_by_the_previous_release_loads(tmp_path):
    (tmp_path / "config.json").write_text(PREVIOUS_RELEASE_CONFIG)
    previous = json.loads(PREVIOUS_RELEASE_CONFIG)
    config = EmbSumConfig.from_pretrained(tmp_path)
    assert (config.num_user_codes, config.session_max_items, config.t5_config.d_model) == (4, 1, 16)
    config.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert {name: saved[name] for name in previous} == previous  # nothing dropped or changed
    added = set(saved) - set(previous)  # fields added since, at the defaults: the model that folder holds
    assert added == {"summary_session_positions"} and all(saved[name] == getattr(EmbSumConfig, name) for name in added)
