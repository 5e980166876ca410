"""The `embsum` entry point itself."""

import os
import subprocess
import sys

import pytest
import torch.distributed as dist

from embsum_hf.cli import end_distributed


def test_end_distributed_destroys_the_process_group(tmp_path):
    # what `accelerate launch` leaves a rank with; exiting with it alive can SIGABRT in gloo's threads
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    try:
        end_distributed()
        assert not dist.is_initialized()
    finally:  # never leave the rest of the suite inside a process group
        if dist.is_initialized():
            dist.destroy_process_group()


def test_bad_input_is_one_clear_line_and_exit_status_2(tmp_path, capsys, monkeypatch):
    from embsum_hf.cli import main

    missing = tmp_path / "no-model"
    # the real entry point: its exit status and stderr
    result = subprocess.run(
        [sys.executable, "-m", "embsum_hf.cli", "evaluate", "--model", str(missing), "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"embsum evaluate: error: --model {missing}: no such folder" in result.stderr

    (tmp_path / "empty").mkdir()
    assert main(["train", "--train_data", str(tmp_path / "empty"), "--output_dir", str(tmp_path / "out")]) == 2
    assert f"embsum train: error: {tmp_path / 'empty'} holds neither behaviors.tsv" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

    monkeypatch.setenv("EMBSUM_TRACEBACK", "1")  # the traceback when asked for
    with pytest.raises(FileNotFoundError, match="no such folder"):
        main(["evaluate", "--model", str(missing), "--data", str(tmp_path)])


def test_every_command_has_help(capsys):
    from embsum_hf.cli import build_parser, main

    commands = [name for action in build_parser()._subparsers._group_actions for name in action.choices]
    assert {"train", "evaluate", "predict", "summarize", "encode-items", "encode-users", "recommend"} <= set(commands)
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0 and "usage:" in capsys.readouterr().out, command
    # `train` forwards to HfArgumentParser: the run fields and the TrainingArguments are all listed
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    listed = capsys.readouterr().out
    assert all(flag in listed for flag in ("--items_data", "--paper_split", "--learning_rate", "--bf16"))
