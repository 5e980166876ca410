"""`embsum space`: write a Gradio Space (app.py, requirements.txt, README with Space metadata, the catalogue as an item
store) for a trained model; `embsum push --space REPO --folder DIR` uploads it."""

from __future__ import annotations

import argparse

from embsum_hf.commands import DATA_HELP, add_progress_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "space",
        help="write a Gradio Space (try the model in a browser) serving a catalogue from a pre-computed item store",
        description="Write a complete Gradio Space repo: app.py, requirements.txt, a README with the Space metadata, "
        "the model (bundled, or linked by its Hub id) and the catalogue encoded offline. Run it with `python "
        "DIR/app.py`; upload it with `embsum push --space REPO --folder DIR`.",
    )
    parser.add_argument("--model", required=True, help="trained model folder or Hub id")
    parser.add_argument(
        "--items",
        required=True,
        help="the catalogue: an items file (.jsonl/.csv/.parquet with item_id and the item template's fields), "
        "a data folder (" + DATA_HELP + "), or an item store of this model (embsum encode-items; then --data gives "
        "the item texts)",
    )
    parser.add_argument("--data", default=None, help="with an item store as --items: the data it was encoded from")
    parser.add_argument("--split", default=None, help="train/dev/test when the data holds several splits")
    parser.add_argument("--output", required=True, help="the Space folder to write")
    parser.add_argument(
        "--model-repo", default=None, help="the model's Hub repo, for the README's `models:` (default: Hub id --model)"
    )
    parser.add_argument(
        "--link-model",
        action="store_true",
        help="load a local --model from --model-repo on the Hub instead of bundling it (a Hub id --model is linked)",
    )
    parser.add_argument("--title", default="EmbSum recommender", help="the page's and the Space's title")
    parser.add_argument("--examples", type=int, default=3, help="example users taken from the data (0: none)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"), help="storage dtype")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from embsum_hf.commands import apply_progress, load_model_and_processor
    from embsum_hf.hub.space import example_users, write_space

    apply_progress(args.no_progress)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    model, processor = load_model_and_processor(args.model)
    local_model = Path(args.model).expanduser().exists()
    model_repo = args.model_repo or (None if local_model else args.model)
    items_path = Path(args.items)
    store = items_path if (items_path / "store.json").is_file() else None
    if store is not None and args.data is None:
        raise ValueError(f"--items {args.items} is an item store: give --data, the data whose items it holds")
    items, histories = _catalogue(args.data if store is not None else args.items, args.split, processor)
    examples = example_users(histories, processor.item_fields[0], count=args.examples) if histories else []
    if not examples and args.examples:  # no users in the data: a few catalogue items as one example history
        titles = [str(item[processor.item_fields[0]]) for item in items[:5]]
        examples = [{"name": "A few catalogue items", "history": titles}]
    folder = write_space(
        model,
        processor,
        items,
        args.output,
        model_repo=model_repo,
        bundle_model=local_model and not args.link_model,
        item_store=store,
        examples=examples,
        title=args.title,
        batch_size=args.batch_size,
        dtype=args.dtype,
        progress=not args.no_progress,
    )
    print(f"wrote the Space ({len(items)} items, {len(examples)} example users) to {folder}")
    print(f"start it: python {folder / 'app.py'}")
    return 0


def _catalogue(source: str, split: str | None, processor) -> tuple[list[dict], list | None]:
    """Items (and user histories, for example users) from a data folder, else from an items file."""
    from pathlib import Path

    from embsum_hf.data import iter_records, load_data, require_columns, user_histories

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    if path.is_dir():
        data = load_data(path, split)
        return data.items.to_list(), list(user_histories(data))
    items = []
    for number, record, name in iter_records(path):
        require_columns(record, ["item_id", *processor.item_fields], name, number)
        items.append({**record, "item_id": str(record["item_id"])})
    return items, None
