"""`embsum train / evaluate / predict` as real subprocesses: crash + resume, reproducible runs, two Accelerate ranks,
the leaderboard file."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from embsum_hf.data import make_synthetic_mind
from embsum_hf.metrics import read_prediction_file

TINY = [
    "--dataset",
    "mind",
    "--vocab_size",
    "300",
    "--d_model",
    "32",
    "--num_layers",
    "1",
    "--num_heads",
    "2",
    "--d_ff",
    "64",
    "--dropout_rate",
    "0",
    "--num_user_codes",
    "4",
    "--num_item_codes",
    "2",
    "--max_history_items",
    "8",
    "--session_max_tokens",
    "64",
    "--item_max_tokens",
    "16",
    "--summary_max_tokens",
    "8",
    "--summary_mode",
    "start",
    "--rouge_users",
    "4",
    "--per_device_train_batch_size",
    "8",
    "--learning_rate",
    "3e-3",
    "--use_cpu",
    "true",
    "--report_to",
    "none",
    "--disable_tqdm",
    "true",
    "--seed",
    "3",
]


def env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")


def embsum(*args: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "embsum_hf.cli", *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=600,
        **kwargs,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def data(tmp_path_factory, tokenizer) -> Path:
    root = make_synthetic_mind(
        tmp_path_factory.mktemp("mind"), num_users=30, num_news=100, num_train_impressions=40, num_dev_impressions=16
    )
    # one saved tokenizer for every run (training one per process is slower)
    tokenizer.save_pretrained(root / "tokenizer")
    return root


def train_args(data: Path, output: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--train_data",
        str(data / "train"),
        "--eval_data",
        str(data / "dev"),
        "--tokenizer",
        str(data / "tokenizer"),
        "--summaries",
        str(data / "summaries.jsonl"),
        "--output_dir",
        str(output),
        *TINY,
        *extra,
    ]


def assert_same_weights(expected: dict, path: Path) -> None:
    actual = load_file(path)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert (expected[name] - actual[name]).abs().max() < 1e-5, name


def test_resume_in_every_epoch_gives_the_uninterrupted_weights(tmp_path, data):
    # 97 training rows (one per click: the paper's rows, whose step count the numbers below use; examples per
    # impression draw their negatives through the same epoch-seeded rows) / 16 = 7 steps per epoch: epoch 1 is steps
    # 1-7, epoch 2 steps 8-14, epoch 3 steps 15-21; dropout on, so the dropout RNG must be restored as well as the
    # epoch-seeded negatives
    schedule = [
        "--num_train_epochs",
        "3",
        "--per_device_train_batch_size",
        "16",
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        "--logging_steps",
        "1",
        "--dropout_rate",
        "0.1",
        "--group_by_impression",
        "false",
    ]
    embsum(*train_args(data, tmp_path / "straight", *schedule))
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    state = json.loads((tmp_path / "straight" / "checkpoint-10" / "trainer_state.json").read_text())
    assert 1 < state["epoch"] < 2  # checkpoint-10 is inside the second epoch

    # a real crash in epoch 2: SIGKILL once the step-10 checkpoint is complete (trainer_state.json is written last)
    crashed = tmp_path / "crashed"
    process = subprocess.Popen(
        [sys.executable, "-m", "embsum_hf.cli", *train_args(data, crashed, *schedule)],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (crashed / "checkpoint-10" / "trainer_state.json").exists():
        assert process.poll() is None and time.time() < deadline, "the run ended before its step-10 checkpoint"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (crashed / "model.safetensors").exists()  # it really did not finish
    # the kill lands at step 10 or a little later; a checkpoint past epoch 2 would not test a resume in epoch 2
    for later in (14, 16, 18, 20):
        shutil.rmtree(crashed / f"checkpoint-{later}", ignore_errors=True)
    # what a crash in the middle of saving leaves: a newer checkpoint folder without trainer_state.json
    (crashed / "checkpoint-99").mkdir()
    (crashed / "checkpoint-99" / "config.json").write_text("{")
    embsum(*train_args(data, crashed, *schedule, "--resume_from_checkpoint", "true"))
    assert_same_weights(straight, crashed / "model.safetensors")
    final = json.loads((crashed / "results.json").read_text())
    expected = json.loads((tmp_path / "straight" / "results.json").read_text())["dev"]["dev_auc"]
    assert final["dev"]["dev_auc"] == pytest.approx(expected, abs=1e-5)

    # a checkpoint copied out of the uninterrupted run, in each epoch (14: the boundary of epochs 2 and 3)
    for step in (4, 14, 18):
        resumed = tmp_path / f"from-{step}"
        shutil.copytree(tmp_path / "straight" / f"checkpoint-{step}", resumed / f"checkpoint-{step}")
        embsum(*train_args(data, resumed, *schedule, "--resume_from_checkpoint", "true"))
        assert_same_weights(straight, resumed / "model.safetensors")


def test_two_seeded_runs_from_scratch_are_bitwise_identical(tmp_path, data):
    # no --tokenizer: each process trains its own tokenizer on the data (hash-ordered in the Rust trainer)
    for name in ("a", "b"):
        embsum(
            "train",
            "--train_data",
            str(data / "train"),
            "--summaries",
            str(data / "summaries.jsonl"),
            "--output_dir",
            str(tmp_path / name),
            *TINY,
            "--dropout_rate",
            "0.1",
            "--max_steps",
            "3",
            "--save_strategy",
            "no",
        )
    for file in ("tokenizer.json", "tokenizer_config.json", "config.json", "processor_config.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_two_accelerate_ranks_match_one_process(tmp_path, data):
    common = ["--max_steps", "4", "--save_strategy", "no", "--eval_strategy", "no", "--summary_loss_weight", "0"]
    embsum(*train_args(data, tmp_path / "one", *common, "--per_device_train_batch_size", "8"))
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "embsum_hf.cli",
        *train_args(data, tmp_path / "two", *common, "--per_device_train_batch_size", "4"),
    ]
    cpu = {**env(), "ACCELERATE_USE_CPU": "1"}
    result = subprocess.run(launch, capture_output=True, text=True, env=cpu, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    one, two = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("one", "two"))
    assert (one["world_size"], two["world_size"]) == (1, 2)  # two real ranks, each with half of every batch
    one, two = one["dev"], two["dev"]
    for metric in ("dev_auc", "dev_mrr", "dev_ndcg@5", "dev_ndcg@10"):
        assert two[metric] == pytest.approx(one[metric], abs=1e-4), metric


def test_evaluate_and_predict_on_an_unlabelled_split(tmp_path, data):
    model = tmp_path / "model"
    schedule = ["--max_steps", "2", "--save_strategy", "no", "--eval_strategy", "no", "--text_pretraining_steps", "2"]
    trained = embsum(*train_args(data, model, *schedule))
    metrics = json.loads(embsum("evaluate", "--model", str(model), "--data", str(data / "dev")).stdout)
    results = json.loads((model / "results.json").read_text())
    # stdout is the results JSON alone (the Trainer's log lines go to stderr), and --disable_tqdm true silenced
    # every bar: the Trainer's, the package's and datasets' ("[00:01<00:00, 3.2it/s]", "[00:00, 12 rows/s]")
    assert json.loads(trained.stdout)["dev"]["dev_auc"] == results["dev"]["dev_auc"]
    assert "'train_loss'" in trained.stderr
    assert not re.search(r"\[\d+:\d\d[<,]", trained.stderr), trained.stderr[-2000:]
    assert metrics["auc"] == pytest.approx(results["dev"]["dev_auc"], abs=1e-6)
    assert (model / "README.md").read_text().count("model-index") >= 1
    # the text pretraining ran inside the run (its bar silenced too) and is on the card
    assert json.loads((model / "embsum_card.json").read_text())["training_args"]["text_pretraining_steps"] == 2

    # a MIND-large-test-like copy of dev: impressions without labels
    unlabelled = tmp_path / "test"
    unlabelled.mkdir()
    (unlabelled / "news.tsv").write_text((data / "dev" / "news.tsv").read_text())
    lines = []
    for line in (data / "dev" / "behaviors.tsv").read_text().splitlines():
        *head, impressions = line.split("\t")
        lines.append("\t".join([*head, " ".join(entry.split("-")[0] for entry in impressions.split())]))
    (unlabelled / "behaviors.tsv").write_text("\n".join(lines) + "\n")
    embsum("predict", "--model", str(model), "--data", str(unlabelled), "--output", str(tmp_path / "prediction.txt"))
    ids, ranks = read_prediction_file(tmp_path / "prediction.txt")
    assert ids == [line.split("\t")[0] for line in lines]
    for row, line in zip(ranks, lines):
        assert sorted(row) == list(range(1, len(line.split("\t")[-1].split()) + 1))
