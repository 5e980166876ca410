"""One home per concept: the data-source registry feeds every source table; run arguments take config defaults."""

import json
import os
import string
import subprocess
import sys

import pytest
from transformers import T5Config

from embsum_hf import EmbSumConfig
from embsum_hf.data import DOMAIN_TEXT_FIELDS
from embsum_hf.data.arguments import DataArguments, load_splits
from embsum_hf.data.sources import SOURCES, get_source
from embsum_hf.processing_embsum import ITEM_TEMPLATES
from embsum_hf.teacher.prompts import get_domain
from embsum_hf.training.recipe import EmbSumRunArguments


def test_every_source_table_reads_the_registry():
    for name, source in SOURCES.items():
        assert DOMAIN_TEXT_FIELDS.get(name, ()) == source.text_fields
        assert get_domain(name) is source.wording and get_domain(source.prompt_domain) == source.wording
        if source.item_template is not None:
            # the template formats exactly the source's text columns (those it shows)
            template = ITEM_TEMPLATES[source.item_template]
            assert set(fields_of(template)) <= set(source.text_fields)
    assert get_source("goodreads").paper_negatives == 2 and get_source("mind").paper_negatives == 4
    known = r"\('mind', 'goodreads', 'movielens', 'custom', 'impressions'\)"
    with pytest.raises(ValueError, match="dataset must be one of " + known):
        load_splits(DataArguments(dataset="amazon", train_data="x"))


def test_a_source_is_one_entry(monkeypatch, tmp_path, model, processor):
    """A source registered by its entry alone (reader, splits, prompt wording, license, citation) is read by
    `load_splits`, worded by the teacher prompt and credited by the model card."""
    from embsum_hf.data import load_mind, make_synthetic_mind
    from embsum_hf.data.sources import DataSource, DataTerms, DomainWording
    from embsum_hf.hub import EmbSumModelCardData, write_model_card
    from embsum_hf.teacher.prompts import build_user_prompt

    reads = []

    def read(args, path, split):
        reads.append(split)
        return load_mind(path)

    fields = (("Title", ("title",)), ("Show", ("show",)))
    wording = DomainWording("episodes", "podcast episode", "podcast episodes", "listened to", fields)
    podcasts = DataSource(
        "podcasts",
        read,
        splits=("train", "dev"),
        wording=wording,
        license=DataTerms("cc-by-4.0", terms="the podcast catalogue is CC BY 4.0"),
        citation="@misc{podcasts2026,\n  title = {A podcast catalogue}\n}",
    )
    monkeypatch.setitem(SOURCES, "podcasts", podcasts)

    sizes = dict(num_users=10, num_news=30, num_train_impressions=12, num_dev_impressions=8)
    root = make_synthetic_mind(tmp_path / "data", **sizes)
    args = DataArguments(dataset="podcasts", train_data=str(root / "train"), eval_data=str(root / "dev"))
    splits = load_splits(args)
    assert reads == ["train", "dev"] and len(splits.dev.impressions) == 8 and splits.test is None
    with pytest.raises(ValueError, match="test_data is for impressions; podcasts gives its test split itself"):
        load_splits(DataArguments(dataset="podcasts", train_data=str(root / "train"), test_data="x"))

    assert get_domain("podcasts") is wording and get_domain("episodes") is wording
    prompt = build_user_prompt([{"title": "Deep space", "show": "Orbit"}], "podcasts")
    assert "the 1 podcast episodes a user listened to" in prompt and "1. Title: Deep space; Show: Orbit" in prompt

    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    card = write_model_card(tmp_path / "model", EmbSumModelCardData(data_domain="podcasts", dataset_name="Pods"))
    assert (card.data.license, card.data.license_name) == ("cc-by-4.0", None)
    assert "| License | cc-by-4.0 (the podcast catalogue is CC BY 4.0) |" in card.text
    assert card.text.index("@inproceedings{zhang2024embsum") < card.text.index("@misc{podcasts2026")


def fields_of(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field]


def test_model_arguments_take_their_defaults_from_the_configs():
    args = EmbSumRunArguments()
    config = EmbSumConfig()
    assert all(getattr(config, name) == value for name, value in args.config_overrides().items())
    t5 = T5Config()
    assert all(getattr(t5, name) == value for name, value in args.t5_overrides().items())


def test_prepare_depends_on_data_only(tmp_path):
    from embsum_hf.data import make_synthetic_mind

    root = make_synthetic_mind(
        tmp_path / "mind", num_users=10, num_news=30, num_train_impressions=12, num_dev_impressions=8
    )
    script = (
        "import sys, json; from embsum_hf.cli import main; "
        f"status = main(['prepare', '--train_data', {str(root / 'train')!r}, '--eval_data', {str(root / 'dev')!r}, "
        f"'--output_dir', {str(tmp_path / 'out')!r}]); "
        "print(json.dumps([status, sorted(m for m in sys.modules if m.startswith('embsum_hf.training'))]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    status, training_modules = json.loads(result.stdout.splitlines()[-1])
    assert status == 0 and training_modules == []
    assert (tmp_path / "out" / "data" / "dev").is_dir()
