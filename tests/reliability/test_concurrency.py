"""`embsum recommend` on one output folder: two concurrent runs with different k never mix their results under one
manifest, a held folder is refused naming its owner, and a killed run's temporary files are gone after the next."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch

from embsum_hf import EmbSumModel
from embsum_hf.utils import folder_lock

from .harness import build_world, fork_cli, prepare_parent, run, wait


@pytest.fixture(scope="module")
def world(tmp_path_factory, config, processor):
    prepare_parent()
    torch.manual_seed(0)
    return build_world(tmp_path_factory.mktemp("world"), EmbSumModel(config).eval(), processor)


def recommend(world, output, k):
    return ["recommend", "--users", str(world.users_store), "--items", str(world.items_store), "--output",
            str(output), "--k", str(k), "--no-progress"]


def assert_consistent(output):
    """A complete manifest, and every part's lists as long as the manifest's k says (24 items, so never fewer)."""
    manifest = json.loads((output / "recommendations.json").read_text())
    assert manifest["complete"] is True
    rows = [json.loads(line) for part in manifest["parts"] for line in (output / part).read_text().splitlines()]
    assert len(rows) == 4 and {len(row["item_ids"]) for row in rows} == {manifest["k"]}
    assert not list(output.glob(".*.tmp"))
    return manifest["k"]


@pytest.mark.parametrize("round", range(3))
def test_two_concurrent_runs_with_different_k(world, tmp_path, round):
    output = tmp_path / "recs"
    started = time.monotonic()
    children = [fork_cli(recommend(world, output, k), tmp_path / f"run-{k}") for k in (5, 20)]
    results = {k: wait(*child, started) for k, child in zip((5, 20), children)}
    for k, result in results.items():
        assert "Traceback" not in result.stderr, result.stderr
        if result.status != 0:  # the loser of the race: one line naming the folder and the owner's pid
            assert result.status == 2 and "folder in use by pid" in result.stderr, result.stderr
    winners = [k for k, result in results.items() if result.status == 0]
    assert winners
    assert assert_consistent(output) in winners
    # a rerun with either k on the same folder makes the folder that k's, wholly
    assert run(recommend(world, output, 5), tmp_path / "again").status == 0
    assert assert_consistent(output) == 5


def test_a_held_folder_is_refused_naming_the_owner(world, tmp_path):
    output = tmp_path / "recs"
    with folder_lock(output):
        result = run(recommend(world, output, 5), tmp_path / "run")
    assert result.status == 2
    assert f"{output}: folder in use by pid {os.getpid()}" in result.stderr
    assert not list(output.glob("part-*")) and not (output / "recommendations.json").exists()
    assert run(recommend(world, output, 5), tmp_path / "after").status == 0  # released with its holder


def test_killed_run_leaves_no_temporary_files_after_the_next(world, tmp_path):
    output = tmp_path / "recs"

    def hang_while_writing():  # the child writes its manifest, then blocks writing its first part (a temp file)
        fsync, calls = os.fsync, []

        def slow(fd):
            calls.append(fd)
            return fsync(fd) if len(calls) == 1 else time.sleep(600)

        os.fsync = slow

    pid, out, err = fork_cli(recommend(world, output, 5), tmp_path / "killed", before=hang_while_writing)
    deadline = time.monotonic() + 60
    while not list(output.glob(".part-*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert list(output.glob(".part-*.tmp")), "the child never reached its first part"
    assert json.loads((output / "recommendations.json").read_text())["complete"] is False

    assert run(recommend(world, output, 5), tmp_path / "next").status == 0  # the kernel released the lock
    assert assert_consistent(output) == 5
