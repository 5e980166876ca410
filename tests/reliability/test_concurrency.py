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
    return [
        "recommend",
        "--users",
        str(world.users_store),
        "--items",
        str(world.items_store),
        "--output",
        str(output),
        "--k",
        str(k),
        "--no-progress",
    ]


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


# --- every job that writes a folder (issue 22): encode-items, encode-users, summarize, train -----------------------


def encode(world, kind, output, *flags):
    return [
        f"encode-{kind}",
        "--model",
        str(world.model),
        "--data",
        str(world.mind),
        "--output",
        str(output),
        "--no-progress",
        "--shard-size",
        "2",
        *flags,
    ]


def summarize(world, output):
    return ["summarize", "--data", str(world.mind), "--backend", "heuristic", "--output", str(output), "--no-progress"]


def train(world, output):
    return [
        "train",
        "--dataset",
        "mind",
        "--train_data",
        str(world.mind),
        "--output_dir",
        str(output),
        "--max_steps",
        "1",
        "--vocab_size",
        "120",
        "--d_model",
        "16",
        "--num_layers",
        "1",
        "--num_heads",
        "2",
        "--d_ff",
        "16",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
    ]


@pytest.mark.parametrize("job", ["encode-items", "encode-users", "summarize", "train"])
def test_a_held_output_is_refused_naming_it_and_the_lock(world, tmp_path, job):
    """A second writer of any job's output stops at once with one line naming the output, the owner and the lock,
    and writes nothing there."""
    if job == "summarize":
        output = tmp_path / "summaries.jsonl"
        argv, lock, held = summarize(world, output), tmp_path / ".summaries.jsonl.lock", folder_lock(output, file=True)
    else:
        output = tmp_path / "out"
        argv = train(world, output) if job == "train" else encode(world, job.split("-")[1], output)
        lock, held = output / ".embsum.lock", folder_lock(output)
    with held:
        result = run(argv, tmp_path / "run")
    assert result.status == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"embsum {job}: error: ")]
    assert len(errors) == 1 and f"{output}: " in errors[0], result.stderr
    assert f"in use by pid {os.getpid()}" in errors[0] and str(lock) in errors[0], errors[0]
    if job == "summarize":
        assert not output.exists() or output.read_text() == ""
    else:
        assert sorted(path.name for path in output.iterdir()) == [".embsum.lock"]


def shard_dtypes(store):
    from safetensors import safe_open

    dtypes = set()
    for shard in sorted(store.glob("shard-*.safetensors")):
        with safe_open(str(shard), framework="pt") as handle:
            dtypes.add(str(handle.get_slice("embeddings").get_dtype()))
    return dtypes


@pytest.mark.parametrize("round", range(2))
def test_two_concurrent_encode_items_never_mix_dtypes(world, tmp_path, round):
    """float16 and float32 jobs on one store: one wins (the other is refused) or they run one after the other; the
    store is then wholly of one dtype, and `recommend` reads it."""
    store = tmp_path / "items"
    started = time.monotonic()
    children = {
        dtype: fork_cli(encode(world, "items", store, "--dtype", dtype), tmp_path / dtype)
        for dtype in ("float16", "float32")
    }
    results = {dtype: wait(*child, started) for dtype, child in children.items()}
    for result in results.values():
        assert "Traceback" not in result.stderr, result.stderr
        if result.status != 0:
            assert result.status == 2 and "folder in use by pid" in result.stderr, result.stderr
    manifest = json.loads((store / "store.json").read_text())
    assert manifest["complete"] is True and results[manifest["dtype"]].status == 0
    assert shard_dtypes(store) == {"F16" if manifest["dtype"] == "float16" else "F32"}
    ranked = run(
        [
            "recommend",
            "--users",
            str(world.users_store),
            "--items",
            str(store),
            "--output",
            str(tmp_path / "recs"),
            "--no-progress",
        ],
        tmp_path / "rec",
    )
    assert ranked.status == 0, ranked.stderr


def test_two_concurrent_summarize_runs_generate_each_user_once(world, tmp_path):
    output = tmp_path / "summaries.jsonl"
    started = time.monotonic()
    children = [fork_cli(summarize(world, output), tmp_path / f"run-{i}") for i in range(2)]
    results = [wait(*child, started) for child in children]
    for result in results:
        assert "Traceback" not in result.stderr, result.stderr
        if result.status != 0:
            assert result.status == 2 and "file in use by pid" in result.stderr, result.stderr
    users = [json.loads(line)["user_id"] for line in output.read_text().splitlines()]
    assert sorted(users) == ["U1", "U2", "U4"]  # every user with a history once: no teacher call paid twice
