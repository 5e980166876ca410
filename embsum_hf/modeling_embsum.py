"""EmbSum model: T5 session encoder, fusion-in-decoder summariser and poly-attention user/item embeddings.

Hub-facing file: it is copied next to saved weights for `trust_remote_code`, so it imports only torch, transformers
and the configuration file. Equations follow EmbSum (Zhang et al., RecSys 2024) and SPAR (arXiv 2402.10555).

Shapes: B users, G sessions per user, L tokens per session, N items (or C candidates per user), Li tokens per item,
n history items per user, K user codes, M item codes, d = d_model, T summary tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, LogitsProcessor, LogitsProcessorList, PreTrainedModel, T5ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from .configuration_embsum import SLOT_STOPWORDS, EmbSumConfig

# `EmbSumModel.encode_rows` encodes a batch's rows in up to this many groups of similar length (each of at least
# `ENCODE_GROUP_MIN_ROWS` rows), each at its own width: fewer padded positions, no value changes (so no config field;
# `benchmarks/train_throughput.py --ragged` times it against one group)
ENCODE_LENGTH_GROUPS = 4
ENCODE_GROUP_MIN_ROWS = 32


@dataclass
class EmbSumUserOutput(ModelOutput):
    """
    User side of EmbSum.

    Args:
        user_embeddings (`torch.FloatTensor` of shape `(B, K, d)`): the User Poly-Embedding (UPE).
        summary_state (`torch.FloatTensor` of shape `(B, d)`): `h_sum`, the decoder state at the summary's end.
        item_states (`(B, n, d)`, with `output_details`): encoder states at each history item's `<sos>` token, in
            session order (the processor's packing order).
        item_mask (`(B, n)` bool, with `output_details`): which rows of `item_states` are real items.
        session_states (`(B, G, L, d)`, with `output_details`): per-session encoder states (incremental updates).
        attention_weights (`(B, K, n + 1)`, with `output_details`): poly-attention weights of each user code over the
            history items and, last, `h_sum`.
        summary_ids (`(B, T)`, with `output_details`): the decoder inputs `h_sum` was read from (start token first).
    """

    user_embeddings: torch.FloatTensor | None = None
    summary_state: torch.FloatTensor | None = None
    item_states: torch.FloatTensor | None = None
    item_mask: torch.BoolTensor | None = None
    session_states: torch.FloatTensor | None = None
    attention_weights: torch.FloatTensor | None = None
    summary_ids: torch.LongTensor | None = None


@dataclass
class EmbSumOutput(ModelOutput):
    """
    Output of [`EmbSumModel.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`): `ctr_loss + summary_loss_weight * summary_loss`.
        ctr_loss (`()`): NCE loss: `-log softmax` of each click against its user's negatives, averaged over each
            user's clicks, then over the users.
        summary_loss (`()`, when summary labels are given): token-mean NLL of the teacher summaries.
        logits (`(B, C)`): relevance scores of every candidate; padded candidates are `-inf`.
        user_embeddings (`(B, K, d)`), item_embeddings (`(B, C, M, d)`): the two poly-embeddings scored.
    """

    loss: torch.FloatTensor | None = None
    ctr_loss: torch.FloatTensor | None = None
    summary_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    user_embeddings: torch.FloatTensor | None = None
    item_embeddings: torch.FloatTensor | None = None


class PolyAttention(nn.Module):
    """
    `K` learned codes attend over a set of states: `alpha_a = softmax(c_a . tanh(Z W)^T)`, `e_a = alpha_a Z`.

    Masked rows get `-inf` before the softmax (not a small constant, which leaks weight onto padding). A set with no
    row at all yields zeros and zero weights rather than NaN.
    """

    def __init__(self, num_codes: int, hidden_size: int, projection_size: int):
        super().__init__()
        self.codes = nn.Parameter(torch.empty(num_codes, projection_size))
        self.projection = nn.Linear(hidden_size, projection_size, bias=False)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # states (B, n, d), mask (B, n) bool -> embeddings (B, K, d), weights (B, K, n)
        keys = torch.tanh(self.projection(states))  # (B, n, p)
        logits = torch.einsum("kp,bnp->bkn", self.codes.to(keys.dtype), keys)
        logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
        empty = ~mask.any(dim=-1)  # (B,)
        if empty.any():  # a fully masked row would softmax to NaN
            logits = logits.masked_fill(empty[:, None, None], 0.0)
        weights = torch.softmax(logits.float(), dim=-1).to(states.dtype)
        weights = weights.masked_fill(empty[:, None, None], 0.0)
        return torch.bmm(weights, states), weights


def gather_to_front(states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The masked-in positions of each row, moved to the front in their order: `(B, n, d), (B, n) -> (B, n', d), (B,
    n')` with `n'` the most positions any row keeps; the returned mask marks them.
    """
    mask = mask.bool()
    counts = mask.sum(-1)  # (B,)
    n = int(counts.max()) if counts.numel() else 0
    order = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True)[:, :n]  # (B, n')
    gathered = torch.gather(states, 1, order[..., None].expand(-1, -1, states.shape[-1]))
    return gathered, torch.arange(n, device=counts.device)[None, :] < counts[:, None]


class ItemPrior(nn.Embedding):
    """The optional per-item bias (`EmbSumConfig.item_prior_ids`): row 0 is every item without one and stays 0."""


class SessionPositions(nn.Module):
    """
    Where each session stands in the history, for the summary decoder (`EmbSumConfig.summary_session_positions`): a
    learned `(max_sessions, d)` embedding per session index, oldest first, added to every token state of that session.
    Sessions past `max_sessions` share its last row. Zero at initialisation.
    """

    def __init__(self, max_sessions: int, hidden_size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(max_sessions, hidden_size))

    def forward(self, session_states: torch.Tensor) -> torch.Tensor:
        """`(B, G, L, d)` session states -> the same plus their session's row."""
        index = torch.arange(session_states.shape[1], device=session_states.device).clamp(max=len(self.weight) - 1)
        return session_states + self.weight[index][None, :, None, :].to(session_states.dtype)


def poly_relevance(
    user_embeddings: torch.Tensor, item_embeddings: torch.Tensor, item_keys: torch.Tensor
) -> torch.Tensor:
    """
    SPAR's score (eqs. 5-6, kept by EmbSum): `S = flatten(UPE CPE^T)`, `w = softmax(flatten(UPE keys^T))`,
    `score = w . S`, where `keys = gelu(CPE W_s)` depends on the item alone (so stores can keep it).

    Args:
        user_embeddings: `(B, K, d)`.
        item_embeddings, item_keys: `(N, M, d)` shared by all users -> scores `(B, N)`; or `(B, C, M, d)`, each user
            with its own candidates -> scores `(B, C)`.
    """
    if user_embeddings.dim() != 3:
        raise ValueError(f"user_embeddings must have shape (B, K, d), got {tuple(user_embeddings.shape)}")
    if item_embeddings.shape != item_keys.shape:
        raise ValueError(
            f"item_keys {tuple(item_keys.shape)} must match item_embeddings {tuple(item_embeddings.shape)}"
        )
    d = user_embeddings.shape[-1]
    if item_embeddings.shape[-1] != d:
        raise ValueError(f"item_embeddings have width {item_embeddings.shape[-1]}, user_embeddings {d}")
    if item_embeddings.dim() == 3:
        pattern = "bkd,nmd->bnkm"
    elif item_embeddings.dim() == 4:
        if item_embeddings.shape[0] != user_embeddings.shape[0]:
            raise ValueError(
                f"per-user candidates (B, C, M, d) need B = {user_embeddings.shape[0]} users, "
                f"got {item_embeddings.shape[0]}"
            )
        pattern = "bkd,bnmd->bnkm"
    else:
        raise ValueError(f"item_embeddings must be (N, M, d) or (B, C, M, d), got {tuple(item_embeddings.shape)}")
    similarity = torch.einsum(pattern, user_embeddings, item_embeddings).flatten(2)  # (B, N, K*M)
    weights = torch.softmax(torch.einsum(pattern, user_embeddings, item_keys).flatten(2).float(), dim=-1)
    return (weights * similarity.float()).sum(-1)  # (B, N)


class HistoryTokenBoost(LogitsProcessor):
    """
    A soft copy mechanism: adds `strength * count / max_count` to the next-token log-probabilities of every token
    that occurs in the user's history (its session tokens), `count` the times its word occurs there and `max_count`
    that of the user's most frequent word, so the summary names what this user read most rather than what everybody
    reads. A word the summary has already written gains no more (coverage: each interest is named once). Only tokens
    the decoder itself finds plausible gain: probability at least `plausibility` times the most
    likely token's (the adaptive plausibility constraint of contrastive decoding, Li et al. 2023), so the template the
    decoder is sure of stays intact and the boost chooses among the words it hesitates between.

    Args:
        history_ids: `(B, N)` token ids of each user's history; positions where `history_mask` is 0 are ignored.
        history_mask: `(B, N)`.
        strength: added log-probability (0 changes nothing).
        token_classes: `(V',)` a class per token id (e.g. [`EmbSumProcessor.token_classes`]: the token's lower-cased
            word): a token gains when any token of its class occurs in the history; -1 marks tokens that never gain
            (special tokens, punctuation). Tokens without an entry are their own class. Default: each token alone.
        excluded: token ids that never gain (padding, `</s>`, `<unk>`, `<sos>`).
        plausibility: in [0, 1]; 0 lets every token of the history gain.
    """

    def __init__(
        self,
        history_ids: torch.LongTensor,
        history_mask: torch.Tensor,
        strength: float,
        token_classes: torch.LongTensor | None = None,
        excluded: tuple[int, ...] = (),
        plausibility: float = 0.0,
    ):
        if not 0 <= plausibility <= 1:
            raise ValueError(f"plausibility must be in [0, 1], got {plausibility}")
        self.history_ids, self.history_mask = history_ids, history_mask.bool()
        self.strength, self.token_classes, self.excluded = float(strength), token_classes, tuple(excluded)
        self.log_plausibility = float(torch.tensor(float(plausibility)).log())  # -inf for 0
        self._boost: tuple | None = None  # (class weights (B, classes + 1), classes (V,)), built at the first step

    def _classes(self, vocab_size: int, device: torch.device) -> torch.LongTensor:
        own = torch.arange(vocab_size, device=device)
        if self.token_classes is None:
            classes = own
        else:
            known = self.token_classes.to(device)[:vocab_size]
            offset = int(known.max().clamp(min=-1)) + 1  # tokens without an entry: classes after the known ones
            classes = torch.cat([known, own[len(known) :] + offset])
        if self.excluded:
            classes = classes.clone()
            classes[[i for i in self.excluded if 0 <= i < vocab_size]] = -1
        return classes

    def _build(self, vocab_size: int, device: torch.device) -> tuple[torch.Tensor, torch.LongTensor]:
        classes = self._classes(vocab_size, device)
        ids = self.history_ids.to(device).clamp(0, vocab_size - 1)
        history_classes = classes[ids].masked_fill(~self.history_mask.to(device), -1)  # (B, N)
        width = int(classes.max()) + 2  # slot 0: "never gains" (-1)
        counts = torch.zeros(len(ids), width, device=device)
        counts.scatter_add_(1, history_classes + 1, torch.ones_like(history_classes, dtype=counts.dtype))
        counts[:, 0] = 0
        weights = counts / counts.amax(1, keepdim=True).clamp(min=1)  # (B, classes + 1) in [0, 1]
        return weights, classes

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._boost is None:
            self._boost = self._build(scores.shape[-1], scores.device)
        weights, classes = self._boost
        if scores.shape[0] != weights.shape[0]:  # beam search: every beam of a user gets the user's rows
            weights = weights.repeat_interleave(scores.shape[0] // weights.shape[0], dim=0)
        # coverage: a word the summary has already written gains no more (each interest is named once)
        written = classes[input_ids.clamp(0, len(classes) - 1)] + 1  # (B', T) class slots of the tokens so far
        weights = weights.scatter(1, written, 0.0)
        boost = weights[:, classes + 1]  # (B', V)
        log_probs = scores.float().log_softmax(-1)
        plausible = log_probs >= log_probs.amax(-1, keepdim=True) + self.log_plausibility
        return (log_probs + self.strength * boost.to(log_probs.dtype) * plausible).to(scores.dtype)


class SummaryCopy(nn.Module):
    """
    The summary decoder's copy mechanism (pointer-generator, See et al. 2017; `EmbSumConfig.summary_copy`): at each
    step a copy attention of the decoder state over the memory tokens (the session tokens the decoder reads) gives a
    context `c_t` and a distribution over the memory; `p_gen = sigmoid(w . [s_t; c_t; x_t] + b)` from the decoder
    state `s_t`, the context and the decoder input's embedding `x_t` mixes `p_gen * softmax(vocabulary logits)` with
    `(1 - p_gen) *` the copy attention scattered onto the memory tokens' ids. Tokens that are no words (padding,
    `</s>`, `<sos>`) are left out of the memory by the caller; a user with no copyable token gets `p_gen = 1`.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.query = nn.Linear(hidden_size, hidden_size, bias=False)
        self.gate = nn.Linear(3 * hidden_size, 1)

    def forward(
        self,
        states: torch.Tensor,
        inputs: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        memory_ids: torch.LongTensor,
        vocab_logits: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # states, inputs (B, T, d); memory (B, S, d), memory_mask (B, S) bool (copyable), memory_ids (B, S);
        # vocab_logits (B, T, V) -> final distribution (B, T, V) (float32, rows sum to 1), p_gen (B, T)
        scores = torch.einsum("btd,bsd->bts", self.query(states), memory.to(states.dtype)) * states.shape[-1] ** -0.5
        scores = scores.float().masked_fill(~memory_mask[:, None, :], float("-inf"))
        empty = ~memory_mask.any(-1)  # (B,)
        if empty.any():  # a fully masked row would softmax to NaN
            scores = scores.masked_fill(empty[:, None, None], 0.0)
        attention = torch.softmax(scores, dim=-1).masked_fill(empty[:, None, None], 0.0)  # (B, T, S)
        context = torch.bmm(attention.to(memory.dtype), memory)  # (B, T, d)
        features = torch.cat([states, context.to(states.dtype), inputs.to(states.dtype)], dim=-1)
        p_gen = torch.sigmoid(self.gate(features).float()).squeeze(-1).masked_fill(empty[:, None], 1.0)  # (B, T)
        vocab = torch.softmax(vocab_logits.float(), dim=-1)
        index = memory_ids.clamp(0, vocab.shape[-1] - 1)[:, None, :].expand(-1, attention.shape[1], -1)
        copied = torch.zeros_like(vocab).scatter_add_(2, index, attention)
        return p_gen[..., None] * vocab + (1 - p_gen[..., None]) * copied, p_gen


class CopyMixture(LogitsProcessor):
    """
    Generation with [`SummaryCopy`]: turns the decoder's vocabulary scores into the log of the copy mixture, with the
    decoder state read from the decoder's own forward pass (a hook set while it is entered, `with copy:`, so no step
    is computed twice). Tokens an earlier processor banned (`-inf`) stay banned.
    """

    def __init__(self, model: EmbSumModel, memory: torch.Tensor, memory_mask: torch.Tensor, memory_ids: torch.Tensor):
        self.model, self.memory, self.memory_mask, self.memory_ids = model, memory, memory_mask.bool(), memory_ids
        self._state: torch.Tensor | None = None
        self._handle = None

    def __enter__(self) -> CopyMixture:
        def keep(module, args, output):
            self._state = output[0][:, -1]  # (B', d): the last position's final decoder state

        self._handle = self.model.t5.decoder.register_forward_hook(keep)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._state is None or self._state.shape[0] != scores.shape[0]:
            raise RuntimeError("CopyMixture needs the decoder state of this step: generate within `with copy:`")
        memory, mask, ids = self.memory, self.memory_mask, self.memory_ids
        if scores.shape[0] != memory.shape[0]:  # beam search: every beam of a user reads the user's memory
            repeat = scores.shape[0] // memory.shape[0]
            memory, mask, ids = (t.repeat_interleave(repeat, dim=0) for t in (memory, mask, ids))
        inputs = self.model.t5.get_input_embeddings()(input_ids[:, -1:])  # (B', 1, d)
        mixed, _ = self.model.summary_copy(self._state[:, None], inputs, memory, mask, ids, scores[:, None])
        log_probs = mixed[:, 0].clamp_min(torch.finfo(mixed.dtype).tiny).log()
        return log_probs.masked_fill(scores == float("-inf"), float("-inf")).to(scores.dtype)


class WellFormedSlots(LogitsProcessor):
    """
    Keeps the interest slots of a template summary well-formed while it is written: after the first `lead` (e.g.
    "interested in"), in "A, B, C, D and E.", no slot may be empty or only stop-words (a separator -- a comma, "and",
    a full stop or `</s>` -- waits for a content word), no slot starts with a stop-word, and no word that is no
    stop-word is written twice (a word-start token spelling an earlier word is banned). Words written piece by piece
    are checked as they end: a word that would end as an earlier word, as a stop-word opening a slot, or as an "and"
    closing an empty slot must go on. A token that glues a word piece to a comma or full stop is not used in the
    slots, nor is a word piece right after a comma (every slot word starts as a word: no "finance,especially"); a
    lone word-start marker is followed by a word piece, not by another word start or a separator.
    Given `words` (the processor's `summary_words`: the words of the training summaries), every slot word is one of
    them: a word may only be started and continued along the spelling of one, and only ends as a whole one (no
    "selen", no "gainesbtractingale").
    Slots end at a comma or the word "and"; the full stop ends the summary (`</s>` follows). Nothing before the lead
    is constrained (the decoder writes the template's start by itself). The constraints are those of
    `embsum_hf.metrics.summary.malformed_summary`, so a summary written with them that has the lead is well-formed.

    Args:
        token_texts: the text of every token id, a word-start token with a leading space (`from_tokenizer`);
            special tokens "".
        lead: the words after which the slots begin.
        eos_token_id: `</s>`, which ends a slot too.
        stopwords: lower-cased words that are no interest on their own.
        words: lower-cased words the slots may use (ROUGE's tokens: runs of ASCII letters and digits); None: any.
    """

    @staticmethod
    def split_words(text: str) -> list[str]:
        """ROUGE's tokens: the runs of ASCII letters and digits."""
        return "".join(c if c.isascii() and c.isalnum() else " " for c in text).split()

    @classmethod
    def _slots(cls, text: str) -> list[list[str]]:
        """The words of each slot of `text`: slots end at a comma or at the word "and"."""
        slots = []
        for piece in text.split(","):
            slot: list[str] = []
            for word in cls.split_words(piece):
                if word == "and":
                    slots.append(slot)
                    slot = []
                else:
                    slot.append(word)
            slots.append(slot)
        return slots

    def __init__(
        self,
        token_texts: list[str],
        lead: str,
        eos_token_id: int,
        stopwords: frozenset[str] = SLOT_STOPWORDS,
        words: list[str] | frozenset[str] | None = None,
    ):
        self.texts, self.lead, self.stopwords = list(token_texts), lead.lower(), stopwords
        self.words = None if words is None else frozenset(words)
        # every beginning of a word of `words` (the words themselves included), and per word being written the word
        # pieces that go on along one (filled as met)
        self.prefixes = (
            None if words is None else {word[:end] for word in self.words for end in range(1, len(word) + 1)}
        )
        self._going_on: dict[str, torch.Tensor] = {}
        self.eos_token_id = eos_token_id
        size = len(self.texts)
        separator = torch.zeros(size, dtype=torch.bool)
        mixed = torch.zeros(size, dtype=torch.bool)  # a word piece glued to a comma or full stop ("ball.")
        stop_start = torch.zeros(size, dtype=torch.bool)
        continuing = torch.zeros(size, dtype=torch.bool)  # a word piece that goes on the word before it
        # word -> the word-start tokens that spell exactly it, or end it within themselves (" self-")
        self.starting: dict[str, list[int]] = {}
        for token_id, text in enumerate(self.texts):
            lowered = text.lower()
            if token_id == eos_token_id or "," in lowered or "." in lowered or lowered.strip() == "and":
                separator[token_id] = True
                mixed[token_id] = lowered.strip() != "and" and any(character.isalnum() for character in lowered)
            elif lowered.startswith(" ") and self.split_words(lowered) == [lowered.strip()]:
                word = lowered.strip()
                stop_start[token_id] = word in stopwords
                self.starting.setdefault(word, []).append(token_id)
            elif lowered and self.split_words(lowered) == [lowered]:
                continuing[token_id] = True
            if lowered.startswith(" "):  # the words a token ends within itself ("self" of " self-")
                words = self.split_words(lowered)
                for word in words[:-1] if lowered[-1:].isalnum() else words:
                    self.starting.setdefault(word, []).append(token_id)
        self.separator, self.mixed, self.stop_start, self.continuing = separator, mixed, stop_start, continuing
        # tokens that open a word (a word-start marker; the lone marker, sentencepiece's "▁" alone, among them)
        self.spaced = torch.tensor([text.startswith(" ") for text in self.texts], dtype=torch.bool)
        self.continuing_ids = continuing.nonzero().flatten().tolist()
        if self.prefixes is not None:  # a word-start token must begin a word of `words` (and end whole ones)
            unknown = torch.zeros(size, dtype=torch.bool)
            for token_id, text in enumerate(self.texts):
                lowered = text.lower()
                if lowered.startswith(" ") and not separator[token_id]:
                    spelled = self.split_words(lowered)
                    whole = spelled[:-1] if lowered[-1:].isalnum() else spelled
                    unknown[token_id] = any(word not in self.words for word in whole) or (
                        lowered[-1:].isalnum() and spelled[-1] not in self.prefixes
                    )
            self.unknown_start = unknown

    @classmethod
    def from_tokenizer(cls, tokenizer, lead: str, **kwargs) -> WellFormedSlots:
        """Token texts of `tokenizer` (sentencepiece's `\u2581` and byte-level BPE's `\u0120` mark a word start)."""
        special = set(tokenizer.all_special_ids)
        texts = [
            "" if token_id in special or token is None else token.replace("\u2581", " ").replace("\u0120", " ")
            for token_id, token in enumerate(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))
        ]
        return cls(texts, lead, tokenizer.eos_token_id, **kwargs)

    @classmethod
    def for_processor(cls, processor, lead: str, words=None) -> WellFormedSlots:
        """`from_tokenizer(processor.tokenizer, lead, words=words)`, built once per tokenizer size, lead and words and
        kept on `processor` (building one reads the whole vocabulary: tens of milliseconds, too slow for every
        `generate_summary` call of a server)."""
        key = (len(processor.tokenizer), lead, None if words is None else tuple(words))
        cache = processor.__dict__.setdefault("_well_formed_slots", {})
        if key not in cache:
            cache.clear()  # one entry: a processor's words and lead rarely change
            cache[key] = cls.from_tokenizer(processor.tokenizer, lead, words=words)
        return cache[key]

    def _banned(self, token_ids: list[int], vocab_size: int) -> torch.Tensor | None:
        text = "".join(self.texts[i] if 0 <= i < len(self.texts) else "" for i in token_ids).lower()
        found = text.find(self.lead)
        if found < 0:
            return None
        rest = text[found + len(self.lead) :]
        if self.lead[-1:].isalnum() and rest[:1].isalnum():  # the lead was the start of a word: no template
            return None
        width = min(vocab_size, len(self.texts))
        if "." in rest:  # the full stop ends the summary
            banned = torch.ones(vocab_size, dtype=torch.bool)
            banned[self.eos_token_id] = False
            return banned
        if not rest and self.lead[-1:].isalnum():  # the lead's last word ends here ("in", not "inert")
            banned = torch.zeros(vocab_size, dtype=torch.bool)
            banned[:width] = self.continuing[:width] | self.separator[:width] | self.stop_start[:width]
            return self._in_words(banned, None, None, width)
        slots = self._slots(rest)
        content = [word for slot in slots for word in slot if word not in self.stopwords]
        # the word being written, if the text ends within one: a token that is no word piece (a word start, a
        # separator, </s>, punctuation) finishes it
        partial = self.split_words(rest)[-1] if self.split_words(rest[-1:]) else None
        finishing = torch.zeros(vocab_size, dtype=torch.bool)
        finishing[:width] = ~self.continuing[:width]
        banned = torch.zeros(vocab_size, dtype=torch.bool)
        banned[:width] |= self.mixed[:width]  # a slot's words and its separator are written apart
        for word in content:  # no content word twice
            banned[[i for i in self.starting.get(word, ()) if i < vocab_size]] = True
        if partial == "and":  # "and" being written: a separator once finished
            if len(slots) > 1 and not any(word not in self.stopwords for word in slots[-2]):
                return self._in_words(banned | finishing, partial, finishing, width)  # it would close an empty slot
            current = []  # finished, a new slot starts with the next token
        else:
            current = slots[-1]
            if partial is not None and (partial in content[:-1] or current == [partial] and partial in self.stopwords):
                # it would end as an earlier word, or as a stop-word opening a slot: the word goes on
                return self._in_words(banned | finishing, partial, finishing, width)
        if not any(word not in self.stopwords for word in current):  # an empty or stop-word slot goes on
            banned[:width] |= self.separator[:width]
        if not current or partial == "and":  # a slot's first word is no stop-word
            banned[:width] |= self.stop_start[:width]
        if partial is None and rest[-1:] == ",":  # a word piece would glue on ("finance,especially")
            banned[:width] |= self.continuing[:width]
        elif partial is None and rest[-1:] == " ":  # after a lone marker a word piece starts the word
            banned[:width] |= self.spaced[:width] | self.separator[:width]
            return self._in_words(banned, "", None, width)
        return self._in_words(banned, partial, finishing, width)

    def _in_words(
        self, banned: torch.Tensor, partial: str | None, finishing: torch.Tensor | None, width: int
    ) -> torch.Tensor:
        """`banned` and, given `words`, what leaves them: a new word begins one, the word being written (`partial`)
        goes on along one and ends only as a whole one."""
        if self.prefixes is None:
            return banned
        banned[:width] |= self.unknown_start[:width]
        if partial is not None:
            banned[:width] |= self.continuing[:width] & ~self._goes_on(partial, width)
            if partial not in self.words and finishing is not None:
                banned |= finishing
        if bool(banned[:width].all()):  # no way on (a word the tokenizer cannot finish): the summary ends
            banned[self.eos_token_id] = False
        return banned

    def _goes_on(self, partial: str, width: int) -> torch.Tensor:
        """The word pieces that continue `partial` along the spelling of a word of `words`, as a mask."""
        mask = self._going_on.get(partial)
        if mask is None:
            mask = torch.zeros(len(self.texts), dtype=torch.bool)
            mask[[i for i in self.continuing_ids if partial + self.texts[i].lower() in self.prefixes]] = True
            self._going_on[partial] = mask
        return mask[:width]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = [self._banned(row, scores.shape[-1]) for row in input_ids.tolist()]
        if all(row is None for row in rows):
            return scores
        banned = torch.stack(
            [row if row is not None else torch.zeros(scores.shape[-1], dtype=torch.bool) for row in rows]
        )
        return scores.masked_fill(banned.to(scores.device), float("-inf"))


class EmbSumPreTrainedModel(PreTrainedModel):
    config: EmbSumConfig
    config_class = EmbSumConfig
    base_model_prefix = "embsum"
    supports_gradient_checkpointing = True
    _no_split_modules = ["T5Block"]

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, ItemPrior):
            nn.init.zeros_(module.weight)  # no preference before training
        elif isinstance(module, SessionPositions):
            nn.init.zeros_(module.weight)  # the model starts as the one without them
        elif isinstance(module, PolyAttention):
            # unit-variance logits at initialisation for unit-scale keys
            nn.init.normal_(module.codes, std=module.codes.shape[-1] ** -0.5)
            nn.init.xavier_uniform_(module.projection.weight)
        elif isinstance(module, SummaryCopy):
            nn.init.xavier_uniform_(module.query.weight)
            nn.init.xavier_uniform_(module.gate.weight)
            nn.init.zeros_(module.gate.bias)
        elif isinstance(module, EmbSumModel):
            nn.init.xavier_uniform_(module.score_projection.weight)


class EmbSumModel(EmbSumPreTrainedModel):
    """
    EmbSum: content-based recommendation with offline-computable user and item poly-embeddings.

    A user's history, packed into sessions by [`EmbSumProcessor`], goes through the T5 encoder one session per row;
    the T5 decoder reads all sessions at once and writes (or is taught) a user-interest summary, whose final state
    `h_sum` joins the history items' `<sos>` states in the User Poly-Embedding (K x d). A candidate's text gives the
    Content Poly-Embedding (M x d). Relevance is [`poly_relevance`] of the two, so both sides can be pre-computed.
    """

    # the new layers on top of T5 (they get a higher learning rate in training)
    new_layer_prefixes = (
        "user_poly",
        "item_poly",
        "score_projection",
        "item_prior",
        "summary_copy",
        "session_positions",
    )

    def __init__(self, config: EmbSumConfig):
        super().__init__(config)
        d, p = config.t5_config.d_model, config.poly_projection_size
        self.t5 = T5ForConditionalGeneration(config.t5_config)
        # the summaries' generation defaults live in the config (saved with the model); `generate_summary` uses them
        self.t5.generation_config.update(**config.summary_generation)
        self.user_poly = PolyAttention(config.num_user_codes, d, p)
        self.item_poly = PolyAttention(config.num_item_codes, d, p)
        self.score_projection = nn.Linear(d, d, bias=False)  # W_s
        # optional per-item bias (config.item_prior_ids); row 0 is every item without one and stays 0
        self.item_prior = (
            ItemPrior(len(config.item_prior_ids) + 1, 1, padding_idx=0) if config.item_prior_ids else None
        )
        self._item_prior_rows = {item: row for row, item in enumerate(config.item_prior_ids or (), start=1)}
        # optional copy mechanism of the summary decoder (config.summary_copy)
        self.summary_copy = SummaryCopy(d) if config.summary_copy else None
        # optional session order for the summary decoder (config.summary_session_positions)
        self.session_positions = (
            SessionPositions(config.max_history_items, d) if config.summary_session_positions else None
        )
        self.post_init()

    @classmethod
    def from_backbone(cls, t5_name_or_path: str, *, vocab_size: int | None = None, **config_overrides) -> EmbSumModel:
        """
        Build EmbSum on a pretrained T5 (Hub id or local folder), keeping its weights; the poly-attention layers are
        new. Pass `vocab_size=len(processor.tokenizer)` when the processor added tokens beyond the checkpoint's
        embedding matrix (the `<sos>` token fits within t5-small's padded 32128 rows).
        """
        t5 = T5ForConditionalGeneration.from_pretrained(t5_name_or_path)
        if vocab_size is not None and vocab_size > t5.config.vocab_size:
            t5.resize_token_embeddings(vocab_size)
        config = EmbSumConfig(t5_config=t5.config.to_dict(), **config_overrides)
        config.name_or_path = str(t5_name_or_path)
        model = cls(config)
        model.t5.load_state_dict(t5.state_dict())
        return model

    def get_input_embeddings(self) -> nn.Module:
        return self.t5.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.t5.set_input_embeddings(value)

    # ----------------------------------------------------------------------------------------------- encoder side
    @staticmethod
    def _check_ids(name: str, input_ids: torch.Tensor, attention_mask: torch.Tensor, dims: tuple[int, ...]) -> None:
        if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"{name}_input_ids must be an integer tensor, got {getattr(input_ids, 'dtype', type(input_ids))}"
            )
        if input_ids.dim() not in dims:
            raise ValueError(
                f"{name}_input_ids must have {' or '.join(map(str, dims))} dimensions, got {tuple(input_ids.shape)}"
            )
        if attention_mask is None or attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"{name}_attention_mask must have the shape of {name}_input_ids {tuple(input_ids.shape)}, "
                f"got {None if attention_mask is None else tuple(attention_mask.shape)}"
            )

    def encode_rows(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """
        T5 encoder states of token rows `(R, L) -> (R, L, d)`: sessions, items, or the one session an incremental
        user update re-encodes. Fully padded rows (absent sessions or candidates) are skipped and left zero.
        Identical rows (the same item among several users' candidates, or the same one-item session in several
        histories) are encoded once and shared, and rows of similar length are encoded together at their own width
        (`_encode_by_length`), which changes no value: every row is encoded independently. Padded positions are zero.
        """
        present = attention_mask.bool().any(-1)  # (R,)
        rows = present.nonzero().squeeze(-1)  # (R',)
        ids, mask = input_ids[rows], attention_mask[rows]
        key = torch.cat([ids, mask.to(ids.dtype)], dim=-1)  # (R', 2L): a row is its tokens and its mask
        unique, inverse = torch.unique(key, dim=0, return_inverse=True)
        if len(unique) < len(rows):
            width = ids.shape[-1]
            ids, mask = unique[:, :width], unique[:, width:].to(attention_mask.dtype)  # (U, L)
        else:
            inverse = None
        encoded = self._encode_by_length(ids, mask)  # (U, L, d)
        if inverse is not None:
            encoded = encoded[inverse]  # (R', L, d)
        if len(rows) == len(input_ids):
            return encoded
        states = encoded.new_zeros(*input_ids.shape, encoded.shape[-1])
        states[rows] = encoded
        return states

    def _encode_by_length(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """
        T5 encoder states `(U, L) -> (U, L, d)` with rows grouped by length: the rows are sorted by their last
        attended position and cut into up to `ENCODE_LENGTH_GROUPS` groups of at least `ENCODE_GROUP_MIN_ROWS`, each
        encoded at its own width, so short rows are not padded to the longest row of the batch (MovieLens items:
        median 21 tokens, longest 50). A row's attended states are those of an encoding of the row
        alone; its padded positions come back zero (every consumer masks them: poly-attention, the decoder's memory).
        """
        width = ids.shape[-1]
        positions = torch.arange(1, width + 1, device=mask.device)
        ends = (mask.bool() * positions).amax(-1)  # (U,): last attended position + 1
        groups = max(1, min(ENCODE_LENGTH_GROUPS, len(ids) // ENCODE_GROUP_MIN_ROWS))
        order = torch.argsort(ends, stable=True) if groups > 1 else torch.arange(len(ids), device=ids.device)
        parts = []
        for rows in order.tensor_split(groups):
            end = int(ends[rows].max()) if len(rows) else width
            group_ids, group_mask = ids[rows, :end], mask[rows, :end]
            states = self.t5.encoder(input_ids=group_ids, attention_mask=group_mask).last_hidden_state
            states = states * group_mask[..., None].to(states.dtype)
            parts.append(F.pad(states, (0, 0, 0, width - end)))
        states = torch.cat(parts)
        return states if groups == 1 else states[torch.argsort(order)]  # back to the rows' order

    def encode_item(self, item_input_ids: torch.LongTensor, item_attention_mask: torch.Tensor) -> torch.Tensor:
        """
        Content Poly-Embeddings of items: `(N, Li) -> (N, M, d)`, or per-user candidates `(B, C, Li) -> (B, C, M, d)`.
        Fully padded rows (absent candidates) give zeros.
        """
        self._check_ids("item", item_input_ids, item_attention_mask, (2, 3))
        lead = item_input_ids.shape[:-1]
        ids = item_input_ids.reshape(-1, item_input_ids.shape[-1])  # (R, Li)
        mask = item_attention_mask.reshape(ids.shape).bool()
        states = self.encode_rows(ids, mask.long())  # (R, Li, d)
        embeddings, _ = self.item_poly(states, mask)  # (R, M, d)
        return embeddings.reshape(*lead, *embeddings.shape[1:])

    def item_score_keys(self, item_embeddings: torch.Tensor) -> torch.Tensor:
        """`gelu(CPE W_s)`, the item half of the score weights; depends on the item alone, so stores keep it."""
        return F.gelu(self.score_projection(item_embeddings))

    def score(self, user_embeddings: torch.Tensor, item_embeddings: torch.Tensor) -> torch.Tensor:
        """
        Relevance of users to items: `(B, K, d)` x `(N, M, d)` -> `(B, N)` (every user against the same items) or
        `(B, K, d)` x `(B, C, M, d)` -> `(B, C)` (each user against its own candidates).
        """
        return poly_relevance(user_embeddings, item_embeddings, self.item_score_keys(item_embeddings))

    def item_prior_index(self, item_ids: list[str]) -> torch.LongTensor:
        """Rows of the item prior for item ids `(N,)`: 0 for items without one (and for every item without a prior)."""
        return torch.tensor([self._item_prior_rows.get(item, 0) for item in item_ids], dtype=torch.long)

    def item_prior_scores(self, item_index: torch.LongTensor) -> torch.Tensor:
        """The item prior of items given by `item_prior_index` rows `(...) -> (...)`; zeros when the model has none."""
        if self.item_prior is None:
            return torch.zeros(item_index.shape, device=item_index.device)
        return self.item_prior(item_index.to(self.item_prior.weight.device)).squeeze(-1)

    # ----------------------------------------------------------------------------------------------- user side
    def _summary_targets(
        self,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        summary_labels: torch.Tensor | None,
        copyable: torch.Tensor | None = None,
        memory_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Decoder targets `(B, T)` (-100 padded) from which `h_sum` is read: the teacher summary where one is given,
        else per `summary_mode` the decoder's own greedy summary (`"generate"`) or nothing (`"start"`).
        """
        batch = memory.shape[0]
        if summary_labels is None:
            summary_labels = memory_mask.new_full((batch, 1), -100, dtype=torch.long)
        targets = summary_labels.clone()
        missing = (targets == -100).all(-1)  # (B,)
        if self.config.summary_mode == "generate" and bool(missing.any()):
            copy = {} if copyable is None else {"copyable": copyable[missing], "memory_ids": memory_ids[missing]}
            generated = self._generate(memory[missing], memory_mask[missing], do_sample=False, num_beams=1, **copy)
            generated = generated[:, 1:]
            eos = self.config.t5_config.eos_token_id
            # keep each summary up to and including its first EOS
            after_eos = (generated == eos).long().cumsum(-1) - (generated == eos).long() > 0
            generated = generated.masked_fill(after_eos, -100)
            width = max(targets.shape[1], generated.shape[1])
            targets = F.pad(targets, (0, width - targets.shape[1]), value=-100)
            targets[missing] = F.pad(generated, (0, width - generated.shape[1]), value=-100)
        return targets

    def _decode_summary(
        self, memory: torch.Tensor, memory_mask: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # teacher-forced decoder pass; returns states (B, T, d), h_sum (B, d), decoder inputs (B, T)
        decoder_input_ids = self.t5._shift_right(targets)
        states = self.t5.decoder(
            input_ids=decoder_input_ids, encoder_hidden_states=memory, encoder_attention_mask=memory_mask
        ).last_hidden_state
        # "generate": the state at the last target position, which has read the whole summary and predicts its EOS;
        # "start": the start-token state, in training too, so that training and serving read the same state
        if self.config.summary_mode == "start":
            last = torch.zeros(states.shape[0], dtype=torch.long, device=states.device)
        else:
            last = ((targets != -100).long().sum(-1) - 1).clamp(min=0)
        summary_state = states[torch.arange(states.shape[0], device=states.device), last]
        return states, summary_state, decoder_input_ids

    def _lm_logits(self, decoder_states: torch.Tensor) -> torch.Tensor:
        if self.t5.config.scale_decoder_outputs:  # as T5ForConditionalGeneration does with tied embeddings
            decoder_states = decoder_states * (self.t5.model_dim**-0.5)
        return self.t5.lm_head(decoder_states)

    def _encode_sessions(
        self, session_input_ids: torch.LongTensor, session_attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_ids("session", session_input_ids, session_attention_mask, (3,))
        batch, sessions, length = session_input_ids.shape
        mask = session_attention_mask.bool()
        if not bool(mask.flatten(1).any(-1).all()):
            raise ValueError(
                "every user needs at least one session token; EmbSumProcessor encodes an empty history as one "
                "end-of-sequence session"
            )
        states = self.encode_rows(session_input_ids.reshape(-1, length), mask.reshape(-1, length).long())
        return states.reshape(batch, sessions, length, -1), mask  # (B, G, L, d), (B, G, L)

    def _decoder_memory(
        self, session_states: torch.Tensor, session_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        What the summary decoder reads: the session states `(B, G, L, d)` (plus their [`SessionPositions`] when the
        config has them) concatenated, the positions it attends to gathered to the front `(B, S, d)`, `(B, S)` bool
        (cross-attention has no position bias, so gathering changes no value and skips the padding of every session).
        """
        if self.session_positions is not None:
            session_states = self.session_positions(session_states)
        batch, sessions, length, d = session_states.shape
        return gather_to_front(session_states.reshape(batch, -1, d), session_mask.reshape(batch, -1))

    def _copy_source(
        self, session_input_ids: torch.Tensor, read: torch.Tensor, memory_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
        """
        With the copy mechanism, the token ids `(B, S)` of the memory positions the decoder reads (`read`, gathered to
        the front as the states are) and which of them it may copy `(B, S)` bool: words, not padding, `</s>` or
        `<sos>`. `(None, None)` without it.
        """
        if self.summary_copy is None:
            return None, None
        ids = session_input_ids.reshape(memory_mask.shape)
        ids, _ = gather_to_front(ids[..., None], memory_mask)
        ids = ids[..., 0]
        t5 = self.config.t5_config
        copyable = read.bool() & ~torch.isin(
            ids, torch.tensor([t5.pad_token_id, t5.eos_token_id, self.config.item_start_token_id], device=ids.device)
        )
        return copyable, ids

    def _summary_log_probs(
        self,
        decoder_states: torch.Tensor,
        decoder_input_ids: torch.Tensor,
        memory: torch.Tensor,
        copyable: torch.Tensor | None,
        memory_ids: torch.Tensor | None,
    ) -> torch.Tensor:
        """
        Next-token scores of teacher-forced summary states `(B, T, d)`: the vocabulary logits, or with the copy
        mechanism the log of [`SummaryCopy`]'s mixture (a log-probability, which the cross-entropy leaves unchanged).
        """
        logits = self._lm_logits(decoder_states)
        if self.summary_copy is None:
            return logits
        inputs = self.t5.get_input_embeddings()(decoder_input_ids)
        mixed, _ = self.summary_copy(decoder_states, inputs, memory, copyable, memory_ids, logits)
        return mixed.clamp_min(torch.finfo(mixed.dtype).tiny).log()

    def _user_from_sessions(
        self,
        session_input_ids: torch.LongTensor,
        session_states: torch.Tensor,
        session_mask: torch.Tensor,
        summary_labels: torch.LongTensor | None,
        output_details: bool,
    ) -> tuple[EmbSumUserOutput, torch.Tensor]:
        batch, sessions, length, d = session_states.shape
        memory = session_states.reshape(batch, sessions * length, d)  # fusion-in-decoder: [H_1; ...; H_g]
        memory_mask = session_mask.reshape(batch, sessions * length)
        read_states, read = self._decoder_memory(session_states, session_mask)
        read = read.long()
        copyable, read_ids = self._copy_source(session_input_ids, read, memory_mask)
        targets = self._summary_targets(read_states, read, summary_labels, copyable, read_ids)
        decoder_states, summary_state, decoder_input_ids = self._decode_summary(read_states, read, targets)

        # history rows of Z_u: encoder states at every <sos>, gathered to the front in session order
        is_item = (session_input_ids.reshape(batch, -1) == self.config.item_start_token_id) & memory_mask
        item_states, item_mask = gather_to_front(memory, is_item)  # (B, n, d), (B, n)

        z = torch.cat([item_states, summary_state[:, None, :].to(item_states.dtype)], dim=1)  # (B, n + 1, d)
        z_mask = torch.cat([item_mask, item_mask.new_ones(batch, 1)], dim=1)
        user_embeddings, weights = self.user_poly(z, z_mask)  # (B, K, d), (B, K, n + 1)
        output = EmbSumUserOutput(user_embeddings=user_embeddings, summary_state=summary_state)
        if output_details:
            output.item_states, output.item_mask = item_states, item_mask
            output.session_states, output.attention_weights = session_states, weights
            output.summary_ids = decoder_input_ids
        return output, (decoder_states, decoder_input_ids, read_states, copyable, read_ids)

    def encode_user(
        self,
        session_input_ids: torch.LongTensor,
        session_attention_mask: torch.Tensor,
        summary_labels: torch.LongTensor | None = None,
        *,
        session_states: torch.Tensor | None = None,
        output_details: bool = False,
    ) -> EmbSumUserOutput:
        """
        User Poly-Embeddings from sessions `(B, G, L)` -> `(B, K, d)`.

        All sessions of the batch go through the encoder as one `(B*G, L)` batch (absent sessions skipped); the
        decoder cross-attends over each user's concatenated sessions. `summary_labels` `(B, T)` (-100 padded) make
        `h_sum` the teacher-forced state; users without them follow `config.summary_mode`. Pass `session_states`
        `(B, G, L, d)` from an earlier call (`output_details=True`) to skip the encoder, e.g. when only the newest
        session changed and the others are reused.
        """
        if session_states is None:
            session_states, mask = self._encode_sessions(session_input_ids, session_attention_mask)
        else:
            self._check_ids("session", session_input_ids, session_attention_mask, (3,))
            if session_states.shape[:3] != session_input_ids.shape:
                raise ValueError(
                    f"session_states {tuple(session_states.shape)} do not match session_input_ids "
                    f"{tuple(session_input_ids.shape)}"
                )
            mask = session_attention_mask.bool()
        output, _ = self._user_from_sessions(session_input_ids, session_states, mask, summary_labels, output_details)
        return output

    def forward(
        self,
        session_input_ids: torch.LongTensor,
        session_attention_mask: torch.Tensor,
        candidate_input_ids: torch.LongTensor,
        candidate_attention_mask: torch.Tensor,
        summary_labels: torch.LongTensor | None = None,
        candidate_labels: torch.LongTensor | None = None,
        candidate_item_index: torch.LongTensor | None = None,
    ) -> EmbSumOutput:
        """
        Joint training step: `L = L_NCE + lambda * L_sum`.

        Args:
            session_input_ids, session_attention_mask: `(B, G, L)` user histories packed into sessions.
            candidate_input_ids, candidate_attention_mask: `(B, C, Li)` candidates; fully padded ones are ignored.
            summary_labels: `(B, T)` teacher summaries, -100 padded; a row of -100 means "no teacher summary".
            candidate_labels: `(B, C)` 1 clicked, 0 not clicked, -100 padding. Default: candidate 0 of each user is
                its click and the others its negatives. Each click is contrasted with all of its user's negatives
                (NCE), so one user encoding can carry several clicks of an impression.
            candidate_item_index: `(B, C)` rows of the item prior (`item_prior_index` of the candidates' ids), added
                to the scores when the model has an item prior.
        """
        self._check_ids("candidate", candidate_input_ids, candidate_attention_mask, (3,))
        batch = candidate_input_ids.shape[0]
        if batch != session_input_ids.shape[0]:
            raise ValueError(f"candidate_input_ids has {batch} users, session_input_ids {session_input_ids.shape[0]}")
        present = candidate_attention_mask.bool().any(-1)  # (B, C)
        if candidate_labels is None:
            candidate_labels = torch.zeros_like(present, dtype=torch.long)
            candidate_labels[:, 0] = 1
            if not bool(present[:, 0].all()):
                raise ValueError("candidate 0 of every user must be its clicked item, but some are empty")
        elif candidate_labels.shape != present.shape:
            raise ValueError(
                f"candidate_labels must have shape {tuple(present.shape)}, got {tuple(candidate_labels.shape)}"
            )
        clicked, negative = (candidate_labels == 1) & present, (candidate_labels == 0) & present  # (B, C)
        if not bool(clicked.any(-1).all()):
            raise ValueError("every user needs at least one clicked candidate (candidate_labels == 1)")

        session_states, session_mask = self._encode_sessions(session_input_ids, session_attention_mask)
        user, decoded = self._user_from_sessions(
            session_input_ids, session_states, session_mask, summary_labels, output_details=False
        )
        item_embeddings = self.encode_item(candidate_input_ids, candidate_attention_mask)  # (B, C, M, d)
        prior = 0.0
        if self.item_prior is not None and candidate_item_index is not None:
            prior = self.item_prior_scores(candidate_item_index)  # (B, C)
        logits = self.score(user.user_embeddings, item_embeddings) + prior  # (B, C)
        logits = logits.masked_fill(~present, float("-inf"))
        ctr_loss = self.click_loss(logits, clicked, logits.masked_fill(~negative, float("-inf")))

        summary_loss = None
        loss = ctr_loss
        if summary_labels is not None and bool((summary_labels != -100).any()):
            taught = (summary_labels != -100).any(-1)
            width = summary_labels.shape[1]
            decoder_states, decoder_input_ids, memory, copyable, memory_ids = decoded
            lm_logits = self._summary_log_probs(
                decoder_states[taught, :width],
                decoder_input_ids[taught, :width],
                memory[taught],
                None if copyable is None else copyable[taught],
                None if memory_ids is None else memory_ids[taught],
            )  # (B', T, V)
            summary_loss = self._summary_loss(lm_logits, summary_labels[taught])
            if self.config.summary_loss_weight > 0:
                loss = ctr_loss + self.config.summary_loss_weight * summary_loss
        return EmbSumOutput(
            loss=loss,
            ctr_loss=ctr_loss,
            summary_loss=summary_loss,
            logits=logits,
            user_embeddings=user.user_embeddings,
            item_embeddings=item_embeddings,
        )

    @staticmethod
    def click_loss(logits: torch.Tensor, clicked: torch.Tensor, negative_logits: torch.Tensor) -> torch.Tensor:
        """
        The NCE click loss of `logits` `(B, C)`: `-log softmax` of each click (`clicked`, `(B, C)` bool) against its
        user's negatives `negative_logits` `(B, N)` (-inf where there is none), averaged over each user's clicks,
        then over the users.
        """
        negative_lse = torch.logsumexp(negative_logits.float(), dim=-1)  # (B,), -inf for a user without negatives
        click_logits = logits.float()[clicked]  # (P,) every click of the batch
        click_user = clicked.nonzero()[:, 0]  # (P,)
        click_losses = torch.logaddexp(click_logits, negative_lse[click_user]) - click_logits
        # each user's clicks averaged, then the users: every example weighs the same, so the mean over a batch split
        # across ranks (averaged by DDP) equals the mean over the whole batch in one process
        per_user = click_losses.new_zeros(len(logits)).index_add(0, click_user, click_losses)
        return (per_user / clicked.sum(-1).clamp(min=1)).mean()

    # ----------------------------------------------------------------------------------------------- summaries
    def _summary_loss(self, lm_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Token mean of the NLL of teacher summaries `(B', T)` (labels -100 are padding)."""
        return F.cross_entropy(
            lm_logits.reshape(-1, lm_logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100
        )

    def _generate(
        self,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        copyable: torch.Tensor | None = None,
        memory_ids: torch.Tensor | None = None,
        **generate_kwargs,
    ) -> torch.LongTensor:
        """The decoder's summaries of `memory`; with the copy mechanism (given `copyable`, `memory_ids`) it mixes in
        copying first, before every other logits processor."""
        generate_kwargs.setdefault("max_new_tokens", self.config.summary_max_tokens)
        with torch.no_grad():
            if self.summary_copy is None or copyable is None:
                return self.t5.generate(
                    encoder_outputs=BaseModelOutput(last_hidden_state=memory),
                    attention_mask=memory_mask,
                    **generate_kwargs,
                )
            copy = CopyMixture(self, memory, copyable, memory_ids)
            processors = generate_kwargs.pop("logits_processor", None) or []
            with copy:
                return self.t5.generate(
                    encoder_outputs=BaseModelOutput(last_hidden_state=memory),
                    attention_mask=memory_mask,
                    logits_processor=LogitsProcessorList([copy, *processors]),
                    **generate_kwargs,
                )

    def generate_summary(
        self,
        session_input_ids: torch.LongTensor,
        session_attention_mask: torch.Tensor,
        *,
        processor=None,
        **generate_kwargs,
    ) -> torch.LongTensor | list[str]:
        """
        The decoder writes each user's interest summary from the concatenated session states, with the settings of
        `config.summary_generation` (the decoder's `generation_config`) unless `generate_kwargs` say otherwise, and
        steered towards the words of the user's own history by [`HistoryTokenBoost`] when
        `config.summary_history_boost` (or a `history_boost=` keyword) is above 0, among the tokens at least
        `config.summary_history_boost_plausibility` (`history_boost_plausibility=`) times as likely as the best (given
        `processor`, a word counts in any letter case: `processor.token_classes()`). Given `processor`, the interest
        slots after `config.summary_slot_lead` (a `slot_lead=` keyword; None or "" turns it off) are kept well-formed
        by [`WellFormedSlots`], in the words of `processor.summary_words` when it has them (a `slot_words=` keyword;
        None: any word). With `config.summary_copy` the decoder's own copy mechanism ([`SummaryCopy`]) mixes
        in copying from the history at every step.
        Returns token ids `(B, T)`, or decoded texts when `processor` is given.
        """
        slot_lead = generate_kwargs.pop("slot_lead", self.config.summary_slot_lead)
        slot_words = generate_kwargs.pop("slot_words", getattr(processor, "summary_words", None))
        history_boost = generate_kwargs.pop("history_boost", self.config.summary_history_boost)
        plausibility = generate_kwargs.pop(
            "history_boost_plausibility", self.config.summary_history_boost_plausibility
        )
        added = []
        if history_boost:
            t5 = self.config.t5_config
            added.append(
                HistoryTokenBoost(
                    session_input_ids.flatten(1),
                    session_attention_mask.flatten(1),
                    history_boost,
                    token_classes=processor.token_classes() if processor is not None else None,
                    excluded=(t5.pad_token_id, t5.eos_token_id, self.config.item_start_token_id),
                    plausibility=plausibility,
                )
            )
        if slot_lead and processor is not None:
            added.append(WellFormedSlots.for_processor(processor, slot_lead, words=slot_words))
        if added:
            processors = LogitsProcessorList(generate_kwargs.pop("logits_processor", None) or [])
            generate_kwargs["logits_processor"] = LogitsProcessorList([*processors, *added])
        states, mask = self._encode_sessions(session_input_ids, session_attention_mask)
        memory, read = self._decoder_memory(states, mask)
        copyable, memory_ids = self._copy_source(session_input_ids, read, mask.reshape(mask.shape[0], -1))
        ids = self._generate(memory, read.long(), copyable, memory_ids, **generate_kwargs)
        return processor.decode_summaries(ids) if processor is not None else ids


# saved folders carry `auto_map` and this file, so AutoModel loads them with trust_remote_code (see configuration)
EmbSumModel.register_for_auto_class("AutoModel")
if __name__.startswith("embsum_hf."):
    AutoModel.register(EmbSumConfig, EmbSumModel, exist_ok=True)

__all__ = [
    "CopyMixture",
    "ItemPrior",
    "EmbSumModel",
    "HistoryTokenBoost",
    "EmbSumPreTrainedModel",
    "EmbSumOutput",
    "EmbSumUserOutput",
    "PolyAttention",
    "SessionPositions",
    "SummaryCopy",
    "WellFormedSlots",
    "poly_relevance",
]


# ---------------------------------------------------------------------------------------------------------- serving
# One user at a time, in pure torch: the incremental user update and the explanation arithmetic. embsum_hf.serving
# and the Space's app (which loads this file with the model, through trust_remote_code) both call these.


@dataclass
class UserState:
    """
    What an incremental user update needs to know about one user; `UserState()` is a user with no history yet.

    Attributes:
        history_token_ids: token ids of the kept history items, most recent first (at most `max_history_items`).
        sessions: the packed sessions' token ids, oldest first.
        session_states: `(G, L, d)` encoder states of `sessions` (padded to the longest session).
        user_embeddings: `(K, d)` the current UPE.
        attention_weights: `(K, n + 1)` poly-attention weights over the history items (oldest first) and `h_sum`,
            for [`score_shares`].
        sessions_encoded: how many sessions the update that made this state ran through the encoder.
    """

    history_token_ids: list[list[int]] = field(default_factory=list)
    sessions: list[list[int]] = field(default_factory=list)
    session_states: torch.Tensor | None = None
    user_embeddings: torch.Tensor | None = None
    attention_weights: torch.Tensor | None = None
    sessions_encoded: int = 0


def update_user_state(model: EmbSumModel, processor, state: UserState, new_items) -> UserState:
    """
    Add `new_items` (item dicts, most recent first) to a user's history and recompute the UPE, running the encoder on
    the sessions whose token ids changed only. The processor packs a history oldest first, so a new engagement
    changes the newest session (or opens one) and the older sessions are reused; once the history passes
    `max_history_items` every session shifts and all are encoded. `update_user_state(model, processor, UserState(),
    history)` encodes a user from scratch; the result equals `model.encode_user` on the whole new history (up to float
    rounding). The old state is left unchanged. Runs in the caller's mode: call it in eval mode without gradients.
    """
    config = model.config
    history = (processor.tokenize_items(new_items) + list(state.history_token_ids))[: config.max_history_items]
    sessions = processor.pack_sessions(history)
    batch = processor.pad_users([sessions]).to(model.device)
    ids, mask = batch["session_input_ids"], batch["session_attention_mask"]  # (1, G, L)
    changed = [g for g, session in enumerate(sessions) if g >= len(state.sessions) or state.sessions[g] != session]
    states = torch.zeros(*ids.shape, config.hidden_size, device=model.device, dtype=model.dtype)  # (1, G, L, d)
    for g, session in enumerate(sessions):
        if g not in changed:
            states[0, g, : len(session)] = state.session_states[g, : len(session)]
    if changed:
        states[0, changed] = model.encode_rows(ids[0, changed], mask[0, changed])  # (C, L, d)
    output = model.encode_user(ids, mask, session_states=states, output_details=True)
    return UserState(
        history_token_ids=history,
        sessions=sessions,
        session_states=states[0],
        user_embeddings=output.user_embeddings[0],
        attention_weights=output.attention_weights[0],
        sessions_encoded=len(changed),
    )


def score_shares(
    user_embeddings: torch.Tensor,
    attention_weights: torch.Tensor,
    item_embeddings: torch.Tensor,
    item_keys: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Where one user's [`poly_relevance`] score for one item comes from. With `w = softmax(u_a . key_m)` over the
    `K x M` code pairs and each user code `u_a = sum_j alpha_aj z_j` over the history rows and `h_sum`, user code `a`
    carries `sum_m w_am` of the score weight and row `j` carries `sum_a (sum_m w_am) alpha_aj`.

    Args:
        user_embeddings: `(K, d)` the user's UPE.
        attention_weights: `(K, n + 1)` its poly-attention weights (`encode_user(..., output_details=True)` or
            `UserState.attention_weights`): history rows in session order (oldest first), then `h_sum`.
        item_embeddings, item_keys: `(M, d)` the item's CPE and `gelu(CPE W_s)` (e.g. one row of an item store).

    Returns:
        `(pair_weights, similarity, row_weights)`: `(K, M)` the softmax weights (summing to 1), `(K, M)` the dot
        products `u_a . v_m` (the score is `(pair_weights * similarity).sum()`), and `(n + 1,)` each history row's
        and `h_sum`'s share of the weight (summing to 1), in float32.
    """
    upe, cpe, keys = user_embeddings.float(), item_embeddings.float(), item_keys.float()
    similarity = upe @ cpe.T  # (K, M)
    pair_weights = torch.softmax((upe @ keys.T).flatten(), dim=0).reshape(similarity.shape)  # (K, M)
    row_weights = pair_weights.sum(1) @ attention_weights.float()  # (n + 1,)
    return pair_weights, similarity, row_weights


__all__ += ["UserState", "score_shares", "update_user_state"]
