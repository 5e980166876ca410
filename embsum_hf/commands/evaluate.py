"""`embsum evaluate`: the official MIND metrics of a saved model on a labelled split, printed as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from embsum_hf.commands import add_data_arguments, add_model_argument, add_progress_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="AUC / MRR / nDCG@5 / nDCG@10 of a saved model on a labelled split"
    )
    add_model_argument(parser)
    add_data_arguments(parser)
    # one dialect with `embsum train`/`prepare`: --paper_split true splits MIND data by impression (seed 42)
    parser.add_argument(
        "--paper-split",
        action="store_true",
        help="as in `embsum train`: split --data by impression into the paper's 10%% Dev and 90%% Test",
    )
    parser.add_argument(
        "--paper-part",
        choices=("dev", "test"),
        default="test",
        help="with --paper_split true: the part to evaluate on (default: test, the reported one)",
    )
    parser.add_argument("--output", default=None, help="also write the metrics JSON here")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from embsum_hf.commands import apply_progress, load_command_data, load_model_and_processor
    from embsum_hf.data import split_dev_test
    from embsum_hf.training import ImpressionEvaluator

    apply_progress(args.no_progress)
    model, processor = load_model_and_processor(args.model)
    data = load_command_data(args, validate=True)  # prints what the loader dropped (e.g. unknown candidates)
    if args.paper_split:
        data = dict(zip(("dev", "test"), split_dev_test(data)))[args.paper_part]
    metrics = {"split": data.split, **ImpressionEvaluator(data, processor).evaluate(model)}
    undefined = sorted(name for name, value in metrics.items() if isinstance(value, float) and value != value)
    if undefined:  # NaN is not JSON: null, and why
        metrics.update(dict.fromkeys(undefined, None))
        print(
            f"embsum evaluate: note: {', '.join(undefined)} are undefined (null): no impression of {data.split} has "
            f"both a click and a non-click ({metrics.get('num_skipped_one_class')} impressions skipped)",
            file=sys.stderr,
        )
    text = json.dumps(metrics, indent=2, allow_nan=False)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    sys.stdout.write(text + "\n")
    return 0
