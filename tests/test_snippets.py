"""Every code block of README.md, of the pages under docs/ and of a generated model card runs.

- Python blocks run as written against tiny local models. The one visible change: Hub ids are replaced by local
  folders (`HUB_IDS` below; the machines this is tested on are offline), and each block runs in a fresh folder
  holding what it reads (`stores/` for the serving block).
- Shell blocks: every `embsum` line goes through the CLI's own parser (`embsum_hf.cli.build_parser()`, and
  `transformers.HfArgumentParser` for `train` / `prepare`, which also builds the TrainingArguments); `accelerate
  launch ... -m embsum_hf.cli ...` lines parse their embsum part; `make` targets exist in the Makefile; `hf` lines go
  through the `hf` CLI's parser (`--help` of the subcommand); `python script.py` runs a script a command wrote;
  `pip install` lines are the install tests of
  tests/test_packaging.py. An unknown command fails the test, so a new kind of line gets a check.
- BibTeX blocks are the one citation (`EMBSUM_CITATION`); untagged blocks are diagrams, not code.
- The README leads: at most about 200 lines, `make demo` and `make test` its first commands, every docs/ page linked
  from it, and every relative link of the README and the docs pages resolving.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from embsum_hf import EmbSumModel, EmbSumProcessor
from embsum_hf.cli import build_parser
from embsum_hf.hub import save_repo
from embsum_hf.hub.model_card import EMBSUM_CITATION, INSTALL, REPOSITORY

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# pages the README links to that another change of the same release writes (remove once they are in)
PENDING_PAGES: set[str] = set()
MAKE_TARGETS = set(re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), flags=re.M))


def code_blocks(text: str) -> list[tuple[str, str, int]]:
    """`(language, code, line)` of each fenced block of a Markdown text."""
    blocks = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S):
        blocks.append((match.group(1), match.group(2), text[: match.start()].count("\n") + 1))
    return blocks


def shell_commands(code: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped, `a && b` split, `VAR=value`
    prefixes dropped."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            head = words[: words.index("&&")] if "&&" in words else words
            words = words[len(head) + 1 :]
            while head and re.fullmatch(r"[A-Z_]+=\S*", head[0]):
                head = head[1:]
            if head:
                commands.append(head)
    return commands


def check_embsum(argv: list[str]) -> None:
    """Parse an `embsum ...` command line as `embsum_hf.cli.main` would, without running it."""
    argv = [word for word in argv if word != "..."]  # "embsum train ... --flag": the flags shown must parse
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command in ("train", "prepare"):
        module = __import__(f"embsum_hf.commands.{args.command}", fromlist=["parse"])
        try:
            module.parse(extra)
        except ValueError as error:
            # a GPU-only line (bf16) on a CPU machine: its flags parsed, then TrainingArguments refused the device
            if torch.cuda.is_available() or "doesn't support bf16/gpu" not in str(error):
                raise
    else:
        assert not extra, f"unrecognized arguments: {extra}"


def check_pip_install(words: list[str]) -> None:
    """A `pip install` line: torch pinned as the project pins it, or this package (from REPOSITORY, or `-e .` with
    extras that setup.cfg defines). tests/test_packaging.py runs the README's plain install line for real."""
    from packaging.requirements import Requirement

    assert words[:2] == ["pip", "install"], words
    setup = (ROOT / "setup.cfg").read_text()
    extras = set(re.findall(r"^(\w+) = ", setup.split("[options.extras_require]")[1].split("\n[")[0], flags=re.M))
    if words[2].startswith("torch=="):
        assert words[2] == "torch==2.13.0", words
        return
    if words[2:4] == ["-e", ".[dev]"]:
        return
    requirement = Requirement(words[2])
    assert requirement.name == "embsum_hf" and requirement.url == f"git+{REPOSITORY}", words
    assert requirement.extras <= extras, (requirement.extras, extras)


def check_shell(words: list[str]) -> None:
    command = words[0]
    if command == "embsum":
        check_embsum(words[1:])
    elif command == "accelerate":
        assert words[1] == "launch" and "-m" in words and words[words.index("-m") + 1] == "embsum_hf.cli", words
        check_embsum(words[words.index("-m") + 2 :])
    elif command == "make":
        assert set(words[1:]) <= MAKE_TARGETS, words
    elif command == "hf":
        hf = Path(sys.executable).with_name("hf")
        result = subprocess.run([str(hf), *words[1:2], "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    elif command == "pip":
        check_pip_install(words)
    elif command == "git":
        assert words[1:3] == ["clone", REPOSITORY], words
    elif command == "cd":
        assert len(words) == 2, words
    elif command == "python":  # a script of this repository, or one the README's own commands wrote (a Space's app.py)
        assert words[1].endswith(".py"), words
        if words[1].startswith(("benchmarks/", "examples/")):
            assert (ROOT / words[1]).is_file(), words
        else:
            assert len(words) == 2, words
    else:
        raise AssertionError(f"no check for shell command {command!r}: {' '.join(words)}")


@pytest.fixture(scope="module")
def hub_ids(tmp_path_factory, tokenizer, config, processor, items) -> dict[str, str]:
    """Local stand-ins for the Hub ids the README names: a tiny T5 backbone and a tiny trained-looking EmbSum repo."""
    root = tmp_path_factory.mktemp("hub_ids")
    t5 = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, num_heads=2, d_ff=64, num_layers=1, decoder_start_token_id=0
    )
    T5ForConditionalGeneration(t5).save_pretrained(root / "t5-small")
    tokenizer.save_pretrained(root / "t5-small")
    torch.manual_seed(0)
    save_repo(EmbSumModel(config).eval(), processor, root / "embsum-mind")
    return {"google-t5/t5-small": str(root / "t5-small"), "org/embsum-mind": str(root / "embsum-mind")}


def run_python(code: str, cwd: Path, substitutions: dict[str, str]) -> None:
    for hub_id, folder in substitutions.items():
        code = code.replace(f'"{hub_id}"', repr(folder))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), HF_HOME=str(cwd / "hf_home"))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{code}\n---\n{result.stderr[-3000:]}"


def make_stores(folder: Path, repo: str, items: list[dict]) -> None:
    from embsum_hf.serving import encode_items, encode_users

    model, processor = EmbSumModel.from_pretrained(repo).eval(), EmbSumProcessor.from_pretrained(repo)
    encode_items(model, processor, items, folder / "stores" / "items", progress=False)
    histories = [(f"U{i}", items[i : i + 5]) for i in range(6)]
    encode_users(model, processor, histories, folder / "stores" / "users", progress=False)


PAGE_BLOCKS = [
    (page.relative_to(ROOT).as_posix(), *block) for page in (README, *DOCS) for block in code_blocks(page.read_text())
]


@pytest.mark.parametrize(
    "page, language, code, line", PAGE_BLOCKS, ids=[f"{page}:{line}" for page, _, _, line in PAGE_BLOCKS]
)
def test_page_block_runs(tmp_path, hub_ids, items, page, language, code, line):
    if language == "python":
        if "EmbeddingStore.load" in code:
            make_stores(tmp_path, hub_ids["org/embsum-mind"], items)
        run_python(code, tmp_path, hub_ids)
    elif language == "bash":
        for words in shell_commands(code):
            check_shell(words)
    elif language == "bibtex":
        assert code.strip() == EMBSUM_CITATION, f"{page}:{line}: cite EmbSum as embsum_hf.hub.model_card does"
    else:
        assert language == "", f"{page}:{line}: no check for ```{language} blocks"


def test_the_readme_leads_and_links_every_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    first = next(code for language, code, _ in code_blocks(text) if language == "bash")
    assert [words[:2] for words in shell_commands(first)] == [["make", "demo"], ["make", "test"]]
    links = set(re.findall(r"\]\((docs/[^)#]+)\)", text))
    assert {page.relative_to(ROOT).as_posix() for page in DOCS} <= links, "every docs/ page is linked from the README"
    for page in (README, *DOCS):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            path = (page.parent / target).resolve()
            assert path.exists() or path.relative_to(ROOT).as_posix() in PENDING_PAGES, f"{page.name}: {target}"
    assert "## Quick start" in text and "## Cite" in text


def test_generated_card_blocks_run(tmp_path, hub_ids):
    folder = Path(hub_ids["org/embsum-mind"])
    model, processor = EmbSumModel.from_pretrained(folder).eval(), EmbSumProcessor.from_pretrained(folder)
    save_repo(model, processor, tmp_path / "card", card_kwargs={"repo_id": "org/embsum-tiny"})
    blocks = code_blocks((tmp_path / "card" / "README.md").read_text())
    assert [language for language, _, _ in blocks] == ["python", "python", "bash", "bibtex"]
    for language, code, _ in blocks:
        if language == "python":
            run_python(code, tmp_path, {"org/embsum-tiny": str(tmp_path / "card")})
        elif language == "bash":
            for words in shell_commands(code):
                check_shell(words)


def test_the_install_line_is_defined_once():
    """The card's install line (`INSTALL`) is the README's and setup.cfg's `url` names the same repository."""
    assert INSTALL in README.read_text()
    assert f"url = {REPOSITORY}" in (ROOT / "setup.cfg").read_text()
