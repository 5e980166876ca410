"""`embsum push`: publish a trained model folder to the Hub as a self-contained repo (weights, processor, remote
code, pipeline, endpoint handler and the run's card) updated with the card inputs of `model_cards/*.yaml`.
Checkpoints, logs and saved splits stay home. `--dry-run FOLDER` stages what would be uploaded there and stops.
`embsum push --space REPO --folder DIR` uploads the Gradio Space that `embsum space` wrote to DIR instead."""

from __future__ import annotations

import argparse

from embsum_hf.commands import add_progress_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push", help="upload a trained model folder to the Hub with its card, remote code, pipeline and handler"
    )
    parser.add_argument("--model", default=None, help="the trained model folder (embsum train's --output_dir)")
    parser.add_argument("--repo", default=None, help="Hub repo id, e.g. org/embsum-mind")
    parser.add_argument("--space", default=None, help="Space repo id: upload the Space folder --folder instead")
    parser.add_argument("--folder", default=None, help="with --space: the folder `embsum space` wrote")
    parser.add_argument("--card-inputs", default=None, help="card inputs YAML, e.g. model_cards/embsum-mind.yaml")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one, or HF_TOKEN)")
    parser.add_argument("--endpoint", default=None, help="another Hub endpoint (default: HF_ENDPOINT or the Hub)")
    parser.add_argument("--message", default=None, help="commit message (default: push_to_hub's or push_space's)")
    parser.add_argument("--dry-run", metavar="FOLDER", default=None, help="stage the repo folder here, upload nothing")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from embsum_hf.commands import apply_progress

    apply_progress(args.no_progress)
    if args.space:
        return run_space(args)
    if not (args.model and args.repo):
        raise ValueError("give --model and --repo (a model repo), or --space and --folder (a Space)")

    from huggingface_hub import HfApi

    from embsum_hf.hub import load_card_inputs, stage_repo, upload_repo

    card_kwargs = load_card_inputs(args.card_inputs) if args.card_inputs else {}
    if args.dry_run:
        folder = stage_repo(args.model, args.dry_run, card_kwargs={**card_kwargs, "repo_id": args.repo})
        print(f"staged the repo folder for {args.repo} in {folder} (nothing uploaded)")
        return 0
    api = HfApi(endpoint=args.endpoint, token=args.token)
    url = upload_repo(
        args.model,
        args.repo,
        private=args.private or None,
        token=args.token,
        card_kwargs=card_kwargs,
        api=api,
        **({"commit_message": args.message} if args.message else {}),
    )
    print(f"pushed {args.model} to {args.repo}: {url}")
    return 0


def run_space(args: argparse.Namespace) -> int:
    import shutil

    from huggingface_hub import HfApi

    from embsum_hf.hub.space import check_space_folder, push_space

    if not args.folder:
        raise ValueError("--space needs --folder, the Space folder `embsum space` wrote")
    check_space_folder(args.folder)
    if args.dry_run:  # the exact tree that would be uploaded
        shutil.copytree(args.folder, args.dry_run, dirs_exist_ok=True)
        print(f"wrote the Space folder for {args.space} to {args.dry_run} (nothing uploaded)")
        return 0
    api = HfApi(endpoint=args.endpoint, token=args.token)
    message = {"commit_message": args.message} if args.message else {}
    url = push_space(args.folder, args.space, private=args.private or None, token=args.token, api=api, **message)
    print(f"pushed the Space {args.folder} to {args.space}: {url}")
    return 0
