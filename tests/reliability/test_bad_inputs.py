"""Every generated bad input (see `cases.py`) run through the real `embsum` command in a forked child: exit 2 with
one line naming the path, line or field, or a counted skip printed on screen; never a traceback, never exit 0 with
output written from refused input."""

from __future__ import annotations

import re

import pytest
import torch

from embsum_hf import EmbSumModel

from .cases import all_cases
from .harness import build_world, run, prepare_parent

CASES = all_cases()


@pytest.fixture(scope="module")
def world(tmp_path_factory, config, processor):
    prepare_parent()
    torch.manual_seed(0)
    return build_world(tmp_path_factory.mktemp("world"), EmbSumModel(config).eval(), processor)


def error_lines(stderr: str, command: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"embsum {command}: error: ")]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case(case, world, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    argv = case.argv(world, tmp_path)
    result = run(argv, tmp_path / "run")
    command = argv[0]
    shown = f"exit {result.status}\n--- stdout\n{result.stdout[-2000:]}\n--- stderr\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr, shown
    if case.expect == "refuse":
        assert result.status == 2, shown
        errors = error_lines(result.stderr, command)
        assert len(errors) == 1, shown
        for name in case.names:
            assert name.lower() in errors[0].lower(), f"{name!r} not named in: {errors[0]}"
        if case.output is not None:
            assert not (tmp_path / case.output).exists(), f"{case.output} written from refused input"
    else:
        assert result.status == 0, shown
        for name in case.names:
            assert re.search(re.escape(name), result.stdout + result.stderr), f"{name!r} not printed\n{shown}"
    if case.after is not None:
        case.after(tmp_path)
