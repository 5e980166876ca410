"""Incremental user updates: when a user engages with new items, re-encode only the sessions that changed.

[`EmbSumProcessor.pack_sessions`] packs a history oldest first, so a new engagement changes only the newest session
(or opens a new one) and every older session stays token-for-token identical. A [`UserState`] keeps each session's
token ids and encoder states; [`update_user`] runs the T5 encoder on the changed sessions only, then the decoder and
the user poly-attention (which read all sessions) through `model.encode_user(..., session_states=...)`.
Once a history exceeds `config.max_history_items`, the oldest item drops out and every session shifts: those
updates re-encode everything, which this handles the same way (all sessions changed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..modeling_embsum import EmbSumModel
from ..processing_embsum import EmbSumProcessor
from ..utils import evaluating

logger = logging.getLogger(__name__)


@dataclass
class UserState:
    """
    What an incremental update needs to know about one user; `UserState()` is a user with no history yet.

    Attributes:
        history_token_ids: token ids of the kept history items, most recent first (at most `max_history_items`).
        sessions: the packed sessions' token ids, oldest first.
        session_states: `(G, L, d)` encoder states of `sessions` (padded to the longest session).
        user_embeddings: `(K, d)` the current UPE.
        attention_weights: `(K, n + 1)` poly-attention weights over the history items (oldest first) and `h_sum`,
            for [`embsum_hf.serving.explain`].
    """

    history_token_ids: list[list[int]] = field(default_factory=list)
    sessions: list[list[int]] = field(default_factory=list)
    session_states: torch.Tensor | None = None
    user_embeddings: torch.Tensor | None = None
    attention_weights: torch.Tensor | None = None


def update_user(
    model: EmbSumModel,
    processor: EmbSumProcessor,
    state: UserState,
    new_items: Sequence[Mapping[str, Any]],
) -> tuple[UserState, torch.Tensor]:
    """
    Add `new_items` (item dicts, most recent first) to a user's history and recompute the UPE, re-encoding only the
    sessions whose token ids changed. `update_user(model, processor, UserState(), history)` encodes a user from
    scratch. Equal (up to float rounding) to `model.encode_user` on the whole new history.

    Returns:
        the new state (the old one is left unchanged) and the UPE `(1, K, d)`.
    """
    config = model.config
    history = (processor.tokenize_items(new_items) + state.history_token_ids)[: config.max_history_items]
    sessions = processor.pack_sessions(history)
    batch = processor.pad_users([sessions]).to(model.device)
    ids, mask = batch["session_input_ids"], batch["session_attention_mask"]  # (1, G, L)
    changed = [g for g, session in enumerate(sessions) if g >= len(state.sessions) or state.sessions[g] != session]
    with evaluating(model):
        states = torch.zeros(*ids.shape, config.hidden_size, device=model.device, dtype=model.dtype)  # (1, G, L, d)
        for g, session in enumerate(sessions):
            if g not in changed:
                states[0, g, : len(session)] = state.session_states[g, : len(session)]
        if changed:
            states[0, changed] = model.encode_rows(ids[0, changed], mask[0, changed])  # (C, L, d)
        output = model.encode_user(ids, mask, session_states=states, output_details=True)
    logger.debug("user update: %d of %d sessions re-encoded", len(changed), len(sessions))
    new_state = UserState(
        history_token_ids=history,
        sessions=sessions,
        session_states=states[0],
        user_embeddings=output.user_embeddings[0],
        attention_weights=output.attention_weights[0],
    )
    return new_state, output.user_embeddings


__all__ = ["UserState", "update_user"]
