"""EmbSumProcessor: the one place where item text and summaries become token ids and padded tensors.

Item text -> `<sos>` + template tokens (each item within its own budget); a history (most recent first) -> the latest
`max_history_items` items packed, oldest first, into sessions of at most `session_max_tokens` tokens, each closed by
the end-of-sequence token. Packing from the oldest item keeps every older session unchanged when a new engagement
arrives, so only the newest session has to be re-encoded (incremental user updates).
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase, T5Tokenizer
from transformers.utils import cached_file

from .configuration_embsum import EmbSumConfig

ITEM_START_TOKEN = "<sos>"
PROCESSOR_CONFIG_NAME = "processor_config.json"

# One template per domain (EmbSum: title, abstract, category for MIND; name, author, description, genre for books).
ITEM_TEMPLATES = {
    "mind": "News Title: {title}; News Abstract: {abstract}; News Category: {category}",
    "goodreads": "Book Title: {title}; Author: {author}; Description: {description}; Genre: {genre}",
    "movielens": "Movie Title: {title}; Year: {year}; Genres: {genres}",
}

Item = Mapping[str, object]


def add_item_start_token(tokenizer: PreTrainedTokenizerBase) -> int:
    """Add the `<sos>` item-start special token to `tokenizer` if it lacks it; return its id."""
    if ITEM_START_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [ITEM_START_TOKEN]})
    return tokenizer.convert_tokens_to_ids(ITEM_START_TOKEN)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8000) -> T5Tokenizer:
    """
    Train a T5-style tokenizer (Unigram, `<pad>`=0, `</s>`=1, `<unk>`=2, Metaspace pre-tokenisation) on `texts` with
    the `tokenizers` library, for offline and custom domains; `<sos>` is added. The vocabulary can come out smaller
    than `vocab_size` on a small corpus. The same texts give the same tokenizer in every process (see below).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    backend.train_from_iterator(texts, trainer=trainer)
    vocab = [tuple(entry) for entry in json.loads(backend.to_str())["model"]["vocab"]]
    # The Rust trainer walks hash maps in a per-process random order, so its output differs between processes in
    # three ways, all made canonical here: (1) float sums in another order move scores in the last bits (~1e-14):
    # scores are rounded to 1e-6; (2) equal scores come in hash order: pieces are sorted by (score, piece); (3) the
    # characters the model dropped are re-added at `min_score + k * 1e-4`, k in hash order: they get their k in
    # character order.
    specials, pieces = vocab[:3], vocab[3:]
    low = min((score for _, score in pieces), default=0.0)
    readded = {
        i for i, (piece, score) in enumerate(pieces)
        if len(piece) == 1 and abs((score - low) * 1e4 - round((score - low) * 1e4)) < 1e-6
    }
    readded_pieces = zip(sorted(pieces[i][0] for i in readded), sorted(pieces[i][1] for i in readded))
    pieces = [entry for i, entry in enumerate(pieces) if i not in readded] + list(readded_pieces)
    pieces = sorted(((piece, round(score, 6)) for piece, score in pieces), key=lambda entry: (-entry[1], entry[0]))
    tokenizer = T5Tokenizer(vocab=specials + pieces, extra_ids=0)
    add_item_start_token(tokenizer)
    return tokenizer


class EmbSumProcessor:
    """
    Turns items, histories and summaries into the tensors [`EmbSumModel`] takes.

    Args:
        tokenizer: any T5 tokenizer (`<pad>` = pad, `</s>` = end of sequence); `<sos>` is added when missing, and
            its id must equal `config.item_start_token_id`.
        config: the model's [`EmbSumConfig`]; the token budgets and history length come from it.
        item_template: `"mind"`, `"goodreads"`, `"movielens"` or a format string over item fields, e.g.
            `"Product: {name}; Brand: {brand}"`.

    Documented truncation: a history longer than `config.max_history_items` keeps its latest items; an item longer
    than `config.item_max_tokens` keeps its first tokens; a summary keeps its first `summary_max_tokens - 1` tokens.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, config: EmbSumConfig, item_template: str = "mind"):
        self.tokenizer = tokenizer
        self.config = config
        self.item_template = ITEM_TEMPLATES.get(item_template, item_template)
        self.template_name = item_template if item_template in ITEM_TEMPLATES else "custom"
        self.item_fields = [field for _, field, _, _ in string.Formatter().parse(self.item_template) if field]
        if not self.item_fields:
            raise ValueError(f"item_template {item_template!r} is neither a known domain nor a format string with fields")
        self.item_start_token_id = add_item_start_token(tokenizer)
        if self.item_start_token_id != config.item_start_token_id:
            raise ValueError(
                f"the tokenizer's {ITEM_START_TOKEN} id is {self.item_start_token_id} but config.item_start_token_id is "
                f"{config.item_start_token_id}; build the config with item_start_token_id=add_item_start_token(tokenizer)"
            )
        if len(tokenizer) > config.t5_config.vocab_size:
            raise ValueError(
                f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.t5_config.vocab_size}"
            )
        self.pad_token_id = tokenizer.pad_token_id
        self.eos_token_id = tokenizer.eos_token_id

    # ------------------------------------------------------------------------------------------------ items
    def format_item(self, item: Item) -> str:
        """The item's text under the template; a field the item lacks is an error naming it."""
        missing = [field for field in self.item_fields if field not in item]
        if missing:
            item_id = item.get("item_id", item.get("id", "?"))
            raise ValueError(
                f"item {item_id!r} lacks field(s) {missing} required by the item template {self.item_template!r}"
            )
        return self.item_template.format(**{field: "" if item[field] is None else item[field] for field in self.item_fields})

    def tokenize_items(self, items: Sequence[Item]) -> list[list[int]]:
        """Token ids of each item: `<sos>` then its template text, within `item_max_tokens`."""
        if not items:
            return []
        texts = [self.format_item(item) for item in items]
        encoded = self.tokenizer(
            texts, add_special_tokens=False, split_special_tokens=True, truncation=True, max_length=self.config.item_max_tokens - 1
        )["input_ids"]
        return [[self.item_start_token_id, *ids] for ids in encoded]

    def pad_items(self, item_token_ids: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """`item_input_ids` / `item_attention_mask` of shape `(N, Li)`, for [`EmbSumModel.encode_item`]."""
        ids, mask = self._pad_2d(item_token_ids)
        return {"item_input_ids": ids, "item_attention_mask": mask}

    def pad_candidates(self, candidate_token_ids: Sequence[Sequence[Sequence[int]]]) -> dict[str, torch.Tensor]:
        """Per-user candidate lists -> `candidate_input_ids` / `candidate_attention_mask` `(B, C, Li)`."""
        ids, mask = self._pad_3d(candidate_token_ids)
        return {"candidate_input_ids": ids, "candidate_attention_mask": mask}

    def encode_items(self, items: Sequence[Item]) -> dict[str, torch.Tensor]:
        return self.pad_items(self.tokenize_items(items))

    # ------------------------------------------------------------------------------------------------ users
    def pack_sessions(self, history_token_ids: Sequence[Sequence[int]]) -> list[list[int]]:
        """
        A history's item token ids (most recent first) -> sessions, oldest first, each at most `session_max_tokens`
        tokens and closed by `</s>`. An empty history is one session holding only `</s>`.
        """
        kept = list(history_token_ids[: self.config.max_history_items])[::-1]  # latest items, oldest first
        budget = self.config.session_max_tokens - 1  # room for </s>
        sessions: list[list[int]] = []
        current: list[int] = []
        for ids in kept:
            ids = list(ids[: self.config.item_max_tokens])
            if current and len(current) + len(ids) > budget:
                sessions.append(current + [self.eos_token_id])
                current = []
            current.extend(ids)
        if current or not sessions:
            sessions.append(current + [self.eos_token_id])
        return sessions

    def session_item_count(self, history_length: int) -> int:
        """How many of a history's items the sessions hold (the UPE has one row per kept item, plus `h_sum`)."""
        return min(history_length, self.config.max_history_items)

    def pad_users(
        self, user_sessions: Sequence[Sequence[Sequence[int]]], summaries: Sequence[str | None] | None = None
    ) -> dict[str, torch.Tensor]:
        """Packed sessions of B users -> `session_input_ids` / `session_attention_mask` `(B, G, L)` (+ labels)."""
        ids, mask = self._pad_3d(user_sessions)
        batch = {"session_input_ids": ids, "session_attention_mask": mask}
        if summaries is not None:
            batch["summary_labels"] = self.encode_summaries(summaries)
        return batch

    def encode_users(
        self, histories: Sequence[Sequence[Item]], summaries: Sequence[str | None] | None = None
    ) -> dict[str, torch.Tensor]:
        """Histories (lists of item dicts, most recent first) -> the user-side tensors of [`EmbSumModel.encode_user`]."""
        sessions = [self.pack_sessions(self.tokenize_items(history[: self.config.max_history_items])) for history in histories]
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
    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Write the tokenizer files and `processor_config.json` (the config travels with the model's `config.json`)."""
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(save_directory)
        self.config.save_pretrained(save_directory)
        payload = {"processor_class": type(self).__name__, "item_template": self.item_template}
        (save_directory / PROCESSOR_CONFIG_NAME).write_text(json.dumps(payload, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> EmbSumProcessor:
        """Load from a folder or Hub id written by `save_pretrained` (or by `EmbSumModel.save_pretrained` + this)."""
        path = str(pretrained_model_name_or_path)
        config = EmbSumConfig.from_pretrained(path, **kwargs)
        # passing the config keeps AutoTokenizer from resolving the folder's remote-code config (and prompting)
        tokenizer = AutoTokenizer.from_pretrained(path, config=config, **kwargs)
        with open(cached_file(path, PROCESSOR_CONFIG_NAME, **kwargs)) as handle:
            payload = json.load(handle)
        return cls(tokenizer, config, item_template=payload["item_template"])


__all__ = ["EmbSumProcessor", "ITEM_TEMPLATES", "ITEM_START_TOKEN", "add_item_start_token", "train_tokenizer"]
