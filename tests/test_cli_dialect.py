"""One CLI dialect: dashes and underscores alike, shared --model/--data/--split, a YAML recipe plus overrides."""

import re
from pathlib import Path

import pytest

from embsum_hf.cli import COMMANDS, build_parser
from embsum_hf.commands.train import parse
from embsum_hf.training.arguments import PAPER_MODEL_LEVERS

README = Path(__file__).parents[1] / "README.md"


def test_every_long_option_takes_dashes_and_underscores():
    parser = build_parser()
    dashed = parser.parse_args(
        ["evaluate", "--model", "m", "--data", "d", "--paper-split", "true", "--paper-part", "dev"]
    )
    underscored = parser.parse_args(
        ["evaluate", "--model", "m", "--data", "d", "--paper_split", "true", "--paper_part", "dev"]
    )
    assert vars(dashed) == vars(underscored) and dashed.paper_split is True and dashed.paper_part == "dev"
    # --paper_split means the same on evaluate as on train and prepare: a true/false switch
    assert parser.parse_args(["evaluate", "--model", "m", "--data", "d"]).paper_split is False
    train_args, _ = parse(["--train_data", "t", "--output_dir", "o", "--paper_split", "true"])
    assert train_args.paper_split is True
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--model", "m", "--data", "d", "--paper-split", "test"])
    args = parser.parse_args(
        [
            "encode-items",
            "--model",
            "m",
            "--data",
            "d",
            "--output",
            "o",
            "--batch_size",
            "3",
            "--shard-size",
            "5",
            "--no_progress",
        ]
    )
    assert (args.batch_size, args.shard_size, args.no_progress) == (3, 5, True)
    args = parser.parse_args(
        ["recommend", "--users", "u", "--items", "i", "--output", "o", "--exclude_history", "--num_candidates", "7"]
    )
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
    run_scratch, scratch = parse(base)
    _, pretrained = parse([*base, "--backbone", "google-t5/t5-small"])
    assert scratch.learning_rate == FROM_SCRATCH_LEARNING_RATE != pretrained.learning_rate  # fine-tuning keeps 5e-5
    # dropout is left to the recipe (`build_model_and_processor`: none from scratch) unless given
    assert run_scratch.dropout_rate is None and parse([*base, "--dropout-rate", "0.1"])[0].dropout_rate == 0.1
    for given in (["--learning_rate", "5e-5"], ["--learning-rate=5e-5"]):  # a rate given is kept, even the default
        assert parse([*base, *given])[1].learning_rate == 5e-5
    (tmp_path / "run.yaml").write_text("train_data: t\nlearning_rate: 5.0e-5\n")
    assert parse([str(tmp_path / "run.yaml")])[1].learning_rate == 5e-5
    (tmp_path / "bare.yaml").write_text("train_data: t\n")
    assert parse([str(tmp_path / "bare.yaml"), "--seed", "3"])[1].learning_rate == FROM_SCRATCH_LEARNING_RATE


def test_the_training_levers_are_flags(tmp_path):
    base = ["--train_data", "t", "--output_dir", str(tmp_path)]
    run_defaults, defaults = parse(base)
    # the sparse-catalogue levers are left to `embsum train` (chosen from the data); a prior is fitted
    assert defaults.in_batch_negatives is defaults.logq_correction is run_defaults.text_embedding_init is None
    assert defaults.summary_warmup_steps is defaults.history_clicks is None
    assert all(getattr(run_defaults, name) is None for name in PAPER_MODEL_LEVERS)
    assert defaults.fit_item_prior
    _, given = parse([*base, "--in_batch_negatives", "true", "--fit_item_prior", "false"])
    assert given.in_batch_negatives and not given.fit_item_prior
    assert given.logq_correction is True  # unset: as in_batch_negatives
    # a bare flag means true, as for every other switch; "false" turns a lever off, logQ with it
    flags = ["--in-batch-negatives", "--text_embedding_init", "--summary-copy", "--summary_session_positions"]
    run_bare, bare = parse([*base, *flags])
    assert bare.in_batch_negatives is bare.logq_correction is run_bare.text_embedding_init is True
    assert run_bare.summary_copy is run_bare.summary_session_positions is True
    # the README's flags for the paper's summaries on a sparse catalogue, as pasted
    pasted = re.search(r"`(--summary_copy false[^`]*)`", README.read_text()).group(1)
    paper, _ = parse([*base, *pasted.split()])
    assert {name: getattr(paper, name) for name in PAPER_MODEL_LEVERS} == PAPER_MODEL_LEVERS
    _, off = parse([*base, "--in_batch_negatives", "false"])
    assert off.in_batch_negatives is off.logq_correction is False
    _, only = parse([*base, "--in_batch_negatives", "--logq_correction", "false"])
    assert only.in_batch_negatives is True and only.logq_correction is False


def subcommand_parsers() -> dict:
    parser = build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices


def test_every_subcommand_takes_no_progress_train_and_prepare_included(tmp_path):
    from embsum_hf.commands.prepare import parse as parse_prepare

    parser = build_parser()
    forwarded = {"train", "prepare"}  # parsed by HfArgumentParser: their flags arrive as `extra`
    for name, sub in subcommand_parsers().items():
        if name in forwarded:
            continue
        assert any("--no-progress" in action.option_strings for action in sub._actions), name
    args = parser.parse_args(["recommend", "--users", "u", "--items", "i", "--output", "o", "--no-progress"])
    assert args.no_progress is True
    base = ["--train_data", "t", "--output_dir", str(tmp_path)]
    assert parse([*base, "--no-progress"])[1].disable_tqdm is True
    assert parse([*base, "--no_progress", "true"])[1].disable_tqdm is True
    assert parse([*base, "--disable_tqdm", "true"])[1].disable_tqdm is True  # the Trainer's own spelling still works
    assert not parse(base)[1].disable_tqdm and not parse([*base, "--no-progress", "false"])[1].disable_tqdm
    assert parse_prepare(["--train_data", "t", "--output_dir", "o", "--no-progress"])[2].no_progress is True
    assert parse_prepare(["--train_data", "t", "--output_dir", "o"])[2].no_progress is False


def test_every_boolean_flag_takes_the_hf_argparser_style():
    """Bare `--flag` and `--flag true/false` (as `HfArgumentParser` reads `embsum train`'s) on every boolean of every
    argparse subcommand; anything else is refused."""
    from embsum_hf.commands import string_to_bool

    parser = build_parser()
    required = {
        "--model": "m",
        "--data": "d",
        "--output": "o",
        "--users": "u",
        "--items": "i",
        "--backend": "heuristic",
    }
    checked = 0
    for name, sub in subcommand_parsers().items():
        needed = []
        for action in sub._actions:
            if action.required:
                needed += [action.option_strings[0], required[action.option_strings[0]]]
        for action in sub._actions:
            if action.type is not string_to_bool:
                continue
            flag = next(option for option in action.option_strings if "_" not in option)
            assert action.default is False and action.nargs == "?", (name, flag)
            underscored = "--" + flag[2:].replace("-", "_")
            for given, value in (
                ([flag], True),
                ([flag, "true"], True),
                ([flag, "false"], False),
                ([underscored, "yes"], True),
                ([], False),
            ):
                assert getattr(parser.parse_args([name, *needed, *given]), action.dest) is value, (name, given)
            with pytest.raises(SystemExit):
                parser.parse_args([name, *needed, flag, "maybe"])
            checked += 1
    # --faiss, --exclude-history, --no-progress (x6), --paper-split, --drop-unknown-candidates, --private,
    # --link-model: no store_true switch is left in another style
    assert checked >= 12


def test_top_k_everywhere_and_k_still_accepted():
    parser = build_parser()
    base = ["recommend", "--users", "u", "--items", "i", "--output", "o"]
    assert parser.parse_args([*base, "--top-k", "7"]).top_k == 7
    assert parser.parse_args([*base, "--top_k", "6"]).top_k == 6
    assert parser.parse_args([*base, "--k", "5"]).top_k == 5  # the old spelling
    assert parser.parse_args(base).top_k == 10
    for sub in subcommand_parsers().values():  # no command names it otherwise
        assert not any(option in ("--num-items", "--topk") for a in sub._actions for option in a.option_strings)
