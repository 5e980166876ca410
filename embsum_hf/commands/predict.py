"""`embsum predict`: score every impression of a split (labelled or not) and write the MIND leaderboard file."""

from __future__ import annotations

import argparse
import logging

from embsum_hf.commands import add_data_arguments, add_model_argument, add_progress_argument

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="write a MIND leaderboard prediction.txt (1-based ranks per impression)"
    )
    add_model_argument(parser)
    add_data_arguments(parser, note="; labels may be absent (MINDlarge_test)")
    parser.add_argument("--output", required=True, help="prediction.txt to write (atomically)")
    parser.add_argument(
        "--drop-unknown-candidates",
        action="store_true",
        help="rank only the candidates whose item text is known (default: refuse them; the file would be invalid)",
    )
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from embsum_hf.commands import apply_progress, load_command_data, load_model_and_processor
    from embsum_hf.metrics import write_prediction_file
    from embsum_hf.training import ImpressionEvaluator

    # every candidate must be ranked: an unknown one is refused (naming the impression), never dropped
    apply_progress(args.no_progress)
    model, processor = load_model_and_processor(args.model)
    data = load_command_data(args, validate=True, strict_candidates=not args.drop_unknown_candidates)
    predictions = ImpressionEvaluator(data, processor).predict(model)
    write_prediction_file(args.output, predictions.impression_ids, predictions.scores)
    print(f"wrote {len(predictions.impression_ids)} impressions to {args.output}")
    return 0
