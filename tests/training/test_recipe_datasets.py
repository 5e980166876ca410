"""`train_embsum` (the recipe of `embsum train`) on Goodreads-format and custom data: the synthetic MIND interactions
rewritten as a Goodreads books/interactions pair and as a custom items table + engagement log."""

import csv
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from transformers import HfArgumentParser

from embsum_hf import EmbSumProcessor
from embsum_hf.data import load_data, load_mind, make_synthetic_mind
from embsum_hf.processing_embsum import ITEM_TEMPLATES
from embsum_hf.training import EmbSumTrainingArguments
from embsum_hf.training.recipe import EmbSumRunArguments, load_splits, train_embsum

TINY = dict(
    vocab_size=300,
    d_model=32,
    num_layers=1,
    num_heads=2,
    d_ff=64,
    dropout_rate=0.0,
    num_user_codes=4,
    num_item_codes=2,
    max_history_items=8,
    session_max_tokens=64,
    item_max_tokens=24,
    summary_max_tokens=8,
    summary_mode="start",
    rouge_users=0,
)


@pytest.fixture(scope="module")
def interactions(tmp_path_factory):
    """(items, one row per shown candidate: user, item, clicked, time, impression id) of a synthetic MIND split."""
    root = make_synthetic_mind(
        tmp_path_factory.mktemp("mind"), num_users=25, num_news=80, num_train_impressions=120, num_dev_impressions=1
    )
    data = load_mind(root, "train")
    rows = []
    for impression in data.impressions:
        # MIND times are shared by many users: spread them so each user's impressions keep their order
        time = datetime.fromisoformat(impression["time"]) + timedelta(seconds=int(impression["impression_id"]))
        for item_id, label in zip(impression["candidates"], impression["labels"]):
            rows.append((impression["user_id"], item_id, label, time, impression["impression_id"]))
    return data.items.to_list(), rows


def run(tmp_path, training: dict | None = None, **run_args) -> dict:
    args = EmbSumRunArguments(**TINY, **run_args)
    training_args = EmbSumTrainingArguments(
        output_dir=str(tmp_path / "model"),
        max_steps=3,
        per_device_train_batch_size=8,
        learning_rate=3e-3,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        **(training or {}),
    )
    return train_embsum(args, training_args)


def assert_split_by_time(results: dict, name: str) -> None:
    assert results["train_split"] == f"{name}:train"
    for split in ("dev", "test"):
        metrics = results[split]
        assert metrics["split"] == f"{name}:{split}" and metrics[f"{split}_num_impressions"] > 0
        assert 0.0 <= metrics[f"{split}_auc"] <= 1.0


def custom_files(tmp_path, interactions) -> dict:
    """The interactions as a custom items table + engagement log; the run arguments that read them."""
    items, rows = interactions
    with open(tmp_path / "items.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "title", "abstract", "category", "url"])
        writer.writerows([item["item_id"], item["title"], item["abstract"], item["category"], "x"] for item in items)
    with open(tmp_path / "log.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uid", "item_id", "clicked", "ts", "shown_id"])
        writer.writerows((user, item, label, time.isoformat(), shown) for user, item, label, time, shown in rows)
    return dict(
        dataset="custom",
        train_data=str(tmp_path / "log.csv"),
        items_data=str(tmp_path / "items.csv"),
        text_columns="title,abstract,category",
        user_column="uid",
        label_column="clicked",
        time_column="ts",
        impression_column="shown_id",
    )


def test_late_item_prior_through_the_recipe_records_its_weight_and_saves_the_fused_model(tmp_path, interactions):
    import torch

    from embsum_hf import EmbSumModel
    from embsum_hf.training.item_prior import PRIOR_WEIGHTS

    results = run(
        tmp_path,
        item_prior=True,
        **custom_files(tmp_path, interactions),
        training=dict(item_prior_fusion="late", item_prior_history_draws=2),
    )
    weight = results["item_prior_weight"]  # chosen on the dev split after training
    assert weight in PRIOR_WEIGHTS
    prior = EmbSumModel.from_pretrained(tmp_path / "model").item_prior.weight
    # the saved model holds weight x the fit: all zeros exactly when the dev split chose to leave the prior out
    assert bool(torch.count_nonzero(prior)) == (weight > 0)


def test_custom_items_table_and_log(tmp_path, interactions):
    results = run(tmp_path, **custom_files(tmp_path, interactions), save_splits=True)
    assert_split_by_time(results, "custom")
    # the saved splits serve every command's --data: `embsum evaluate` on them reproduces the test metrics
    evaluated = subprocess.run(
        [
            sys.executable,
            "-m",
            "embsum_hf.cli",
            "evaluate",
            "--model",
            str(tmp_path / "model"),
            "--data",
            str(tmp_path / "model" / "data"),
            "--split",
            "test",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.loads(evaluated.stdout)
    assert metrics["split"] == "custom:test" and metrics["auc"] == pytest.approx(results["test"]["test_auc"], abs=1e-6)
    processor = EmbSumProcessor.from_pretrained(tmp_path / "model")
    assert processor.item_template == "Title: {title}; Abstract: {abstract}; Category: {category}"  # from the columns
    assert "with 4 sampled negatives per click" in (tmp_path / "model" / "README.md").read_text()


def test_prepare_saves_the_splits_train_would_use(tmp_path, interactions):
    items, rows = interactions
    with open(tmp_path / "items.csv", "w", newline="") as handle:
        rows_out = [[item["item_id"], item["title"], item["category"]] for item in items]
        csv.writer(handle).writerows([["item_id", "title", "category"], *rows_out])
    with open(tmp_path / "log.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "label", "timestamp"])
        writer.writerows((user, item, label, time.isoformat()) for user, item, label, time, _ in rows)
    # a training config: `prepare` reads its data fields and output_dir, and ignores the training-only keys
    config = {
        "dataset": "custom",
        "train_data": str(tmp_path / "log.csv"),
        "items_data": str(tmp_path / "items.csv"),
        "output_dir": str(tmp_path / "run"),
        "learning_rate": 1e-4,
        "bf16": True,
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "embsum_hf.cli", "prepare", str(tmp_path / "run.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = load_splits(
        EmbSumRunArguments(dataset="custom", train_data=config["train_data"], items_data=config["items_data"])
    )
    for name in ("train", "dev", "test"):
        saved = load_data(tmp_path / "run" / "data", name)
        assert saved.split == f"custom:{name}"
        assert f"{tmp_path / 'run' / 'data' / name}: custom:{name}" in result.stdout
        assert saved.impressions.to_list() == getattr(expected, name).impressions.to_list()


def test_goodreads_books_and_interactions(tmp_path, interactions):
    items, rows = interactions
    books = [
        {
            "book_id": item["item_id"],
            "title": item["title"],
            "authors": [],
            "description": item["abstract"],
            "popular_shelves": [{"name": "to-read", "count": "50"}, {"name": item["category"], "count": "9"}],
        }
        for item in items
    ]
    (tmp_path / "books.json").write_text("".join(json.dumps(book) + "\n" for book in books))
    ratings = [  # clicks as 5 stars, skips as 1 star (> 3 positive, < 3 negative)
        {
            "user_id": user,
            "book_id": item,
            "rating": 5 if label else 1,
            "date_added": time.strftime("%a %b %d %H:%M:%S -0700 %Y"),
        }
        for user, item, label, time, _ in rows
    ]
    (tmp_path / "interactions.json").write_text("".join(json.dumps(rating) + "\n" for rating in ratings))

    results = run(
        tmp_path,
        dataset="goodreads",
        train_data=str(tmp_path / "interactions.json"),
        items_data=str(tmp_path / "books.json"),
    )
    assert_split_by_time(results, "goodreads")
    processor = EmbSumProcessor.from_pretrained(tmp_path / "model")
    assert processor.item_template == ITEM_TEMPLATES["goodreads"]
    # the paper's Goodreads setting (MIND: 4)
    assert "with 2 sampled negatives per click" in (tmp_path / "model" / "README.md").read_text()


def test_missing_or_misplaced_data_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"items_data is required for custom \(the items table\)"):
        run(tmp_path, dataset="custom", train_data="log.csv")
    with pytest.raises(ValueError, match="eval_data is for mind and impressions; goodreads data is split by time"):
        run(tmp_path, dataset="goodreads", train_data="x.json", items_data="b.json", eval_data="dev")
    known = r"\('mind', 'goodreads', 'movielens', 'custom', 'impressions'\)"
    with pytest.raises(ValueError, match="dataset must be one of " + known):
        run(tmp_path, dataset="amazon", train_data="x")


def test_example_configs_name_only_real_fields():
    parser = HfArgumentParser((EmbSumRunArguments, EmbSumTrainingArguments))
    configs = sorted((Path(__file__).parents[2] / "examples" / "configs").glob("*.yaml"))
    assert {path.stem for path in configs} >= {"mind_t5_small", "goodreads_t5_small"}
    for path in configs:
        values = yaml.safe_load(path.read_text())
        values["bf16"] = False  # a GPU setting: this test runs on CPU
        run_args, training_args = parser.parse_dict(values)  # an unknown or misspelt key raises
        assert run_args.backbone == "google-t5/t5-small" and training_args.load_best_model_at_end, path.name
        assert training_args.num_negatives in (None, {"mind": 4, "goodreads": 2}[run_args.dataset])
