"""The encoding and ranking jobs as real processes: resume after SIGKILL, the CLI, and two ranks under torchrun."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from embsum_hf import EmbSumModel, EmbSumProcessor
from embsum_hf.data import load_mind, user_histories
from embsum_hf.serving import (
    EmbeddingStore,
    StoreMismatchError,
    encode_items,
    encode_users,
    model_fingerprint,
    recommend,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, config, processor):
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    EmbSumModel(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def load(folder):
    return EmbSumModel.from_pretrained(folder).eval(), EmbSumProcessor.from_pretrained(folder)


def environment(**extra):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    return {**env, **extra}


CHILD = """
import json, logging, sys, time
from embsum_hf import EmbSumModel, EmbSumProcessor
from embsum_hf.data import load_mind, user_histories
from embsum_hf.serving import encode_items
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
model, processor = EmbSumModel.from_pretrained(sys.argv[1]), EmbSumProcessor.from_pretrained(sys.argv[1])
model.t5.encoder.register_forward_hook(lambda *args: time.sleep(0.3))  # slow enough to be killed midway
encode_items(model, processor, json.load(open(sys.argv[2])), sys.argv[3], batch_size=4, shard_size=4, progress=False)
"""


def test_sigkill_midway_then_rerun_resumes(tmp_path, saved_model, items):
    (tmp_path / "items.json").write_text(json.dumps(items))
    output = tmp_path / "store"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(saved_model), str(tmp_path / "items.json"), str(output)],
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    written, deadline = 0, time.monotonic() + 120
    for line in child.stderr:
        written += "wrote shard" in line
        if written == 3 or time.monotonic() > deadline:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL and written == 3

    shards = sorted(output.glob("shard-*.safetensors"))
    assert 3 <= len(shards) < 10  # 40 items in shards of 4: killed midway
    assert json.loads((output / "store.json").read_text())["complete"] is False
    with pytest.raises(StoreMismatchError, match="incomplete"):
        EmbeddingStore.load(output)
    before = {path.name: path.stat().st_mtime_ns for path in shards}

    model, processor = load(saved_model)
    rows = []
    model.t5.encoder.register_forward_hook(
        lambda module, args, kwargs, out: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    resumed = encode_items(model, processor, items, output, batch_size=4, shard_size=4, progress=False)
    assert sum(rows) == 40 - 4 * len(shards)  # no finished shard was recomputed ...
    assert {name: (output / name).stat().st_mtime_ns for name in before} == before  # ... nor rewritten
    assert not list(output.glob(".*tmp*"))  # a shard being written at the kill left no temporary file behind

    reference = encode_items(
        model, processor, items, tmp_path / "reference", batch_size=4, shard_size=4, progress=False
    )
    assert resumed.ids == reference.ids
    torch.testing.assert_close(resumed.embeddings, reference.embeddings, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(resumed.keys, reference.keys, atol=1e-6, rtol=1e-6)
    assert (
        EmbeddingStore.load(output, expected_fingerprint=model_fingerprint(model)).fingerprint == reference.fingerprint
    )


@pytest.fixture(scope="module")
def mind_folder(tmp_path_factory, items):
    folder = tmp_path_factory.mktemp("mind")
    news = [
        "\t".join(
            [item["item_id"], item["category"], item["subcategory"], item["title"], item["abstract"], "", "[]", "[]"]
        )
        for item in items
    ]
    (folder / "news.tsv").write_text("\n".join(news) + "\n")
    behaviors = [  # history oldest first, as in MIND; U3 has no history
        "1\tU1\t11/15/2019 8:55:22 AM\tN1 N2 N3\tN10-1 N11-0",
        "2\tU2\t11/15/2019 9:00:00 AM\tN4 N5 N6 N7 N8 N9\tN12-0 N13-1",
        "3\tU1\t11/15/2019 10:00:00 AM\tN1 N2 N3 N10\tN14-1 N15-0",
        "4\tU3\t11/15/2019 11:00:00 AM\t\tN16-1 N17-0",
        "5\tU4\t11/15/2019 11:30:00 AM\tN20 N21\tN18-0 N19-1",
    ]
    (folder / "behaviors.tsv").write_text("\n".join(behaviors) + "\n")
    return folder


def run_cli(*args, launcher=(sys.executable, "-m"), **env):
    command = [*launcher, "embsum_hf.cli", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=environment(**env), cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_cli_encode_items(tmp_path, saved_model, mind_folder, items):
    result = run_cli(
        "encode-items",
        "--model",
        str(saved_model),
        "--data",
        str(mind_folder),
        "--output",
        str(tmp_path / "items"),
        "--dtype",
        "float16",
        "--shard-size",
        "16",
        "--no-progress",
    )
    assert f"wrote 40 items (40x2x32, float16) to {tmp_path / 'items'}" in result.stdout
    model, processor = load(saved_model)
    store = EmbeddingStore.load(tmp_path / "items", expected_fingerprint=model_fingerprint(model), kind="items")
    assert store.ids == [item["item_id"] for item in items] and store.manifest["num_shards"] == 3
    with torch.no_grad():
        cpe = model.encode_item(**processor.encode_items(items))
    torch.testing.assert_close(store.embeddings.float(), cpe, atol=4e-3, rtol=1e-3)


def test_cli_encode_users_on_two_ranks(tmp_path, saved_model, mind_folder, items):
    # torchrun starts two real processes; with one user per shard each rank encodes two of the four shards
    torchrun = (str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node", "2", "-m")
    result = run_cli(
        "encode-users",
        "--model",
        str(saved_model),
        "--data",
        str(mind_folder),
        "--output",
        str(tmp_path / "users"),
        "--shard-size",
        "1",
        "--no-progress",
        launcher=torchrun,
        ACCELERATE_USE_CPU="1",
        OMP_NUM_THREADS="1",
    )
    assert (
        "rank 0: 2 shards encoded, 0 reused" in result.stderr and "rank 1: 2 shards encoded, 0 reused" in result.stderr
    )
    model, processor = load(saved_model)
    store = EmbeddingStore.load(tmp_path / "users", expected_fingerprint=model_fingerprint(model), kind="users")
    histories = {"U1": [10, 3, 2, 1], "U2": [9, 8, 7, 6, 5, 4], "U3": [], "U4": [21, 20]}  # latest, most recent first
    assert store.ids == list(histories)
    with torch.no_grad():
        for row, numbers in enumerate(histories.values()):
            upe = model.encode_user(**processor.encode_users([[items[n] for n in numbers]])).user_embeddings[0]
            torch.testing.assert_close(store.embeddings[row], upe, atol=1e-5, rtol=1e-5)

    # a negative cache size is refused before anything is loaded or written: one line, exit status 2
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "embsum_hf.cli",
            "encode-users",
            "--model",
            str(saved_model),
            "--data",
            str(mind_folder),
            "--output",
            str(tmp_path / "refused"),
            "--session-cache-mb",
            "-1",
        ],
        capture_output=True,
        text=True,
        env=environment(),
        cwd=REPO,
        timeout=300,
    )
    assert refused.returncode == 2 and not (tmp_path / "refused").exists()
    assert "embsum encode-users: error: --session-cache-mb must be >= 0, got -1.0" in refused.stderr


def test_cli_recommend_on_two_ranks(tmp_path, saved_model, items):
    model, processor = load(saved_model)
    item_store = encode_items(model, processor, items, tmp_path / "items", progress=False)
    users = [(f"U{n}", items[n : n + 3]) for n in range(4)]
    user_store = encode_users(model, processor, users, tmp_path / "users", shard_size=1, progress=False)
    torchrun = (str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node", "2", "-m")
    result = run_cli(
        "recommend",
        "--users",
        str(tmp_path / "users"),
        "--items",
        str(tmp_path / "items"),
        "--output",
        str(tmp_path / "recs"),
        "--k",
        "3",
        "--no-progress",
        launcher=torchrun,
        ACCELERATE_USE_CPU="1",
        OMP_NUM_THREADS="1",
    )
    assert f"wrote the top 3 items of 4 users to {tmp_path / 'recs'} (exact)" in result.stdout
    assert "rank 0: 2 parts ranked, 0 reused" in result.stderr and "rank 1: 2 parts ranked, 0 reused" in result.stderr
    rows = [json.loads(line) for part in sorted((tmp_path / "recs").glob("part-*.jsonl")) for line in part.open()]
    expected = recommend(user_store, item_store, k=3)
    assert [row["user_id"] for row in rows] == ["U0", "U1", "U2", "U3"]
    torch.testing.assert_close(torch.tensor([row["scores"] for row in rows]), expected.scores, atol=1e-5, rtol=1e-5)

    # a store that is not a user store: one clear line, exit status 2
    wrong = subprocess.run(
        [
            sys.executable,
            "-m",
            "embsum_hf.cli",
            "recommend",
            "--users",
            str(tmp_path / "items"),
            "--items",
            str(tmp_path / "items"),
            "--output",
            str(tmp_path / "wrong"),
        ],
        capture_output=True,
        text=True,
        env=environment(),
        cwd=REPO,
        timeout=300,
    )
    assert wrong.returncode == 2
    assert f"embsum recommend: error: {tmp_path / 'items'} holds items embeddings, expected users" in wrong.stderr


def test_cli_recommend_excludes_each_users_history(tmp_path, saved_model, mind_folder, items):
    model, processor = load(saved_model)
    data = load_mind(mind_folder)
    encode_items(model, processor, data.items, tmp_path / "items", progress=False)
    encode_users(model, processor, user_histories(data), tmp_path / "users", progress=False)
    result = run_cli(
        "recommend",
        "--users",
        str(tmp_path / "users"),
        "--items",
        str(tmp_path / "items"),
        "--output",
        str(tmp_path / "recs"),
        "--k",
        "30",
        "--exclude-history",
        "--data",
        str(mind_folder),
        "--no-progress",
    )
    assert "(exact, history excluded)" in result.stdout
    rows = [json.loads(line) for line in (tmp_path / "recs" / "part-00000.jsonl").open()]
    rows = {row["user_id"]: row for row in rows}
    histories = {
        "U1": {"N10", "N3", "N2", "N1"},
        "U2": {f"N{n}" for n in range(4, 10)},
        "U3": set(),
        "U4": {"N20", "N21"},
    }
    for user_id, history in histories.items():
        assert len(rows[user_id]["item_ids"]) == 30 and not set(rows[user_id]["item_ids"]) & history, user_id
