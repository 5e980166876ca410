"""The folder `push_to_hub` sends: self-contained, loading and ranking in a fresh process that never imports
embsum_hf (AutoModel, the pipeline and the endpoint handler), and what the upload puts on a (local) Hub."""

import base64
import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import huggingface_hub
import pytest
import torch
from huggingface_hub import HfApi, ModelCard

from embsum_hf import EmbSumModel
from embsum_hf.cli import main
from embsum_hf.hub import push_to_hub, save_repo, write_model_card

CARD = {
    "dataset_name": "MIND-small",
    "dataset_split": "MINDsmall_dev:test(90%)",
    "teacher": "heuristic",
    "metrics": {"auc": 0.55, "mrr": 0.25, "ndcg@5": 0.24, "ndcg@10": 0.3},
}
REMOTE_CODE = ("configuration_embsum.py", "modeling_embsum.py", "processing_embsum.py", "pipeline_embsum.py")


@pytest.fixture(scope="module")
def hub_model(config) -> EmbSumModel:
    torch.manual_seed(0)
    return EmbSumModel(config).eval()


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory, hub_model, processor):
    folder = tmp_path_factory.mktemp("hub") / "embsum-tiny"
    assert save_repo(hub_model, processor, folder, card_kwargs={**CARD, "repo_id": "org/embsum-tiny"}) == folder
    return folder


def test_folder_is_self_contained(hub_folder):
    files = set(os.listdir(hub_folder))
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "processor_config.json",
        "README.md",
        "handler.py",
        "requirements.txt",
        *REMOTE_CODE,
    } <= files
    assert not any(name.endswith(".bin") for name in files)
    assert json.loads((hub_folder / "processor_config.json").read_text())["auto_map"] == {
        "AutoProcessor": "processing_embsum.EmbSumProcessor"
    }
    config = json.loads((hub_folder / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_embsum.EmbSumConfig",
        "AutoModel": "modeling_embsum.EmbSumModel",
    }
    assert config["custom_pipelines"] == {
        "embsum-recommendation": {"impl": "pipeline_embsum.EmbSumRecommendationPipeline", "pt": ["AutoModel"]}
    }
    for name in (*REMOTE_CODE, "handler.py"):  # flat: no embsum_hf import anywhere
        assert "embsum_hf" not in "\n".join(
            line
            for line in (hub_folder / name).read_text().splitlines()
            if line.lstrip().startswith(("import ", "from "))
        ), name
    lines = (hub_folder / "requirements.txt").read_text().splitlines()
    requirements = {line.split(">")[0].split("=")[0] for line in lines if line and not line.startswith("#")}
    assert requirements == {"torch", "transformers", "safetensors", "tokenizers"}
    assert ModelCard.load(hub_folder / "README.md").data.eval_results[0].dataset_split == "MINDsmall_dev:test(90%)"


FRESH_PROCESS = """
import json, sys, torch
from transformers import AutoModel, pipeline
folder, payload = sys.argv[1], json.loads(sys.argv[2])
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
recommender = pipeline(model=folder, trust_remote_code=True)
sys.path.insert(0, folder)  # Inference Endpoints import handler.py from the repo root
from handler import EndpointHandler
endpoint = EndpointHandler(folder)
assert "embsum_hf" not in sys.modules, "the repo must not need embsum_hf"
def raised(payload):  # the toolkit answers an exception from the handler with HTTP 400 and its message
    try:
        endpoint(payload)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
answers = {
    "model_class": type(model).__name__,
    "pipeline_class": type(recommender).__name__,
    "pipeline": recommender(payload["inputs"], **payload["parameters"]),
    "endpoint": endpoint(payload),
    "endpoint_batch": endpoint({"inputs": [payload["inputs"]] * 2}),
    "endpoint_error": raised(
        {"inputs": {"history": [], "candidates": [{"title": 5.0, "abstract": [], "category": None}]}}
    ),
}
print("ANSWERS" + json.dumps(answers))
"""


def test_fresh_process_loads_the_folder_and_ranks(tmp_path, hub_folder, hub_model, processor, items):
    from transformers import pipeline

    payload = {
        "inputs": {"history": items[:5], "candidates": [*items[20:25], "moon rocket launch"]},
        "parameters": {"top_k": 4, "return_summary": True, "return_explanations": True},
    }
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", PYTHONPATH="")
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(hub_folder), json.dumps(payload)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.split("ANSWERS", 1)[1])
    assert answers["model_class"] == "EmbSumModel"
    assert answers["pipeline_class"] == "EmbSumRecommendationPipeline"

    local = pipeline("embsum-recommendation", model=hub_model, processor=processor, device="cpu")
    expected = local(payload["inputs"], **payload["parameters"])
    for answer in (answers["pipeline"], answers["endpoint"], *answers["endpoint_batch"]):
        assert [entry["index"] for entry in answer["ranking"]][: len(expected["ranking"])] == [
            entry["index"] for entry in expected["ranking"]
        ]
        assert answer["ranking"][0]["score"] == pytest.approx(expected["ranking"][0]["score"], abs=1e-5)
    assert len(answers["endpoint_batch"][0]["ranking"]) == 6  # no parameters: every candidate
    assert answers["endpoint"]["summary"] == expected["summary"]
    assert [e["index"] for e in answers["endpoint"]["explanations"]] == [e["index"] for e in expected["explanations"]]
    assert answers["endpoint_error"] == (
        "PayloadError: inputs.candidates[0].abstract must be a string, number or null, got array"
    )


class FakeHub(BaseHTTPRequestHandler):
    """The three Hub routes `create_repo` + `upload_folder` use; every file is committed inline ("regular")."""

    commits: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/api/repos/create":
            request = json.loads(body)
            answer = {"url": f"http://{self.headers['Host']}/{request['organization']}/{request['name']}"}
        elif self.path == "/api/validate-yaml":
            answer = {}
        elif "/preupload/" in self.path:
            files = json.loads(body)["files"]
            answer = {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        elif "/commit/" in self.path:
            lines = [json.loads(line) for line in body.splitlines()]
            files = {
                line["value"]["path"]: base64.b64decode(line["value"]["content"])
                for line in lines
                if line["key"] == "file"
            }
            FakeHub.commits.append({"path": self.path, "header": lines[0]["value"], "files": files})
            answer = {"commitUrl": f"http://{self.headers['Host']}/org/embsum-tiny/commit/abc", "commitOid": "abc"}
        else:
            self.send_error(404, self.path)
            return
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub(serve, monkeypatch) -> str:
    """A local Hub (`FakeHub`) for one test; returns its endpoint URL."""
    FakeHub.commits.clear()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the Hub here is a local server
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server = serve(ThreadingHTTPServer(("127.0.0.1", 0), FakeHub))
    return f"http://127.0.0.1:{server.server_port}"


def test_push_uploads_the_prepared_folder(hub_folder, hub_model, processor, fake_hub):
    api = HfApi(endpoint=fake_hub, token="hf_local_test")
    url = push_to_hub(
        hub_model,
        processor,
        "org/embsum-tiny",
        token="hf_local_test",
        card_kwargs=CARD,
        commit_message="Release",
        api=api,
    )
    assert url.endswith("/org/embsum-tiny/commit/abc")
    (commit,) = FakeHub.commits
    assert commit["path"] == "/api/models/org/embsum-tiny/commit/main" and commit["header"]["summary"] == "Release"
    assert set(commit["files"]) == set(os.listdir(hub_folder))
    for name in ("model.safetensors", "config.json", "handler.py", "pipeline_embsum.py", "processor_config.json"):
        assert commit["files"][name] == (hub_folder / name).read_bytes(), name
    assert 'pipeline(model="org/embsum-tiny", trust_remote_code=True)' in commit["files"]["README.md"].decode()


@pytest.fixture
def trained_folder(tmp_path, hub_model, processor):
    """A model folder as `embsum train` leaves it: the repo with the run's card, plus checkpoints and logs."""
    folder = tmp_path / "run"
    save_repo(hub_model, processor, folder)
    write_model_card(
        folder,
        metrics={"auc": 0.61, "mrr": 0.3, "ndcg@5": 0.31, "ndcg@10": 0.37},
        dataset_name="MIND-small",
        dataset_split="MINDsmall_dev:test(90%)",
        teacher="heuristic",
    )
    (folder / "checkpoint-3").mkdir()
    (folder / "checkpoint-3" / "model.safetensors").write_bytes(b"x")
    (folder / "results.json").write_text("{}")
    return folder


def test_cli_push_keeps_the_runs_card_and_uploads(tmp_path, trained_folder, fake_hub, capsys):
    inputs = tmp_path / "card.yaml"
    inputs.write_text("description: A tiny EmbSum for tests.\ntags: [news-recommendation]\n")
    common = ["push", "--model", str(trained_folder), "--repo", "org/embsum-tiny", "--card-inputs", str(inputs)]
    assert main([*common, "--dry-run", str(tmp_path / "staged")]) == 0
    staged = tmp_path / "staged"
    card = ModelCard.load(staged / "README.md")
    assert card.data.eval_results[0].metric_value == pytest.approx(61.0)  # the run's metrics survive
    assert "A tiny EmbSum for tests." in card.text and 'pipeline(model="org/embsum-tiny"' in card.text
    assert {"handler.py", "pipeline_embsum.py", "model.safetensors"} <= set(os.listdir(staged))
    assert not {"checkpoint-3", "results.json"} & set(os.listdir(staged))  # training leftovers stay home
    assert "A tiny EmbSum" not in (trained_folder / "README.md").read_text()  # the run's folder is not changed

    assert main([*common, "--endpoint", fake_hub, "--token", "hf_local_test", "--message", "v1"]) == 0
    (commit,) = FakeHub.commits
    assert commit["header"]["summary"] == "v1" and set(commit["files"]) == set(os.listdir(staged))
    assert commit["files"]["README.md"] == (staged / "README.md").read_bytes()
    assert "pushed" in capsys.readouterr().out

    # a folder that is not a complete repo is named with what it lacks
    (trained_folder / "handler.py").unlink()
    assert main([*common, "--dry-run", str(tmp_path / "again")]) == 2
    assert "is not a complete EmbSum repo (missing handler.py)" in capsys.readouterr().err


def test_processor_push_to_hub_uploads_its_own_files(processor, fake_hub, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", fake_hub)
    processor.push_to_hub("org/embsum-tiny", token="hf_local_test", commit_message="Processor")
    (commit,) = FakeHub.commits
    assert commit["header"]["summary"] == "Processor"
    files = set(commit["files"])
    assert {"processor_config.json", "tokenizer.json", "tokenizer_config.json", "processing_embsum.py"} <= files
    assert "config.json" not in files and "model.safetensors" not in files  # the model's files are the model's
    assert json.loads(commit["files"]["processor_config.json"])["item_template"] == processor.item_template


def test_dry_run_stages_copies_the_run_never_changes(tmp_path, trained_folder):
    """Editing a staged file (weights, config, card) leaves the trained run as it was: staging copies, never links."""
    before = {name: (trained_folder / name).read_bytes() for name in ("model.safetensors", "config.json", "README.md")}
    assert (
        main(
            [
                "push",
                "--model",
                str(trained_folder),
                "--repo",
                "org/embsum-tiny",
                "--dry-run",
                str(tmp_path / "staged"),
            ]
        )
        == 0
    )
    for name in before:
        staged = tmp_path / "staged" / name
        assert os.stat(staged).st_ino != os.stat(trained_folder / name).st_ino and os.stat(staged).st_nlink == 1
        with open(staged, "ab") as handle:
            handle.write(b"edited")
    assert {name: (trained_folder / name).read_bytes() for name in before} == before


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_follow_the_umask_not_0600(tmp_path, umask):
    """The weights, `results.json` (atomic_write_text) and a Space's `space_config.json` get the mode a plain new file
    gets (0644 under umask 022), so a serving process running as another user can read them; in a fresh process
    with its own umask."""
    code = f"""
import os, sys
from pathlib import Path
sys.path.insert(0, {str(os.getcwd())!r})
os.umask({umask})
from tests.conftest import make_item, tiny_config
from embsum_hf import EmbSumModel, EmbSumProcessor, train_tokenizer
from embsum_hf.hub import save_repo
from embsum_hf.hub.space import write_space
from embsum_hf.utils import atomic_write_text
items = [make_item(i) for i in range(6)]
tokenizer = train_tokenizer([item["title"] for item in items], vocab_size=300)
config = tiny_config(tokenizer)
processor = EmbSumProcessor(tokenizer, config, item_template="mind")
model = EmbSumModel(config).eval()
root = Path({str(tmp_path)!r})
save_repo(model, processor, root / "repo")
atomic_write_text(root / "results.json", "{{}}")
write_space(model, processor, items, root / "space", progress=False)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = 0o666 & ~umask
    for path in (
        "repo/model.safetensors",
        "repo/README.md",
        "results.json",
        "space/space_config.json",
        "space/model/model.safetensors",
        "space/catalogue/shard-00000.safetensors",
    ):
        assert oct(os.stat(tmp_path / path).st_mode & 0o777) == oct(expected), path
