"""One CLI dialect: dashes and underscores alike, shared --model/--data/--split, a YAML recipe plus overrides."""

import pytest

from embsum_hf.cli import COMMANDS, build_parser
from embsum_hf.commands.train import parse


def test_every_long_option_takes_dashes_and_underscores():
    parser = build_parser()
    dashed = parser.parse_args(["evaluate", "--model", "m", "--data", "d", "--paper-split", "true",
                                "--paper-part", "dev"])
    underscored = parser.parse_args(["evaluate", "--model", "m", "--data", "d", "--paper_split", "true",
                                     "--paper_part", "dev"])
    assert vars(dashed) == vars(underscored) and dashed.paper_split is True and dashed.paper_part == "dev"
    # --paper_split means the same on evaluate as on train and prepare: a true/false switch
    assert parser.parse_args(["evaluate", "--model", "m", "--data", "d"]).paper_split is False
    train_args, _ = parse(["--train_data", "t", "--output_dir", "o", "--paper_split", "true"])
    assert train_args.paper_split is True
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--model", "m", "--data", "d", "--paper-split", "test"])
    args = parser.parse_args(["encode-items", "--model", "m", "--data", "d", "--output", "o", "--batch_size", "3",
                              "--shard-size", "5", "--no_progress"])
    assert (args.batch_size, args.shard_size, args.no_progress) == (3, 5, True)
    args = parser.parse_args(["recommend", "--users", "u", "--items", "i", "--output", "o", "--exclude_history",
                              "--num_candidates", "7"])
    assert args.exclude_history and args.num_candidates == 7 and args.data is None
    # every argparse command has both spellings of each long option
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subparsers.items():
        for action in sub._actions:
            long = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
            for option in long:
                assert "--" + option[2:].replace("-", "_") in long and "--" + option[2:].replace("_", "-") in long
    assert set(subparsers) >= {"evaluate", "predict", "summarize", "encode-items", "recommend"} and COMMANDS


def test_a_recipe_file_then_flags_that_override_it(tmp_path):
    (tmp_path / "run.yaml").write_text(
        f"train_data: data/train\noutput_dir: {tmp_path / 'out'}\nlearning_rate: 0.001\nnum_user_codes: 8\n"
        "bf16: false\n"
    )
    run_args, training_args = parse([str(tmp_path / "run.yaml"), "--learning_rate", "1e-4", "--num-item-codes", "2"])
    assert training_args.learning_rate == 1e-4  # the flag wins
    assert (run_args.train_data, run_args.num_user_codes, run_args.num_item_codes) == ("data/train", 8, 2)
    assert training_args.output_dir == str(tmp_path / "out")
    (tmp_path / "typo.yaml").write_text("train_data: x\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"typo.yaml: unknown fields \['learning_rat'\]"):
        parse([str(tmp_path / "typo.yaml"), "--seed", "1"])
    with pytest.raises(FileNotFoundError, match="no such config file"):
        parse([str(tmp_path / "missing.yaml")])


def test_from_scratch_runs_default_to_the_recipe_learning_rate(tmp_path):
    from embsum_hf.training.recipe import FROM_SCRATCH_LEARNING_RATE

    base = ["--train_data", "t", "--output_dir", str(tmp_path)]
    _, scratch = parse(base)
    _, pretrained = parse([*base, "--backbone", "google-t5/t5-small"])
    assert scratch.learning_rate == FROM_SCRATCH_LEARNING_RATE != pretrained.learning_rate  # fine-tuning keeps 5e-5
    for given in (["--learning_rate", "5e-5"], ["--learning-rate=5e-5"]):  # a rate given is kept, even the default
        assert parse([*base, *given])[1].learning_rate == 5e-5
    (tmp_path / "run.yaml").write_text("train_data: t\nlearning_rate: 5.0e-5\n")
    assert parse([str(tmp_path / "run.yaml")])[1].learning_rate == 5e-5
    (tmp_path / "bare.yaml").write_text("train_data: t\n")
    assert parse([str(tmp_path / "bare.yaml"), "--seed", "3"])[1].learning_rate == FROM_SCRATCH_LEARNING_RATE


def test_the_training_levers_are_flags(tmp_path):
    base = ["--train_data", "t", "--output_dir", str(tmp_path)]
    _, defaults = parse(base)
    assert not defaults.user_negatives and defaults.fit_item_prior  # the paper's rows; a prior, if any, is fitted
    _, given = parse([*base, "--user_negatives", "true", "--fit_item_prior", "false"])
    assert given.user_negatives and not given.fit_item_prior
