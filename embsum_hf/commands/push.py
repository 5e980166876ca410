"""`embsum push`: upload a trained model folder (what `embsum train` or `save_repo` wrote: weights, processor, remote
code, pipeline, endpoint handler and the run's card) to the Hub, the card updated with the card inputs of
`model_cards/*.yaml`. Checkpoints, logs and saved splits stay home. `--dry-run FOLDER` stages what would be uploaded
there and stops."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push", help="upload a trained model folder to the Hub with its card, remote code, pipeline and handler"
    )
    parser.add_argument("--model", required=True, help="the trained model folder (embsum train's --output_dir)")
    parser.add_argument("--repo", required=True, help="Hub repo id, e.g. org/embsum-mind")
    parser.add_argument("--card-inputs", default=None, help="card inputs YAML, e.g. model_cards/embsum-mind.yaml")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one, or HF_TOKEN)")
    parser.add_argument("--endpoint", default=None, help="another Hub endpoint (default: HF_ENDPOINT or the Hub)")
    parser.add_argument("--message", default="Upload EmbSum model", help="commit message")
    parser.add_argument("--dry-run", metavar="FOLDER", default=None, help="stage the repo folder here, upload nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from huggingface_hub import HfApi

    from embsum_hf.hub import load_card_inputs, stage_repo, upload_repo

    card_kwargs = load_card_inputs(args.card_inputs) if args.card_inputs else {}
    if args.dry_run:
        folder = stage_repo(args.model, args.dry_run, card_kwargs={**card_kwargs, "repo_id": args.repo})
        print(f"staged the repo folder for {args.repo} in {folder} (nothing uploaded)")
        return 0
    api = HfApi(endpoint=args.endpoint, token=args.token)
    url = upload_repo(
        args.model, args.repo, private=args.private or None, token=args.token, card_kwargs=card_kwargs,
        commit_message=args.message, api=api,
    )  # fmt: skip
    print(f"pushed {args.model} to {args.repo}: {url}")
    return 0
