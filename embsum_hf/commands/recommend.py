"""`embsum recommend`: rank every user of a user store against an item store; top-k lists as JSON Lines."""

from __future__ import annotations

import argparse
import logging

from embsum_hf.commands import add_data_arguments, add_progress_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="top-k items for every user of a user store (exact, or FAISS prefilter + exact re-rank); resumable",
        description="Rank every user of a store written by `embsum encode-users` against a store written by "
        "`embsum encode-items` (same model) and write {user_id, item_ids, scores} JSON Lines, one part per user "
        "shard. A rerun keeps the parts already computed from the same stores and settings (any other setting "
        "recomputes them all); a second run on a folder another one is writing stops with 'folder in use by pid N'.",
    )
    parser.add_argument("--users", required=True, help="user store folder (embsum encode-users)")
    parser.add_argument("--items", required=True, help="item store folder (embsum encode-items)")
    parser.add_argument("--output", required=True, help="folder for part-*.jsonl and recommendations.json")
    parser.add_argument(
        "--top-k", "--k", type=int, default=10, help="items per user (`top_k` of the pipeline and the handler)"
    )
    parser.add_argument("--faiss", action="store_true", help="retrieve candidates with a FAISS IVF index first")
    parser.add_argument("--nprobe", type=int, default=None, help="--faiss: IVF lists visited per user")
    parser.add_argument("--num-candidates", type=int, default=None, help="--faiss: candidates re-ranked per user")
    parser.add_argument(
        "--exclude-history",
        action="store_true",
        help="never recommend an item from the user's history in --data (each user's latest history)",
    )
    add_data_arguments(parser, when="--exclude-history: ", required=False)
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here: building the `embsum` parsers loads no data or serving code
    from embsum_hf.commands import apply_progress, require_positive
    from embsum_hf.serving import EmbeddingStore, FaissPrefilter, recommend_all
    from embsum_hf.utils import job_state

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    require_positive(args, "top_k", "nprobe", "num_candidates")  # 0 is refused, never silently the default
    if args.faiss and args.num_candidates is not None and args.num_candidates < args.top_k:
        raise ValueError(
            f"--num-candidates {args.num_candidates} is smaller than --top-k {args.top_k}: the prefilter would leave "
            f"each user at most {args.num_candidates} items; pass --num-candidates of at least {args.top_k}"
        )
    apply_progress(args.no_progress)
    users = EmbeddingStore.load(args.users, kind="users")
    items = EmbeddingStore.load(args.items, kind="items")
    exclude = None
    if args.exclude_history:
        if args.data is None:
            raise ValueError("--exclude-history needs --data (where the users' histories are)")
        from embsum_hf.commands import load_command_data
        from embsum_hf.data import user_histories

        histories = user_histories(load_command_data(args))
        exclude = {user_id: [item["item_id"] for item in history] for user_id, history in histories}
    prefilter = None
    if args.faiss:
        prefilter = FaissPrefilter.from_store(items, nprobe=args.nprobe, num_candidates=args.num_candidates)
    output = recommend_all(
        users, items, args.output, args.top_k, prefilter=prefilter, exclude=exclude, progress=not args.no_progress
    )
    if job_state().is_main_process:
        method = "FAISS prefilter + exact re-rank" if prefilter else "exact"
        excluded = ", history excluded" if exclude is not None else ""
        print(
            f"wrote the top {written_items(output, args.top_k, len(items))} of {len(users)} users to {output} "
            f"({method}{excluded})"
        )
    return 0


def written_items(output, k: int, catalogue: int) -> str:
    """How many items each user got, as the job's manifest records them (`items_per_user`), and why fewer than k."""
    import json

    from embsum_hf.serving.batch import RESULTS_MANIFEST

    written = json.loads((output / RESULTS_MANIFEST).read_text())["items_per_user"]
    fewest, most = written["min"], written["max"]
    if fewest == most == k:
        return f"{k} items"
    counts = f"{most} items" if fewest == most else f"{fewest} to {most} items"
    why = f"the catalogue holds {catalogue}" if k > catalogue else "exclusions or the prefilter left fewer"
    return f"{counts} (--top-k {k}: {why})"
