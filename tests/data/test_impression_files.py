"""The `impressions` source: impressions already split by the user, read as given from JSONL, CSV, parquet, a
Dataset or a DataFrame, and trained and evaluated on exactly those splits."""

import csv
import json

import datasets
import pytest

from embsum_hf import EmbSumModel, EmbSumProcessor
from embsum_hf.data import DataFormatError, load_impressions, load_mind, make_synthetic_mind
from embsum_hf.serving.summaries import generate_summaries
from embsum_hf.training import EmbSumTrainingArguments
from embsum_hf.training.recipe import EmbSumRunArguments, train_embsum

from ..training.test_cli_training import embsum

COLUMNS = ("impression_id", "user_id", "history", "candidates", "labels")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The synthetic MIND train split as items.parquet + train.jsonl / dev.csv / test.parquet impressions."""
    root = make_synthetic_mind(
        tmp_path_factory.mktemp("mind"), num_users=20, num_news=60, num_train_impressions=60, num_dev_impressions=1
    )
    data = load_mind(root, "train")
    folder = tmp_path_factory.mktemp("impressions")
    data.items.to_parquet(str(folder / "items.parquet"))
    rows = data.impressions.select_columns(list(COLUMNS)).to_list()
    train, dev, test = rows[:40], rows[40:50], rows[50:]
    with open(folder / "train.jsonl", "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in train)
    with open(folder / "dev.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in dev:  # lists as space-separated values
            writer.writerow({**row, **{c: " ".join(map(str, row[c])) for c in ("history", "candidates", "labels")}})
    datasets.Dataset.from_list(test).to_parquet(str(folder / "test.parquet"))
    return folder, data, (train, dev, test)


def test_each_format_reads_back_the_same_impressions(files):
    folder, data, (train, dev, test) = files
    for source, rows in (("train.jsonl", train), ("dev.csv", dev), ("test.parquet", test)):
        loaded = load_impressions(folder / "items.parquet", folder / source, split=source).validate()
        assert loaded.impressions.select_columns(list(COLUMNS)).to_list() == [
            {**row, "labels": [int(label) for label in row["labels"]]} for row in rows
        ]
        assert loaded.split == source and set(loaded.text_fields) == set(data.text_fields)
    frame = datasets.Dataset.from_list(test).to_pandas()
    from_frame = load_impressions(data.items, frame)
    assert from_frame.impressions["candidates"] == [row["candidates"] for row in test]
    unlabeled = load_impressions(data.items, datasets.Dataset.from_list(test).remove_columns("labels"))
    assert all(set(labels) == {-1} for labels in unlabeled.impressions["labels"])


def test_bad_rows_are_named_by_file_and_line(files, tmp_path):
    folder, data, (train, _, _) = files
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(train[0]) + "\n" + json.dumps({**train[1], "candidates": ["N-nope"], "labels": [1]}))
    with pytest.raises(DataFormatError, match=r"bad.jsonl:2: candidates \['N-nope'\] are not in the items table"):
        load_impressions(data.items, bad)
    bad.write_text(json.dumps({**train[1], "labels": [1]}))
    with pytest.raises(DataFormatError, match=r"bad.jsonl:1: 1 labels for \d+ candidates"):
        load_impressions(data.items, bad)


def test_train_and_evaluate_on_exactly_the_given_splits(files, tmp_path):
    folder, _, (_, dev, test) = files
    args = EmbSumRunArguments(
        dataset="impressions",
        items_data=str(folder / "items.parquet"),
        train_data=str(folder / "train.jsonl"),
        eval_data=str(folder / "dev.csv"),
        test_data=str(folder / "test.parquet"),
        vocab_size=300,
        d_model=32,
        num_layers=1,
        num_heads=2,
        d_ff=64,
        num_user_codes=4,
        num_item_codes=2,
        max_history_items=8,
        session_max_tokens=64,
        item_max_tokens=24,
        summary_max_tokens=8,
        summary_mode="start",
        rouge_users=0,
    )
    training_args = EmbSumTrainingArguments(
        output_dir=str(tmp_path / "model"),
        max_steps=2,
        per_device_train_batch_size=8,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    results = train_embsum(args, training_args)
    assert (results["train_split"], results["dev"]["split"], results["test"]["split"]) == (
        "impressions:train",
        "impressions:dev",
        "impressions:test",
    )
    assert results["dev"]["dev_num_impressions"] + results["dev"]["dev_num_skipped_one_class"] == len(dev)
    assert results["test"]["test_num_impressions"] + results["test"]["test_num_skipped_one_class"] == len(test)


def test_embsum_train_on_a_sparse_reads_log_adds_each_users_latest_history_read(files, tmp_path):
    # a leave-last-out reads log as `embsum train` gets it from a user: each user's read among 4 items drawn from the
    # unread ones, 1-3 older reads as history (most recent first); about one click per item, popularity ranks it
    folder, data, _ = files
    items = list(data.items["item_id"])
    read, unread = items[:10], items[10:]
    rows = []
    for k in range(30):
        history = [read[(k + j) % 10] for j in range(1, 2 + k % 3)]
        negatives = [unread[(4 * k + j) % len(unread)] for j in range(4)]
        candidates = [read[k % 10], *negatives]
        rows.append(dict(impression_id=str(k), user_id=f"u{k}", history=history, candidates=candidates))
        rows[-1]["labels"] = [1, 0, 0, 0, 0]
    (tmp_path / "reads.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "model"
    shape = ["--vocab_size", "300", "--d_model", "32", "--num_layers", "1", "--num_heads", "2", "--d_ff", "64"]
    result = embsum(
        "train", "--dataset", "impressions", "--items_data", str(folder / "items.parquet"), "--train_data",
        str(tmp_path / "reads.jsonl"), "--output_dir", str(out), *shape, "--item_max_tokens", "16", "--summary_mode",
        "start", "--max_steps", "2", "--per_device_train_batch_size", "8", "--save_strategy", "no", "--report_to",
        "none", "--use_cpu", "true", "--disable_tqdm", "true",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "a sparse catalogue -> " in result.stderr and "history_clicks=1" in result.stderr
    assert "summary_copy=True, summary_loss_weight=2.0, summary_history_boost=0.0" in result.stderr
    assert "summary_session_positions=True" in result.stderr
    # the summary recipe, chosen from the data, is saved with the folder: it loads with its copy layer and writes
    # summaries with it
    model, processor = EmbSumModel.from_pretrained(out), EmbSumProcessor.from_pretrained(out)
    assert model.config.summary_copy and model.config.summary_loss_weight == 2.0
    assert model.config.summary_history_boost == 0.0 and model.summary_copy is not None
    assert model.config.summary_session_positions and model.session_positions is not None
    assert model.config.t5_config.dropout_rate == 0.0  # from scratch: no dropout (FROM_SCRATCH_DROPOUT_RATE)
    history = [data.items[0], data.items[1]]
    (summary,) = generate_summaries(model, processor, [history])
    assert isinstance(summary, str) and summary
    levers = json.loads((out / "results.json").read_text())["data_levers"]
    assert levers["history_clicks"] == 1 and levers["in_batch_negatives"] is True and levers["summary_copy"] is True
    # 30 click rows, and one more per user whose history has an older read to be the history of its latest one
    added = sum(len(row["history"]) > 1 for row in rows)
    assert f"Built {added} history-click rows from 30 training rows" in result.stderr
    card = (out / "README.md").read_text()
    assert "| history_clicks | 1 |" in card and f"| train (clicks) | {30 + added} |" in card
    read = (
        "`h_sum` read in `start` mode; a learned copy mechanism over the history tokens; the decoder reads the order"
    )
    assert f"{read} of the history's sessions |" in card
    assert "| History | latest 60 items, each item its own session (the decoder reads them all) |" in card
