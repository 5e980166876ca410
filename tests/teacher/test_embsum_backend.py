"""`embsum summarize --backend embsum`: a trained EmbSum writes its own summary of every user (the explanation
mission) through the crash-safe store; the texts equal `generate_summary` on the same latest histories."""

import json
import os
import subprocess
import sys

import pytest
import torch

from embsum_hf import EmbSumModel
from embsum_hf.data import load_mind, make_synthetic_mind, user_histories
from embsum_hf.teacher import SummaryRequest, get_backend

from ..conftest import tiny_config


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer, processor):
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    model = EmbSumModel(tiny_config(tokenizer, max_history_items=5)).eval()  # histories here are longer than 5
    model.save_pretrained(folder)
    type(processor)(tokenizer, model.config, item_template="mind").save_pretrained(folder)
    data_root = make_synthetic_mind(
        tmp_path_factory.mktemp("mind"), num_users=8, num_news=40, num_train_impressions=12, num_dev_impressions=1
    )
    return folder, data_root


def summarize(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "embsum_hf.cli", "summarize", "--backend", "embsum", *args, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_model_summaries_of_every_user_then_a_rerun_generates_none(tmp_path, saved):
    folder, data_root = saved
    store, export = tmp_path / "store.jsonl", tmp_path / "summaries.jsonl"
    first = summarize(
        "--model",
        str(folder),
        "--data",
        str(data_root),
        "--split",
        "train",
        "--output",
        str(store),
        "--export",
        str(export),
        "--batch-size",
        "3",
    )
    users = [(user_id, history) for user_id, history in user_histories(load_mind(data_root, "train")) if history]
    assert f"done {len(users)}, skipped 0, failed 0" in first.stdout and "backend embsum:" in first.stdout

    written = {row["user_id"]: row["summary"] for row in map(json.loads, export.read_text().splitlines())}
    model = EmbSumModel.from_pretrained(folder).eval()
    backend = get_backend("embsum", model=str(folder), device="cpu")
    assert backend.history_items == 5
    for user_id, history in users:
        inputs = backend.processor.encode_users([history[:5]])  # what the model reads: the latest 5 items
        with torch.no_grad():
            expected = model.generate_summary(**inputs, processor=backend.processor)[0].strip()
        assert written[user_id] == expected, user_id
    assert len(set(written.values())) > 1  # per-user texts, not one constant

    again = summarize("--model", str(folder), "--data", str(data_root), "--split", "train", "--output", str(store))
    assert f"done 0, skipped {len(users)}, failed 0" in again.stdout


def test_backend_from_a_model_object_and_its_errors(saved, processor):
    folder, data_root = saved
    model = EmbSumModel.from_pretrained(folder)
    with pytest.raises(ValueError, match="needs the model's processor"):
        get_backend("embsum", model=model)
    backend = get_backend("embsum", model=model, processor=processor.from_pretrained(folder), max_new_tokens=3)
    user_id, history = next(iter(user_histories(load_mind(data_root, "train"))))
    [text] = backend.generate([SummaryRequest.build(user_id, history, "news", max_items=5)])
    with torch.no_grad():
        users = backend.processor.encode_users([history[:5]])
        ids = model.generate_summary(**users, max_new_tokens=3)
        # with the processor, the history boost reads words in any letter case, as the backend's summaries do
        [expected] = model.generate_summary(**users, max_new_tokens=3, processor=backend.processor)
    assert ids.shape[1] <= 1 + 3 and text == expected.strip()  # start + 3 new
    assert backend.name.startswith("embsum:") and len(backend.name) == len("embsum:") + 16
