"""Real `embsum train` runs in forked children: a run killed while the Trainer writes `trainer_state.json` leaves a
torn checkpoint that `--resume_from_checkpoint true` skips (naming it) instead of failing on forever; in-batch
negatives with the logQ correction evaluate a dev split holding an item that was never a training candidate."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time

import pytest

from .harness import behavior_lines, fork_cli, prepare_parent, wait, write_mind

TINY = [
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
    "--per_device_train_batch_size",
    "2",
]


@pytest.fixture(scope="module")
def mind(tmp_path_factory):
    prepare_parent()
    return write_mind(tmp_path_factory.mktemp("train") / "mind")


def train(mind, output, *flags):
    return ["train", "--dataset", "mind", "--train_data", str(mind), "--output_dir", str(output), *TINY, *flags]


def test_killed_while_writing_trainer_state_then_resume_skips_the_torn_checkpoint(mind, tmp_path):
    output = tmp_path / "out"

    def die_in_second_state_write():  # the child writes checkpoint-1 whole, then hangs in checkpoint-2's state
        from transformers.trainer_callback import TrainerState

        save, calls = TrainerState.save_to_json, []

        def torn(self, path):
            calls.append(path)
            if len(calls) == 1:
                return save(self, path)
            open(path, "w").close()  # opened for writing, nothing written yet: 0 bytes on disk
            time.sleep(600)

        TrainerState.save_to_json = torn

    argv = train(mind, output, "--max_steps", "2", "--save_steps", "1")
    pid, out, err = fork_cli(argv, tmp_path / "killed", timeout=300, before=die_in_second_state_write)
    torn_state = output / "checkpoint-2" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not torn_state.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert torn_state.exists() and torn_state.stat().st_size == 0, err.read_text()[-3000:]

    def show_warnings():  # as on a terminal: pytest's capture handlers, inherited by the fork, would swallow them
        logging.getLogger("embsum_hf").addHandler(logging.StreamHandler(sys.stderr))

    argv = train(mind, output, "--max_steps", "3", "--save_steps", "1", "--resume_from_checkpoint", "true")
    started = time.monotonic()
    result = wait(*fork_cli(argv, tmp_path / "resumed", timeout=300, before=show_warnings), started)
    assert result.status == 0, result.stderr[-3000:]
    assert f"skipping torn checkpoint {output / 'checkpoint-2'}: trainer_state.json is unreadable" in result.stderr
    assert json.loads(result.stdout)["train_split"] == "mind"
    for step in (1, 2, 3):  # the torn folder was written again, whole
        assert json.loads((output / f"checkpoint-{step}" / "trainer_state.json").read_text())["global_step"] == step


def test_logq_correction_evaluates_a_dev_item_never_seen_in_training(mind, tmp_path):
    # N22 is in the catalogue but never a training candidate (clicked or not): its log q is the smallest share
    dev = write_mind(
        tmp_path / "dev",
        behaviors=behavior_lines(
            [
                ("9", "U1", "11/16/2019 8:55:22 AM", "N1 N2", "N22-1 N10-0 N23-0"),
            ]
        ),
    )
    output = tmp_path / "out"
    started = time.monotonic()
    argv = train(
        mind,
        output,
        "--eval_data",
        str(dev),
        "--max_steps",
        "2",
        "--in_batch_negatives",
        "true",
        "--logq_correction",
        "true",
    )
    result = wait(*fork_cli(argv, tmp_path / "run", timeout=300), started)
    assert result.status == 0, result.stderr[-3000:]
    printed = json.loads(result.stdout)
    assert printed["dev"]["split"] == "dev" and printed["dev"]["dev_num_impressions"] == 1
    assert json.loads((output / "results.json").read_text())["dev"] == printed["dev"]
