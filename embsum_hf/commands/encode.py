"""`embsum encode-items` / `embsum encode-users`: pre-compute a dataset's item or user poly-embeddings into a store.

Both are resumable (rerun the same command after a crash) and run on several processes when launched with e.g.
`torchrun --nproc_per_node 2 -m embsum_hf.cli encode-items ...` (on CPU with `ACCELERATE_USE_CPU=1`).
"""

from __future__ import annotations

import argparse
import logging

from embsum_hf.commands import add_data_arguments, add_model_argument, add_progress_argument

KINDS = {"encode-items": "items", "encode-users": "users"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `encode-items` and `encode-users` subcommands."""
    for command, kind in KINDS.items():
        parser = subparsers.add_parser(
            command,
            help=f"pre-compute the {kind}' poly-embeddings of a dataset into an embedding store (resumable)",
            description=f"Encode every {kind[:-1]} of a MIND-format dataset with a trained EmbSum model into a "
            "sharded safetensors store. Rerunning the same command skips the shards already written.",
        )
        add_model_argument(parser)
        add_data_arguments(parser)
        parser.add_argument("--output", required=True, help="store folder (created; resumed when it exists)")
        parser.add_argument("--batch-size", type=int, default=64 if kind == "items" else 16)
        parser.add_argument(
            "--dtype", default="float32", choices=("float32", "float16", "bfloat16"), help="storage dtype"
        )
        parser.add_argument(
            "--shard-size", type=int, default=4096 if kind == "items" else 1024, help=f"{kind} per shard file"
        )
        if kind == "users":
            parser.add_argument(
                "--session-cache-mb",
                type=float,
                default=1024,
                help="memory for the encoder states of sessions already encoded: a history item read by many users is "
                "encoded once (with one item per session); 0 encodes every user's sessions afresh",
            )
        add_progress_argument(parser)
        parser.set_defaults(func=run, kind=kind)


def run(args: argparse.Namespace) -> int:
    # imported here: building the `embsum` parsers loads no data or serving code
    from embsum_hf.commands import apply_progress, load_command_data, load_model_and_processor, require_positive
    from embsum_hf.serving import encode_items, encode_users
    from embsum_hf.utils import job_state

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    require_positive(args, "batch_size", "shard_size")
    if args.kind == "users" and args.session_cache_mb < 0:
        raise ValueError(f"--session-cache-mb must be >= 0, got {args.session_cache_mb}")
    apply_progress(args.no_progress)
    model, processor = load_model_and_processor(args.model)
    data = load_command_data(args, items_only=args.kind == "items")  # encoding items needs no impressions
    options = dict(
        batch_size=args.batch_size, dtype=args.dtype, shard_size=args.shard_size, progress=not args.no_progress
    )
    if args.kind == "items":
        store = encode_items(model, processor, data.items, args.output, **options)
    else:
        from embsum_hf.data import user_histories  # each user's latest (longest) history

        options["session_cache_mb"] = args.session_cache_mb
        store = encode_users(model, processor, user_histories(data), args.output, **options)
    if job_state().is_main_process:
        shape = "x".join(map(str, store.manifest["shapes"]["embeddings"]))
        print(f"wrote {len(store)} {store.kind} ({shape}, {store.manifest['dtype']}) to {store.path}")
        print(f"model fingerprint {store.fingerprint}")
    return 0
