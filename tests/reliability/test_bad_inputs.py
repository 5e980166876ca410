"""Every generated bad input (see `cases.py`) run through the real `embsum` command in a forked child: exit 2 with
one line naming the path, line or field, or a counted skip printed on screen; never a traceback, never exit 0 with
output written from refused input.

All cases run once, two children at a time, when the first test asks for their results (`outcomes`); each test
then checks its own case, so a failure still names the case."""

from __future__ import annotations

import os
import re
import time

import pytest
import torch

from embsum_hf import EmbSumModel

from .cases import all_cases
from .harness import build_world, fork_cli, prepare_parent, wait

CASES = all_cases()
PARALLEL = 2


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, config, processor):
    prepare_parent()
    torch.manual_seed(0)
    world = build_world(tmp_path_factory.mktemp("world"), EmbSumModel(config).eval(), processor)
    root = tmp_path_factory.mktemp("cases")
    results, running = {}, []
    started = time.monotonic()
    for case in CASES:
        folder = root / case.id
        folder.mkdir()
        argv = case.argv(world, folder)

        def isolate(cache=str(folder / "hf-cache")):  # in the child: its own datasets cache
            os.environ["HF_DATASETS_CACHE"] = cache

        running.append((case.id, argv[0], folder, fork_cli(argv, folder / "run", before=isolate), time.monotonic()))
        while len(running) >= PARALLEL or (case is CASES[-1] and running):
            case_id, command, case_folder, child, begun = running.pop(0)
            results[case_id] = (command, case_folder, wait(*child, begun))
    print(f"\nreliability: {len(results)} generated bad-input cases in {time.monotonic() - started:.1f} s")
    return results


def error_lines(stderr: str, command: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"embsum {command}: error: ")]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case(case, outcomes):
    command, folder, result = outcomes[case.id]
    shown = f"exit {result.status}\n--- stdout\n{result.stdout[-2000:]}\n--- stderr\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr, shown
    if case.expect == "refuse":
        assert result.status == 2, shown
        errors = error_lines(result.stderr, command)
        assert len(errors) == 1, shown
        for name in case.names:
            assert name.lower() in errors[0].lower(), f"{name!r} not named in: {errors[0]}"
        if case.output is not None:
            assert not (folder / case.output).exists(), f"{case.output} written from refused input"
    else:
        assert result.status == 0, shown
        for name in case.names:
            assert re.search(re.escape(name), result.stdout + result.stderr), f"{name!r} not printed\n{shown}"
    for text in case.absent:
        assert text not in result.stdout + result.stderr, f"{text!r} printed\n{shown}"
    if case.after is not None:
        case.after(folder)
