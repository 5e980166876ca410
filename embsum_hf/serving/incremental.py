"""Incremental user updates: when a user engages with new items, re-encode only the sessions that changed.

[`EmbSumProcessor.pack_sessions`] packs a history oldest first, so a new engagement changes only the newest session
(or opens a new one) and every older session stays token-for-token identical. A [`UserState`] keeps each session's
token ids and encoder states; [`update_user`] runs the T5 encoder on the changed sessions only, then the decoder and
the user poly-attention (which read all sessions) through `model.encode_user(..., session_states=...)`.
Once a history exceeds `config.max_history_items`, the oldest item drops out and every session shifts: those
updates re-encode everything, which this handles the same way (all sessions changed).

The update itself is `update_user_state` in the model's file (`modeling_embsum.py`), the one implementation that the
Space's app also runs (it loads that file with the model); this adds eval mode, no autograd and the log line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..modeling_embsum import EmbSumModel, UserState, update_user_state
from ..processing_embsum import EmbSumProcessor
from ..utils import evaluating

logger = logging.getLogger(__name__)


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
    with evaluating(model):
        new_state = update_user_state(model, processor, state, new_items)
    logger.debug("user update: %d of %d sessions re-encoded", new_state.sessions_encoded, len(new_state.sessions))
    return new_state, new_state.user_embeddings[None]


__all__ = ["UserState", "update_user"]
