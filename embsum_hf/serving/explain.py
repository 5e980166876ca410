"""Why an item scored high for a user: which history items, and which user/item code pairs, carried the score; and
the model's own interest summaries of users (`generate_summaries`, from `.summaries`).

The score is `sum_am w_am (u_a . v_m)` with `w = softmax(u_a . gelu(v_m W_s))` over the `K x M` code pairs, and each
user code is `u_a = sum_j alpha_aj z_j` over the history items' states and `h_sum`. So user code `a` carries the share
`W_a = sum_m w_am` of the score weight, and history row `j` carries `sum_a W_a alpha_aj`; these shares sum to 1.
That arithmetic is `score_shares` in the model's file (`modeling_embsum.py`), the one implementation that the Space's
app also runs; this names the shares (history items, code pairs) and sorts them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..modeling_embsum import EmbSumModel, poly_relevance, score_shares
from ..processing_embsum import EmbSumProcessor
from ..utils import evaluating
from .summaries import generate_summaries

SUMMARY_LABEL = "your interest summary"


@dataclass
class HistoryContribution:
    """A history item's (or, with `item_id=None`, the summary state's) share of the score weight."""

    item_id: str | None
    title: str
    weight: float


@dataclass
class PairContribution:
    """User code `user_code` x item code `item_code`: softmax weight `weight` and dot product `similarity`."""

    user_code: int
    item_code: int
    weight: float
    similarity: float


@dataclass
class Explanation:
    """
    The parts of one (user, item) score, each list sorted by weight, largest first.

    Attributes:
        score: the relevance score (`poly_relevance`).
        history: every history item and the summary state `h_sum`, with weights summing to 1.
        pairs: all `K x M` code pairs, weights summing to 1; `sum(weight * similarity) == score`.
    """

    score: float
    history: list[HistoryContribution]
    pairs: list[PairContribution]

    def text(self, top: int = 3) -> str:
        """The `top` heaviest history entries, e.g. `Recommended because of: Mars rover lands (0.42), Cup final (0.17),
        your interest summary (0.10)`."""
        parts = [f"{entry.title} ({entry.weight:.2f})" for entry in self.history[:top]]
        return "Recommended because of: " + ", ".join(parts)

    def __str__(self) -> str:
        return self.text()


def _title(item: Mapping[str, Any]) -> str:
    return str(item.get("title") or item.get("name") or item.get("item_id", "?"))


def explain(
    user_embeddings: torch.Tensor,
    attention_weights: torch.Tensor,
    item_embeddings: torch.Tensor,
    item_keys: torch.Tensor,
    history: Sequence[Mapping[str, Any]],
) -> Explanation:
    """
    Break one user's score for one item into history-item and code-pair contributions.

    Args:
        user_embeddings: `(K, d)` the user's UPE.
        attention_weights: `(K, n + 1)` its poly-attention weights (`encode_user(..., output_details=True)` or
            `UserState.attention_weights`): history items in session order (oldest first), then `h_sum`.
        item_embeddings, item_keys: `(M, d)` the item's CPE and `gelu(CPE W_s)` (e.g. one row of an item store).
        history: the user's history item dicts, most recent first, as given to the processor.
    """
    weights, similarity, row_weights = score_shares(user_embeddings, attention_weights, item_embeddings, item_keys)
    num_rows = attention_weights.shape[-1] - 1
    kept = list(history[:num_rows])[::-1]  # session order: the kept (latest) items, oldest first
    upe, cpe, keys = user_embeddings.float(), item_embeddings.float(), item_keys.float()
    score = float(poly_relevance(upe[None], cpe[None], keys[None])[0, 0])

    contributions = [
        HistoryContribution(item.get("item_id"), _title(item), float(row_weights[j])) for j, item in enumerate(kept)
    ]
    # rows past the given history are padding of a batched encode_user call: their weight is 0
    contributions.append(HistoryContribution(None, SUMMARY_LABEL, float(row_weights[-1])))
    pairs = [
        PairContribution(a, m, float(weights[a, m]), float(similarity[a, m]))
        for a in range(weights.shape[0])
        for m in range(weights.shape[1])
    ]
    return Explanation(
        score=score,
        history=sorted(contributions, key=lambda entry: -entry.weight),
        pairs=sorted(pairs, key=lambda entry: -entry.weight),
    )


def explain_recommendation(
    model: EmbSumModel,
    processor: EmbSumProcessor,
    history: Sequence[Mapping[str, Any]],
    item: Mapping[str, Any],
) -> Explanation:
    """Encode one user (history item dicts, most recent first) and one item, then [`explain`] the item's score."""
    users = processor.encode_users([history]).to(model.device)
    items = processor.encode_items([item]).to(model.device)
    with evaluating(model):
        user = model.encode_user(**users, output_details=True)
        cpe = model.encode_item(**items)  # (1, M, d)
        keys = model.item_score_keys(cpe)
    return explain(user.user_embeddings[0], user.attention_weights[0], cpe[0], keys[0], history)


__all__ = [
    "Explanation",
    "HistoryContribution",
    "PairContribution",
    "explain",
    "explain_recommendation",
    "generate_summaries",
]
