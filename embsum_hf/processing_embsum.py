"""EmbSumProcessor: the one place where item text and summaries become token ids and padded tensors.

Item text -> `<sos>` + template tokens (each item within its own budget); a history (most recent first) -> the latest
`max_history_items` items packed, oldest first, into sessions of at most `session_max_tokens` tokens, each closed by
the end-of-sequence token. Packing from the oldest item keeps every older session unchanged when a new engagement
arrives, so only the newest session has to be re-encoded (incremental user updates).
"""

from __future__ import annotations

import math
import os
import string
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import AutoProcessor, BatchFeature, PreTrainedTokenizerBase, ProcessorMixin
from transformers.dynamic_module_utils import custom_object_save
from transformers.utils import CONFIG_NAME, cached_file

from .configuration_embsum import EmbSumConfig

ITEM_START_TOKEN = "<sos>"
# what `from_pretrained` passes on to the config and tokenizer loads (where the files are, not what they hold)
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")

# One template per domain (EmbSum: title, abstract, category for MIND; name, author, description, genre for books).
ITEM_TEMPLATES = {
    "mind": "News Title: {title}; News Abstract: {abstract}; News Category: {category}",
    "goodreads": "Book Title: {title}; Author: {author}; Description: {description}; Genre: {genre}",
    "movielens": "Movie Title: {title}; Year: {year}; Genres: {genres}",
}

Item = Mapping[str, object]
ItemInput = str | Item  # a plain string is the text of the template's first field


def add_item_start_token(tokenizer: PreTrainedTokenizerBase) -> int:
    """Add the `<sos>` item-start special token to `tokenizer` if it lacks it; return its id."""
    if ITEM_START_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [ITEM_START_TOKEN]})
    return tokenizer.convert_tokens_to_ids(ITEM_START_TOKEN)


class EmbSumProcessor(ProcessorMixin):
    """
    Turns items, histories and summaries into the tensors [`EmbSumModel`] takes, as [`BatchFeature`]s (move one with
    `.to(device)`).

    Args:
        tokenizer: any T5 tokenizer (`<pad>` = pad, `</s>` = end of sequence); `<sos>` is added when missing, and
            its id must equal `config.item_start_token_id`.
        config: the model's [`EmbSumConfig`]; the token budgets and history length come from it.
        item_template: `"mind"`, `"goodreads"`, `"movielens"` or a format string over item fields, e.g.
            `"Product: {name}; Brand: {brand}"`.
        summary_words: the words a generated summary's interest slots may use (`WellFormedSlots`), lower-cased:
            `embsum train` keeps the words of its training summaries (`summary_vocabulary`); None: any word.

    An item is a dict holding the template's fields, or a plain string: the text of the template's *first* field,
    the others empty (as the `embsum-recommendation` pipeline reads it).

    Documented truncation: a history longer than `config.max_history_items` keeps its latest items; an item longer
    than `config.item_max_tokens` keeps its first tokens; a summary keeps its first `summary_max_tokens - 1` tokens.

    Saving writes the tokenizer and `processor_config.json` (the item template and summary words) only; loading reads
    the token budgets from the model's `config.json` next to them (or takes `config=`).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        config: EmbSumConfig,
        item_template: str = "mind",
        summary_words: Sequence[str] | None = None,
    ):
        super().__init__(tokenizer)
        self.config = config
        if summary_words is not None and (
            isinstance(summary_words, str) or not all(isinstance(word, str) for word in summary_words)
        ):
            raise ValueError(f"summary_words must be a list of words (strings), got {str(summary_words)[:60]}")
        self.summary_words = None if summary_words is None else sorted({word.lower() for word in summary_words})
        self.item_template = ITEM_TEMPLATES.get(item_template, item_template)
        self.template_name = item_template if item_template in ITEM_TEMPLATES else "custom"
        self.item_fields = [field for _, field, _, _ in string.Formatter().parse(self.item_template) if field]
        if not self.item_fields:
            raise ValueError(
                f"item_template {item_template!r} is neither a known domain nor a format string with fields"
            )
        self.item_start_token_id = add_item_start_token(tokenizer)
        if self.item_start_token_id != config.item_start_token_id:
            raise ValueError(
                f"the tokenizer's {ITEM_START_TOKEN} id is {self.item_start_token_id} but "
                f"config.item_start_token_id is {config.item_start_token_id}; build the config with "
                "item_start_token_id=add_item_start_token(tokenizer)"
            )
        if len(tokenizer) > config.t5_config.vocab_size:
            raise ValueError(
                f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is "
                f"{config.t5_config.vocab_size}"
            )
        self.pad_token_id = tokenizer.pad_token_id
        self.eos_token_id = tokenizer.eos_token_id

    def __call__(
        self,
        histories: Sequence[Sequence[ItemInput]] | None = None,
        items: Sequence[ItemInput] | None = None,
        summaries: Sequence[str | None] | None = None,
    ) -> BatchFeature:
        """`encode_users(histories, summaries)` and / or `encode_items(items)` in one [`BatchFeature`]."""
        if histories is None and items is None:
            raise ValueError("EmbSumProcessor needs histories=, items= or both")
        batch = self.encode_users(histories, summaries) if histories is not None else BatchFeature()
        if items is not None:
            batch.update(self.encode_items(items))
        return batch

    # ------------------------------------------------------------------------------------------------ items
    def as_item(self, entry: ItemInput, where: str = "item") -> Item:
        """
        An item dict; a string becomes the template's first field with the other fields empty. A template field that
        is not text-like (see [`check_item_value`]) is a `ValueError` naming it (`where.field`).
        """
        if isinstance(entry, str):
            check_item_value(entry, where)
            return {self.item_fields[0]: entry, **{field: None for field in self.item_fields[1:]}}
        if isinstance(entry, Mapping):
            for field in self.item_fields:
                check_item_value(entry.get(field), f"{where}.{field}")
            return entry
        raise ValueError(f"{where} must be an item dict or a string, got {type(entry).__name__}")

    def format_item(self, item: ItemInput) -> str:
        """The item's text under the template; a field the item lacks is an error naming it."""
        item = self.as_item(item)
        missing = [field for field in self.item_fields if field not in item]
        if missing:
            item_id = item.get("item_id", item.get("id", "?"))
            raise ValueError(
                f"item {item_id!r} lacks field(s) {missing} required by the item template {self.item_template!r}"
            )
        return self.item_template.format(
            **{field: "" if item[field] is None else item[field] for field in self.item_fields}
        )

    def tokenize_items(self, items: Sequence[ItemInput]) -> list[list[int]]:
        """Token ids of each item: `<sos>` then its template text, within `item_max_tokens`."""
        if not items:
            return []
        texts = [self.format_item(item) for item in items]
        encoded = self.tokenizer(
            texts,
            add_special_tokens=False,
            split_special_tokens=True,
            truncation=True,
            max_length=self.config.item_max_tokens - 1,
        )["input_ids"]
        return [[self.item_start_token_id, *ids] for ids in encoded]

    def pad_items(self, item_token_ids: Sequence[Sequence[int]]) -> BatchFeature:
        """`item_input_ids` / `item_attention_mask` of shape `(N, Li)`, for [`EmbSumModel.encode_item`]."""
        ids, mask = self._pad_2d(item_token_ids)
        return BatchFeature({"item_input_ids": ids, "item_attention_mask": mask})

    def pad_candidates(self, candidate_token_ids: Sequence[Sequence[Sequence[int]]]) -> BatchFeature:
        """Per-user candidate lists -> `candidate_input_ids` / `candidate_attention_mask` `(B, C, Li)`."""
        ids, mask = self._pad_3d(candidate_token_ids)
        return BatchFeature({"candidate_input_ids": ids, "candidate_attention_mask": mask})

    def encode_items(self, items: Sequence[ItemInput]) -> BatchFeature:
        """Items (dicts or strings) -> `item_input_ids` / `item_attention_mask` `(N, Li)`."""
        return self.pad_items(self.tokenize_items(items))

    # ------------------------------------------------------------------------------------------------ users
    def pack_sessions(self, history_token_ids: Sequence[Sequence[int]]) -> list[list[int]]:
        """
        A history's item token ids (most recent first) -> sessions, oldest first, each at most `session_max_tokens`
        tokens (and `session_max_items` items) and closed by `</s>`. An empty history is one session holding only
        `</s>`.
        """
        kept = list(history_token_ids[: self.config.max_history_items])[::-1]  # latest items, oldest first
        budget = self.config.session_max_tokens - 1  # room for </s>
        max_items = getattr(self.config, "session_max_items", None) or len(kept) or 1
        sessions: list[list[int]] = []
        current: list[int] = []
        count = 0
        for ids in kept:
            ids = list(ids[: self.config.item_max_tokens])
            if current and (len(current) + len(ids) > budget or count == max_items):
                sessions.append(current + [self.eos_token_id])
                current, count = [], 0
            current.extend(ids)
            count += 1
        if current or not sessions:
            sessions.append(current + [self.eos_token_id])
        return sessions

    def session_item_count(self, history_length: int) -> int:
        """How many of a history's items the sessions hold (the UPE has one row per kept item, plus `h_sum`)."""
        return min(history_length, self.config.max_history_items)

    def pad_users(
        self, user_sessions: Sequence[Sequence[Sequence[int]]], summaries: Sequence[str | None] | None = None
    ) -> BatchFeature:
        """Packed sessions of B users -> `session_input_ids` / `session_attention_mask` `(B, G, L)` (+ labels)."""
        ids, mask = self._pad_3d(user_sessions)
        batch = BatchFeature({"session_input_ids": ids, "session_attention_mask": mask})
        if summaries is not None:
            batch["summary_labels"] = self.encode_summaries(summaries)
        return batch

    def encode_users(
        self, histories: Sequence[Sequence[ItemInput]], summaries: Sequence[str | None] | None = None
    ) -> BatchFeature:
        """Histories (lists of items, most recent first) -> the user-side tensors of [`EmbSumModel.encode_user`]."""
        sessions = [
            self.pack_sessions(self.tokenize_items(history[: self.config.max_history_items])) for history in histories
        ]
        return self.pad_users(sessions, summaries)

    # ------------------------------------------------------------------------------------------------ summaries
    def encode_summaries(self, summaries: Sequence[str | None]) -> torch.Tensor:
        """Teacher summaries -> `summary_labels` `(B, T)` ending in `</s>`, -100 padded; a missing one is all -100."""
        texts = [text or "" for text in summaries]
        encoded = self.tokenizer(
            texts, add_special_tokens=False, truncation=True, max_length=self.config.summary_max_tokens - 1
        )["input_ids"]
        rows = [ids + [self.eos_token_id] if text else [] for ids, text in zip(encoded, texts)]
        width = max([len(row) for row in rows] + [1])
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            labels[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return labels

    def decode_summaries(self, token_ids: torch.Tensor | Sequence[Sequence[int]]) -> list[str]:
        if isinstance(token_ids, torch.Tensor):
            token_ids = token_ids.masked_fill(token_ids < 0, self.pad_token_id).tolist()
        return [text.strip() for text in self.tokenizer.batch_decode(token_ids, skip_special_tokens=True)]

    def token_classes(self) -> torch.LongTensor:
        """
        `(len(tokenizer),)` a class per token id for [`HistoryTokenBoost`]: tokens spelling the same word in any
        letter case (word-start marker aside) share a class; special tokens, tokens without a letter or digit and the
        words of the item template itself ("Title", "Genres", ...: every item has them) get -1 (they never gain).
        Computed once per tokenizer size.
        """
        size = len(self.tokenizer)
        cached = getattr(self, "_token_classes", None)
        if cached is not None and len(cached) == size:
            return cached
        literal = " ".join(text for text, _, _, _ in string.Formatter().parse(self.item_template) if text)
        template_words = {"".join(c for c in word if c.isalnum()) for word in literal.lower().split()}
        # the template's words and the pieces the tokenizer cuts them into ("Gen" + "res")
        special = set(self.tokenizer.all_special_ids) | set(
            self.tokenizer(literal, add_special_tokens=False)["input_ids"]
        )
        keys: dict[str, int] = {}
        classes = []
        for token_id, token in enumerate(self.tokenizer.convert_ids_to_tokens(list(range(size)))):
            word = (token or "").replace("\u2581", "").replace("\u0120", "").lower()
            if token_id in special or word in template_words or not any(character.isalnum() for character in word):
                classes.append(-1)
            else:
                classes.append(keys.setdefault(word, len(keys)))
        self._token_classes = torch.tensor(classes, dtype=torch.long)
        return self._token_classes

    # ------------------------------------------------------------------------------------------------ padding
    def _pad_2d(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max([len(row) for row in rows] + [1])
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return ids, mask

    def _pad_3d(self, groups: Sequence[Sequence[Sequence[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = max([len(group) for group in groups] + [1])
        width = max([len(row) for group in groups for row in group] + [1])
        ids = torch.full((len(groups), rows, width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(groups), rows, width), dtype=torch.long)
        for i, group in enumerate(groups):
            for j, row in enumerate(group):
                ids[i, j, : len(row)] = torch.tensor(row, dtype=torch.long)
                mask[i, j, : len(row)] = 1
        return ids, mask

    # ------------------------------------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        # the config is the model's (its config.json), not the processor's: processor_config.json holds the template;
        # the caches of `token_classes` and `WellFormedSlots.for_processor` are not deep-copied only to be dropped
        cached = [key for key in ("_token_classes", "_well_formed_slots") if key in self.__dict__]
        caches = {key: self.__dict__.pop(key) for key in cached}
        try:
            output = super().to_dict()
        finally:
            self.__dict__.update(caches)
        output.pop("config", None)
        return output

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs) -> list[str]:
        """
        As `ProcessorMixin.save_pretrained`, except that the processor's `auto_map` (AutoProcessor -> this class) goes
        to `processor_config.json` only: the base class also writes it into the tokenizer's `tokenizer_config.json`,
        which describes a plain T5 tokenizer that `AutoTokenizer` loads without any code of ours.
        """
        os.makedirs(save_directory, exist_ok=True)
        custom_object_save(self, save_directory, config=self)  # this file (and its imports) and `self.auto_map`
        self._auto_class = None  # for this call: the base class skips copying `auto_map` into the tokenizer's
        try:
            return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        finally:
            del self._auto_class  # the class attribute (`register_for_auto_class`) again

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, config: EmbSumConfig | None = None, **kwargs
    ) -> EmbSumProcessor:
        """
        Load from a folder or Hub repo holding the processor's files and the model's `config.json` (or pass `config`).
        """
        hub_kwargs = {name: kwargs[name] for name in HUB_KWARGS if name in kwargs}
        if config is None:
            # a missing config.json would silently give the default budgets
            if (
                cached_file(
                    pretrained_model_name_or_path,
                    CONFIG_NAME,
                    _raise_exceptions_for_missing_entries=False,
                    **hub_kwargs,
                )
                is None
            ):
                raise OSError(
                    f"{pretrained_model_name_or_path} has no {CONFIG_NAME}: the processor reads its token budgets "
                    "from the model's config; save the model there too or pass config="
                )
            config = EmbSumConfig.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        # passing the config keeps AutoTokenizer from resolving the folder's remote-code config (and prompting)
        return super().from_pretrained(pretrained_model_name_or_path, config=config, **kwargs)


# saved processors carry `auto_map` and this file, so AutoProcessor loads them with trust_remote_code; in the package
# (not in a repo's copy loaded as remote code) AutoProcessor maps the "embsum" config to this class
EmbSumProcessor.register_for_auto_class("AutoProcessor")
if __name__.startswith("embsum_hf."):
    AutoProcessor.register(EmbSumConfig, EmbSumProcessor, exist_ok=True)

__all__ = ["EmbSumProcessor", "ITEM_TEMPLATES", "ITEM_START_TOKEN", "add_item_start_token"]


# ------------------------------------------------------------------------------------------------ item values
# The one rule for the values of an item's fields: `EmbSumProcessor.as_item` applies it to the template fields (the
# pipeline's input) and the endpoint handler (handler.py, which loads this file with the model) to every field of a
# request's items, so the pipeline and the endpoint refuse the same values with the same message.
MAX_SAFE_INTEGER = 2**53  # larger JSON integers lose precision in most clients (and 5,000 digits cannot be printed)
JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    type(None): "null",
}


def json_type_name(value: Any) -> str:
    """The JSON name of a value's type (`array` for a list, `null` for None), else the Python type's name."""
    return JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def check_item_value(value: Any, where: str, *, metadata: bool = False) -> None:
    """
    An item field becomes text: a string of valid Unicode (no lone surrogate), a finite number within +-2**53, or
    null (None); a `metadata` field (not in the template, e.g. `item_id`: echoed back, never read) may also be a
    boolean. Anything else is a `ValueError` naming `where`, e.g. `candidates[3].title must be a string, number or
    null, got array`, so no input reaches the tokenizer (or a JSON answer) as a crash.
    """
    if not isinstance(value, (str, int, float, type(None))) or (isinstance(value, bool) and not metadata):
        kinds = "a string, number, boolean or null" if metadata else "a string, number or null"
        raise ValueError(f"{where} must be {kinds}, got {json_type_name(value)}")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"{where} is not valid Unicode ({error.reason} at character {error.start})") from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value}")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        raise ValueError(f"{where} is an integer beyond +-2**53")


__all__ += ["MAX_SAFE_INTEGER", "check_item_value", "json_type_name"]
