"""`embsum summarize`: write (or complete) the summaries of a dataset's users: an LLM teacher's (training targets)
or a trained EmbSum's own (explanations)."""

from __future__ import annotations

import argparse
import itertools
import logging

from embsum_hf.commands import add_data_arguments, add_model_argument, add_progress_argument
from embsum_hf.teacher import BACKENDS  # the registry only: no backend (and no data code) is imported


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `summarize` subcommand."""
    parser = subparsers.add_parser(
        "summarize",
        help="user-interest summaries from an LLM teacher or a trained EmbSum; reruns only generate what is missing",
        description="Generate user-interest summaries (a teacher's, or a trained EmbSum's own with --backend embsum) "
        "into an append-only JSONL store. Rerunning the same command skips users already summarised and regenerates "
        "users whose history changed.",
    )
    add_data_arguments(parser)
    parser.add_argument("--domain", default=None, help="prompt wording: news, books, movies, custom (default: data's)")
    parser.add_argument(
        "--backend",
        required=True,
        choices=tuple(BACKENDS),
        help="an LLM teacher (transformers, openai), template sentences (heuristic), or a trained EmbSum's own "
        "summaries of its users (embsum: the model's explanations)",
    )
    add_model_argument(
        parser, "transformers: Hub id or folder; openai: the served model name; embsum: the trained model", False
    )
    parser.add_argument("--gguf-file", help="transformers: GGUF file inside --model (needs the gguf package)")
    parser.add_argument("--base-url", help="openai: API root with version, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--output", required=True, help="summary store (JSONL, appended to)")
    parser.add_argument("--export", help="also write {user_id, summary} JSONL here (the training loader's format)")
    parser.add_argument("--batch-size", type=int, default=8, help="users per generate call and per durable write")
    parser.add_argument("--max-users", type=int, default=None, help="only the first N users (for trials)")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="summary length limit (default: 256 tokens for LLMs, the model's own for embsum)",
    )
    parser.add_argument("--device", default=None, help="transformers: cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="transformers: e.g. bfloat16")
    parser.add_argument("--concurrency", type=int, default=8, help="openai: requests in flight")
    parser.add_argument("--timeout", type=float, default=60.0, help="openai: seconds per request")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


# the flags each backend cannot run without
_REQUIRED = {"transformers": ("model",), "embsum": ("model",), "openai": ("base_url", "model")}


def _backend_kwargs(args: argparse.Namespace) -> dict:
    from embsum_hf.commands import require_positive

    require_positive(args, "batch_size", "max_users", "concurrency", "timeout", "max_new_tokens")
    missing = [f"--{name.replace('_', '-')}" for name in _REQUIRED.get(args.backend, ()) if not getattr(args, name)]
    if missing:
        raise ValueError(f"--backend {args.backend} needs {' and '.join(missing)}")
    local = {"batch_size": args.batch_size, "device": args.device}
    if args.backend == "transformers":
        options = {"model_name_or_path": args.model, "gguf_file": args.gguf_file, "dtype": args.dtype, **local}
    elif args.backend == "embsum":
        options = {"model": args.model, **local}
    elif args.backend == "openai":  # API key: OPENAI_API_KEY
        options = {
            "base_url": args.base_url,
            "model": args.model,
            "concurrency": args.concurrency,
            "timeout": args.timeout,
        }
    else:
        return {}
    if args.max_new_tokens is not None:  # else each backend's own default
        options["max_tokens" if args.backend == "openai" else "max_new_tokens"] = args.max_new_tokens
    return options


def run(args: argparse.Namespace) -> int:
    """Run the teacher; exit status 1 when some users failed (rerun to retry exactly those)."""
    # imported here: building the `embsum` parsers loads no data or serving code
    from embsum_hf.commands import apply_progress, load_command_data
    from embsum_hf.teacher import SummaryStore, get_backend, summarize_users, user_histories

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    apply_progress(args.no_progress)
    options = _backend_kwargs(args)  # a missing flag fails before any loading
    data = load_command_data(args)
    backend = get_backend(args.backend, **options)
    users = itertools.islice(user_histories(data), args.max_users)
    with SummaryStore(args.output) as store:
        stats = summarize_users(
            users,
            backend,
            store,
            domain=args.domain or data.domain,
            batch_size=args.batch_size,
            progress=not args.no_progress,
        )
        if args.export:
            store.write_jsonl(args.export)
    print(f"done {stats.done}, skipped {stats.skipped}, failed {stats.failed}, empty history {stats.empty}")
    print(f"backend {stats.backend}" + (" (heuristic: not LLM summaries)" if stats.backend == "heuristic" else ""))
    for user_id, error in stats.failures[:20]:
        print(f"failed {user_id}: {error}")
    if stats.failed > 20:
        print(f"... and {stats.failed - 20} more failures")
    if args.export:
        print(f"exported {args.export}")
    return 1 if stats.failed else 0
