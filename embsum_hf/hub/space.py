"""A Gradio Space for a trained EmbSum: `app.py`, `requirements.txt`, a README with the Space metadata, the model (its
folder, or a link to its Hub repo) and the catalogue as a pre-computed item store; and its upload.

Layout of a Space folder::

    README.md            Space metadata (sdk: gradio, app_file: app.py, models: [the model repo]) and a usage note
    app.py               the page (templates/space_app.py): self-contained, loads the model with trust_remote_code
    requirements.txt     what the app imports besides gradio (the Space SDK installs gradio)
    space_config.json    the model (folder or Hub id), catalogue folder, example users, title and input limits
    catalogue/           the item store (EmbeddingStore layout) + items.jsonl, the item texts in store order
    model/               the model's Hub folder (weights, processor, remote code), when it is not a Hub id
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, ModelCard, SpaceCard, SpaceCardData

from ..modeling_embsum import EmbSumModel
from ..processing_embsum import EmbSumProcessor
from ..serving.encode import encode_items
from ..serving.store import MANIFEST_NAME, EmbeddingStore, model_fingerprint
from ..utils import atomic_write_text
from .repo import save_repo

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
APP_TEMPLATE = TEMPLATES / "space_app.py"
REQUIREMENTS_TEMPLATE = TEMPLATES / "space_requirements.txt"
CONFIG_NAME = "space_config.json"
CATALOGUE_DIR = "catalogue"
MODEL_DIR = "model"
ITEMS_NAME = "items.jsonl"
# input limits of the page: history lines, characters per line, largest k
DEFAULT_LIMITS = {"max_history_lines": 100, "max_line_chars": 500, "max_k": 50}
SPACE_FILES = ("README.md", "app.py", "requirements.txt", CONFIG_NAME)
TESTED_GRADIO = "6.31.0"  # the README's sdk_version where gradio is not installed here


def example_users(
    histories: Iterable[tuple[Any, Sequence[Mapping[str, Any]]]],
    title_field: str,
    *,
    count: int = 3,
    length: int = 8,
    min_length: int = 3,
) -> list[dict[str, Any]]:
    """The first `count` users with at least `min_length` history items, as `{"name", "history"}` (the latest
    `length` titles, most recent first): the page's example users."""
    examples = []
    for user_id, history in histories:
        titles = [str(item[title_field]) for item in history[:length] if item.get(title_field)]
        if len(titles) >= min_length:
            # the label counts the lines it fills in (a user's longer history is named as such)
            read = f"{len(titles)} items read"
            if len(history) > len(titles):
                read = f"latest {len(titles)} of {len(history)} items read"
            examples.append({"name": f"User {user_id} ({read})", "history": titles})
        if len(examples) == count:
            break
    return examples


def write_space(
    model: EmbSumModel,
    processor: EmbSumProcessor,
    items: Sequence[Mapping[str, Any]],
    output_dir: str | os.PathLike,
    *,
    model_repo: str | None = None,
    bundle_model: bool = True,
    item_store: str | os.PathLike | None = None,
    examples: Sequence[Mapping[str, Any]] = (),
    title: str = "EmbSum recommender",
    description: str | None = None,
    limits: Mapping[str, int] | None = None,
    batch_size: int = 64,
    dtype: str = "float32",
    progress: bool = True,
) -> Path:
    """
    Write a complete Gradio Space for `model` serving the catalogue `items` into `output_dir`; return the folder.

    Args:
        items: the catalogue, item dicts with `item_id` and the processor template's fields (a `datasets.Dataset`
            works too), in the order the store keeps.
        model_repo: the model's Hub repo, named in the README's `models:` metadata.
        bundle_model: copy the model's Hub folder into `model/` (the Space then runs offline, as `python app.py` does
            locally); with `False` the app loads `model_repo` from the Hub, which `model_repo` must then name.
        item_store: an item store this model already wrote for exactly these items (e.g. `embsum encode-items`);
            it is checked (fingerprint, ids) and copied. Without it the items are encoded here by `encode_items`.
        examples: example users, `{"name", "history": [titles, most recent first]}` (see [`example_users`]).
        limits: input limits of the page (`DEFAULT_LIMITS` keys).
        batch_size, dtype: of the encoding job (`dtype` is the store's storage dtype).

    A folder that holds anything but an earlier Space is refused, so nothing unrelated is overwritten.
    """
    output = Path(output_dir)
    if output.exists() and any(output.iterdir()) and not (output / CONFIG_NAME).is_file():
        raise FileExistsError(f"{output} exists and is not a Space folder written by embsum; choose another --output")
    if not bundle_model and not model_repo:
        raise ValueError("a Space that does not bundle the model needs model_repo, the Hub repo its app loads")
    rows = [dict(item) for item in items]
    ids = [str(item.get("item_id", "")) for item in rows]
    if not rows or not all(ids):
        raise ValueError("the catalogue needs at least one item, each with an item_id")
    for item in rows:
        processor.format_item(item)  # every template field present, else a ValueError naming the item
    output.mkdir(parents=True, exist_ok=True)

    catalogue = output / CATALOGUE_DIR
    fingerprint = model_fingerprint(model)
    if item_store is not None:
        store = EmbeddingStore.load(item_store, expected_fingerprint=fingerprint, kind="items")
        if store.ids != ids:
            raise ValueError(f"{item_store} holds other items than the catalogue given (ids differ); re-encode it")
        if Path(item_store).resolve() != catalogue.resolve():
            shutil.rmtree(catalogue, ignore_errors=True)
            shutil.copytree(item_store, catalogue)
    else:
        encode_items(model, processor, rows, catalogue, batch_size=batch_size, dtype=dtype, progress=progress)
    fields = ["item_id", *processor.item_fields]
    lines = [json.dumps({field: item.get(field) for field in fields}, ensure_ascii=False) for item in rows]
    atomic_write_text(catalogue / ITEMS_NAME, "\n".join(lines) + "\n")

    if bundle_model:
        shutil.rmtree(output / MODEL_DIR, ignore_errors=True)
        card = {"repo_id": model_repo} if model_repo else {}
        save_repo(model, processor, output / MODEL_DIR, card_kwargs=card)
    else:
        shutil.rmtree(output / MODEL_DIR, ignore_errors=True)
    settings = {
        "title": title,
        "description": description or _description(model, len(rows)),
        "model": MODEL_DIR if bundle_model else model_repo,
        "catalogue": CATALOGUE_DIR,
        "fingerprint": fingerprint,
        "examples": [{"name": str(example["name"]), "history": list(example["history"])} for example in examples],
        "limits": {**DEFAULT_LIMITS, **(limits or {})},
    }
    atomic_write_text(output / CONFIG_NAME, json.dumps(settings, indent=2, ensure_ascii=False) + "\n")
    shutil.copyfile(APP_TEMPLATE, output / "app.py")
    shutil.copyfile(REQUIREMENTS_TEMPLATE, output / "requirements.txt")
    # the Space states the model card's facts: its bundled copy's, or the linked local model's
    source = model.config.name_or_path
    card_folder = output / MODEL_DIR if bundle_model else Path(source) if source else None
    readme = card_folder / "README.md" if card_folder is not None else None
    model_card = ModelCard.load(readme) if readme is not None and readme.is_file() else None
    _space_card(title, model_repo, bundle_model, len(rows), model_card).save(output / "README.md")
    logger.info("wrote the Space for %d items to %s", len(rows), output)
    return output


def _description(model: EmbSumModel, num_items: int) -> str:
    config = model.config
    return (
        f"An [EmbSum](https://arxiv.org/abs/2405.11441) recommender ranking a catalogue of {num_items:,} items, each "
        f"stored as {config.num_item_codes} code vectors, against your history's {config.num_user_codes} user codes."
    )


def _space_card(
    title: str, model_repo: str | None, bundle_model: bool, num_items: int, model_card: ModelCard | None
) -> SpaceCard:
    """The Space's README: Space metadata, and the model card's license and datasets (its weights and catalogue carry
    the terms of the model's data; unknown for a Hub model not read here)."""
    facts = model_card.data.to_dict() if model_card is not None else {}
    license = {name: facts.get(name) for name in ("license", "license_name", "license_link") if facts.get(name)}
    data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=_gradio_version(),
        app_file="app.py",
        models=[model_repo] if model_repo else None,
        datasets=facts.get("datasets"),
        **(license or {"license": "unknown"}),
        tags=["recommendation", "embsum"],
        emoji="📰",
        colorFrom="blue",
        colorTo="green",
        pinned=False,
    )
    where = "in `model/` here" if bundle_model else f"from [{model_repo}](https://huggingface.co/{model_repo})"
    card = "`model/README.md`" if bundle_model else "the model's card"
    terms = f"License: {license.get('license', 'unknown')} (the model's, see {card}).\n\n" if license else ""
    body = (
        f"# {title}\n\nPaste a reading history (one item per line, most recent first) or pick an example user: the "
        f"app ranks {num_items:,} catalogue items, writes the interest summary the model reads from your history, "
        "explains a recommendation (which history items and code pairs carried its score), and updates the "
        "ranking when you mark an item as read.\n\n"
        f"The model loads {where} with `trust_remote_code`; the catalogue's embeddings were computed offline "
        "(`catalogue/`, an embsum_hf item store), so start-up encodes nothing. Written by embsum_hf's "
        "`embsum space`. Run it locally:\n\n"
        "```bash\npip install gradio -r requirements.txt\npython app.py   # http://127.0.0.1:7860\n```\n\n"
        f"{terms}"
    )
    return SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def _gradio_version() -> str:
    try:
        return importlib.metadata.version("gradio")
    except importlib.metadata.PackageNotFoundError:
        return TESTED_GRADIO


def check_space_folder(folder: str | os.PathLike) -> Path:
    """`folder` if it holds a Space [`write_space`] wrote, else a `FileNotFoundError` naming what is missing."""
    folder = Path(folder)
    missing = [name for name in (*SPACE_FILES, f"{CATALOGUE_DIR}/{MANIFEST_NAME}") if not (folder / name).is_file()]
    if missing:
        names = ", ".join(missing)
        raise FileNotFoundError(f"{folder} is not a Space folder written by `embsum space` (missing {names})")
    return folder


def push_space(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload EmbSum Space",
    api: HfApi | None = None,
) -> str:
    """Create the Space `repo_id` (Gradio SDK) if needed and upload the folder [`write_space`] wrote; returns the
    commit URL. Pass `api` to use another endpoint."""
    folder = check_space_folder(folder)
    api = api or HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="space", space_sdk="gradio", token=token)
    commit = api.upload_folder(
        repo_id=repo_id, folder_path=folder, commit_message=commit_message, repo_type="space", token=token
    )
    return str(commit)


__all__ = ["check_space_folder", "example_users", "push_space", "write_space"]
