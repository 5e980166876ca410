"""Packaging: a cheap `import embsum_hf` / `embsum --help`, `embsum --version`, and the README's install line run
for real: pip clones this repository (a clean checkout of the committed HEAD), builds the wheel and installs it
non-editable into a fresh venv, from which the CLI, the metric module, the handler template and the card work."""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys
from pathlib import Path

from embsum_hf import __version__
from embsum_hf.hub.model_card import REPOSITORY

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "transformers.pipelines", "datasets")


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{args}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def test_import_and_help_load_nothing_heavy(tmp_path):
    """No import hook either: the package leaves `sys.meta_path` as it was, and the pipeline task registers when its
    class loads (`from embsum_hf import EmbSumRecommendationPipeline`), as a custom transformers pipeline does."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = (
        "import sys\n"
        "finders = list(sys.meta_path)\n"
        "import embsum_hf\n"
        "from embsum_hf.cli import build_parser\n"
        "build_parser().format_help()\n"
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))\n"
        "print(sys.meta_path == finders)\n"
        "from embsum_hf import EmbSumRecommendationPipeline\n"
        "from transformers.pipelines import PIPELINE_REGISTRY\n"
        "print(PIPELINE_REGISTRY.check_task('embsum-recommendation')[1]['impl'] is EmbSumRecommendationPipeline)\n"
    )
    result = run(sys.executable, "-c", code, cwd=tmp_path, env=env)
    assert result.stdout.split() == ["[]", "True", "True"]
    version = run(sys.executable, "-m", "embsum_hf.cli", "--version", cwd=tmp_path, env=env).stdout
    assert version == f"embsum_hf {__version__}\n"


# run in the fresh venv: the installed (not editable) package, its CLI, metric module, handler template and card
INSTALLED = """
import json, sys, tempfile
from pathlib import Path
import torch
import embsum_hf
from embsum_hf import EmbSumConfig, EmbSumModel, EmbSumProcessor, train_tokenizer
from embsum_hf.hub import save_repo
from embsum_hf.hub.repo import TEMPLATES
from embsum_hf.metrics import load_mind_metric

metric = load_mind_metric()
scores = metric.compute(predictions=[[0.9, 0.1, 0.5]], references=[[1, 0, 0]])
texts = ["News Title: rocket launch; News Abstract: moon; News Category: space"] * 20
tokenizer = train_tokenizer(texts, vocab_size=60)
t5 = dict(vocab_size=len(tokenizer), d_model=16, d_kv=4, num_heads=4, d_ff=32, num_layers=1)
config = EmbSumConfig(
    t5_config=t5, item_start_token_id=tokenizer.convert_tokens_to_ids("<sos>"), num_user_codes=2, num_item_codes=2,
    max_history_items=4, session_max_tokens=32, item_max_tokens=16, summary_max_tokens=8,
)
folder = save_repo(EmbSumModel(config), EmbSumProcessor(tokenizer, config), Path(tempfile.mkdtemp()) / "repo")
print(json.dumps({
    "package": embsum_hf.__file__,
    "auc": scores["auc"],
    "handler": (TEMPLATES / "handler.py").is_file(),
    "card": "<!-- embsum:auto:start -->" in (folder / "README.md").read_text(),
    "files": sorted(p.name for p in folder.iterdir()),
}))
"""


def test_readme_install_line_installs_a_working_wheel(tmp_path):
    readme = (ROOT / "README.md").read_text()
    (line,) = [line for line in readme.splitlines() if re.fullmatch(r'pip install "embsum_hf @ git\+\S+"', line)]
    # the one visible change: the public repository -> this checkout (the test machines are offline)
    line = line.replace(f"git+{REPOSITORY}", f"git+file://{ROOT}")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    packages = run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    # the dependencies (torch 2.13.0 among them) come from this interpreter's site-packages, not from an index
    (Path(packages) / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = dict(os.environ, PYTHONPATH="", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    requirement = line.split("pip install ", 1)[1].strip('"')
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        requirement,
        cwd=tmp_path,
        env=env,
    )

    assert run(str(venv / "bin" / "embsum"), "--help", cwd=tmp_path, env=env).stdout.startswith("usage: embsum")
    result = run(str(python), "-c", INSTALLED, cwd=tmp_path, env=dict(env, HF_HUB_OFFLINE="1"))
    answers = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    assert answers["package"].startswith(packages), answers["package"]  # the installed copy, not this checkout
    assert answers["auc"] == 1.0 and answers["handler"] and answers["card"]
    assert {"handler.py", "requirements.txt", "pipeline_embsum.py", "processing_embsum.py"} <= set(answers["files"])


def test_every_public_name_loads_lazily():
    import embsum_hf

    assert set(embsum_hf.__all__) == set(embsum_hf._LAZY_NAMES)
    for name in embsum_hf.__all__:
        assert getattr(embsum_hf, name).__name__ if name != "ITEM_TEMPLATES" else embsum_hf.ITEM_TEMPLATES


def test_make_installs_cpu_torch_or_falls_back_when_the_index_is_unreachable(tmp_path, serve):
    """`make torch` (run by `make install`/`demo`/`test`): from the PyTorch CPU index when it answers, else the same
    pin from pip's other indexes, with a line saying so. A fresh venv sees this interpreter's packages (torch 2.13.0
    among them) through a .pth file, so pip finds the pin satisfied without downloading; which branch ran is what is
    checked, against an index on 127.0.0.1 that answers and against a closed port."""
    import socket
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    packages = run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    (Path(packages) / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    class Index(BaseHTTPRequestHandler):
        asked: list[str] = []

        def do_GET(self):  # noqa: N802 (http.server's naming)
            Index.asked.append(self.path)
            body = b"<html><body></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = serve(ThreadingHTTPServer(("127.0.0.1", 0), Index))
    with socket.socket() as sock:  # a port nothing listens on: the index cannot be reached
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = dict(os.environ, PYTHONPATH="")
    make = ["make", "-s", "--no-print-directory", "-C", str(ROOT), "torch", f"PY={python}"]
    reached = run(*make, f"TORCH_INDEX=http://127.0.0.1:{server.server_port}/whl/cpu", env=env)
    assert "cannot be reached" not in reached.stdout and "/whl/cpu/torch/" in Index.asked
    fallback = run(*make, f"TORCH_INDEX=http://127.0.0.1:{closed}/whl/cpu", env=env)
    assert f"the PyTorch CPU index http://127.0.0.1:{closed}/whl/cpu cannot be reached" in fallback.stdout
    assert run(str(python), "-c", "import torch; print(torch.__version__)", env=env).stdout.startswith("2.13.0")
