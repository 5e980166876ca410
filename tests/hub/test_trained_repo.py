"""`embsum train` leaves complete Hub repos: the output folder and every checkpoint load with plain transformers
(AutoConfig, AutoModel, AutoProcessor, the pipeline, the endpoint handler) in a process where embsum_hf cannot be
imported, and answer exactly as the in-package model does."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import T5Config, T5ForConditionalGeneration, pipeline

from embsum_hf import EmbSumModel, EmbSumProcessor
from embsum_hf.cli import main
from embsum_hf.data import make_synthetic_mind
from embsum_hf.hub import EmbSumModelCardData, missing_repo_files

from ..training.test_cli_training import TINY

# run with `python -I` (no PYTHONPATH, no cwd on sys.path); the editable install's finder is blocked too
FRESH_PROCESS = """
import importlib.abc, json, sys

class NoEmbsum(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "embsum_hf":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: the repo must not need embsum_hf)")

sys.meta_path.insert(0, NoEmbsum())
import torch
from transformers import AutoConfig, AutoModel, AutoProcessor, ProcessorMixin, pipeline

folder, payload = sys.argv[1], json.loads(sys.argv[2])
config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
assert isinstance(processor, ProcessorMixin)
inputs = payload["inputs"]
with torch.no_grad():
    user = model.encode_user(**processor.encode_users([inputs["history"]])).user_embeddings
    scores = model.score(user, model.encode_item(**processor.encode_items(inputs["candidates"])))[0]
recommender = pipeline(model=folder, trust_remote_code=True)
sys.path.insert(0, folder)  # Inference Endpoints import handler.py from the repo root
from handler import EndpointHandler
endpoint = EndpointHandler(folder)
print("ANSWERS" + json.dumps({
    "classes": [type(obj).__name__ for obj in (config, model, processor, recommender)],
    "scores": scores.tolist(),
    "pipeline": recommender(inputs, **payload["parameters"]),
    "endpoint": endpoint(payload),
    "embsum_hf_imported": any(name.startswith("embsum_hf") for name in sys.modules),
}))
"""


def train_args(root: Path, output: Path, *extra: str) -> list[str]:
    data = root / "mind"
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
        "--backbone",
        str(root / "t5"),
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        "--logging_steps",
        "1",
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "2",
        *extra,
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory, tokenizer) -> Path:
    """`embsum train` on a (tiny, local) pretrained backbone for 4 steps, evaluated and saved at steps 2 and 4."""
    root = tmp_path_factory.mktemp("trained")
    data = make_synthetic_mind(
        root / "mind", num_users=20, num_news=60, num_train_impressions=24, num_dev_impressions=8
    )
    tokenizer.save_pretrained(data / "tokenizer")
    torch.manual_seed(0)
    t5 = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, num_heads=2, d_ff=64, num_layers=1, decoder_start_token_id=0
    )
    T5ForConditionalGeneration(t5).save_pretrained(root / "t5")
    assert main(train_args(root, root / "run", "--max_steps", "4")) == 0
    return root / "run"


@pytest.fixture(scope="module")
def recipe_run(run) -> Path:
    """The same run with the summary recipe `embsum train` chooses on a sparse catalogue (the learned copy mechanism
    and the sessions' order, whose layers live in the repo's own modeling code), given as flags."""
    recipe = ["--summary_copy", "--summary_session_positions", "--summary_history_boost", "0", "--max_steps", "2"]
    assert main(train_args(run.parent, run.parent / "recipe", *recipe)) == 0
    return run.parent / "recipe"


PAYLOAD = {
    "inputs": {
        "history": [
            {"title": "rocket orbit launch", "abstract": "nasa moon mars", "category": "space"},
            "football match goal",
        ],
        "candidates": [
            {"title": "telescope galaxy", "abstract": "astronaut satellite", "category": "space", "item_id": "N1"},
            "election vote senate",
            "recipe chef dinner",
        ],
    },
    "parameters": {"top_k": 2, "return_summary": True, "return_explanations": True},
}


@pytest.mark.parametrize("name", ["", "checkpoint-2", "summary recipe"])
def test_saved_folders_serve_without_embsum_hf(tmp_path, run, name, request):
    folder = request.getfixturevalue("recipe_run") if name == "summary recipe" else run / name
    assert missing_repo_files(folder) == []
    config = json.loads((folder / "config.json").read_text())
    pipelines = config["custom_pipelines"]
    assert pipelines["embsum-recommendation"]["impl"] == "pipeline_embsum.EmbSumRecommendationPipeline"

    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-I", "-c", FRESH_PROCESS, str(folder), json.dumps(PAYLOAD)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.split("ANSWERS", 1)[1])
    assert answers["classes"] == ["EmbSumConfig", "EmbSumModel", "EmbSumProcessor", "EmbSumRecommendationPipeline"]
    assert not answers["embsum_hf_imported"]

    model, processor = EmbSumModel.from_pretrained(folder).eval(), EmbSumProcessor.from_pretrained(folder)
    recipe = name == "summary recipe"
    assert (model.summary_copy is not None, model.session_positions is not None) == (recipe, recipe)
    inputs = PAYLOAD["inputs"]
    with torch.no_grad():
        user = model.encode_user(**processor.encode_users([inputs["history"]])).user_embeddings
        scores = model.score(user, model.encode_item(**processor.encode_items(inputs["candidates"])))[0]
    assert answers["scores"] == pytest.approx(scores.tolist(), abs=1e-6)
    expected = pipeline("embsum-recommendation", model=model, processor=processor, device="cpu")(
        inputs, **PAYLOAD["parameters"]
    )
    assert set(expected) == {"ranking", "summary", "explanations"} and len(expected["ranking"]) == 2
    for answer in (answers["pipeline"], answers["endpoint"]):
        assert [e["index"] for e in answer["ranking"]] == [e["index"] for e in expected["ranking"]]
        assert [e["item"] for e in answer["ranking"]] == [e["item"] for e in expected["ranking"]]
        scores = [e["score"] for e in expected["ranking"]]
        assert [e["score"] for e in answer["ranking"]] == pytest.approx(scores, abs=1e-6)
        assert answer["summary"] == expected["summary"]
        assert [e["index"] for e in answer["explanations"]] == [e["index"] for e in expected["explanations"]]
        assert [e["weight"] for e in answer["explanations"]] == pytest.approx(
            [e["weight"] for e in expected["explanations"]], abs=1e-6
        )


def test_the_card_records_the_run_and_a_resume_keeps_its_facts(tmp_path, run):
    root = run.parent
    card = ModelCard.load(run / "README.md")
    assert card.data.base_model == str(root / "t5")
    # MIND-format data: the weights carry MIND's non-commercial terms, not the code's Apache-2.0
    assert (card.data.license, card.data.license_name) == ("other", "microsoft-research-license-mind")
    assert "@inproceedings{zhang2024embsum" in card.text and "@inproceedings{wu2020mind" in card.text
    facts = EmbSumModelCardData.from_card(run)
    assert [row["step"] for row in facts.training_logs] == [1, 2, 3, 4]
    assert [(e["split"], e["step"]) for e in facts.evaluations] == [("dev", 2), ("dev", 4)]
    assert facts.training_args["max_steps"] == 4 and facts.dataset_sizes["dev (impressions)"] == 8
    assert set(facts.framework_versions) == {"Python", "PyTorch", "Transformers", "embsum_hf"}

    resumed = tmp_path / "run"
    shutil.copytree(run, resumed)
    assert main(train_args(root, resumed, "--max_steps", "6", "--resume_from_checkpoint", "true")) == 0
    for folder in (resumed / "checkpoint-6", resumed):
        card = ModelCard.load(folder / "README.md")
        assert card.data.base_model == str(root / "t5"), folder  # not the checkpoint it resumed from
        assert "checkpoint-4" not in card.content
        facts = EmbSumModelCardData.from_card(folder)
        assert [row["step"] for row in facts.training_logs] == [1, 2, 3, 4, 5, 6]
        assert [(e["split"], e["step"]) for e in facts.evaluations] == [("dev", 2), ("dev", 4), ("dev", 6)]


def test_card_inputs_may_add_prose_but_not_contradict_the_run(tmp_path, run, capsys):
    inputs = tmp_path / "card.yaml"
    common = ["push", "--model", str(run), "--repo", "org/embsum-tiny", "--card-inputs", str(inputs), "--dry-run"]
    inputs.write_text("description: A tiny EmbSum.\nbase_model: google-t5/t5-small\n")
    assert main([*common, str(tmp_path / "a")]) == 2
    error = capsys.readouterr().err
    assert "base_model='google-t5/t5-small'" in error and f"base_model={str(run.parent / 't5')!r}" in error
    assert not (tmp_path / "a").exists()

    inputs.write_text("description: A tiny EmbSum.\nlicense: apache-2.0\n")
    assert main([*common, str(tmp_path / "b")]) == 2
    assert "license='apache-2.0' conflicts with the run's recorded license='other'" in capsys.readouterr().err

    inputs.write_text(f"description: A tiny EmbSum.\ndataset_name: mind\nbase_model: {run.parent / 't5'}\n")
    assert main([*common, str(tmp_path / "c")]) == 0  # agreeing facts and new prose are fine
    assert "A tiny EmbSum." in ModelCard.load(tmp_path / "c" / "README.md").text
    staged = {path.name for path in (tmp_path / "c").iterdir()}
    assert missing_repo_files(tmp_path / "c") == [] and not {"checkpoint-2", "checkpoint-4", "results.json"} & staged


def test_a_run_without_summaries_says_so_in_its_card(tmp_path, run):
    """`embsum train` without `--summaries` (and with `--no-progress`, the flag every command takes): the card says
    the model learned from clicks alone; the run with summaries names how many rows had one and who wrote them."""
    argv = train_args(
        run.parent,
        tmp_path / "clicks",
        "--max_steps",
        "2",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--no-progress",
    )
    at = argv.index("--summaries")
    del argv[at : at + 2]
    assert main(argv) == 0
    card = ModelCard.load(tmp_path / "clicks" / "README.md")
    assert "trained **on clicks alone** (no teacher summaries)" in card.text
    assert "Loss: `L = L_NCE` (trained on clicks alone)" in card.text and "L_sum" not in card.text
    assert EmbSumModelCardData.from_card(tmp_path / "clicks").summary_rows == 0
    with_summaries = ModelCard.load(run / "README.md").text
    rows = EmbSumModelCardData.from_card(run).summary_rows
    assert rows > 0 and f"Its decoder learned to summarise from {rows} training rows" in with_summaries
    assert "Loss: `L = L_NCE + 1.0 * L_sum`" in with_summaries and "on clicks alone" not in with_summaries
