"""Token embeddings from the catalogue's own text, for a model trained from scratch (no pretrained backbone)."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence

import torch

logger = logging.getLogger(__name__)


def lsa_token_embeddings(
    documents: Sequence[Sequence[int]], vocab_size: int, dim: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Latent semantic analysis of the items' token ids: the truncated SVD of the TF-IDF token x item matrix (`1 +
    log tf` times `log(N / df)`), a token's vector being its row of `U S^(1/2)`, scaled to unit standard deviation
    (T5's embedding initialisation). Tokens that occur in the same items get close vectors, so a model trained from
    scratch starts with the lexical similarity that TF-IDF ranks by, instead of learning it from clicks.

    Args:
        documents: token ids of each item (e.g. [`EmbSumProcessor.tokenize_items`]).
        vocab_size: rows of the embedding matrix; ids at or above it are ignored.
        dim: width of the vectors (the model's `d_model`).
        generator: seeds the randomised SVD (`torch.svd_lowrank` draws from the global generator otherwise).

    Returns:
        `(vectors (vocab_size, dim), seen (vocab_size,) bool)`: rows of tokens that occur in no item are 0 and not
        `seen` (keep their random initialisation).
    """
    rows, cols, values = [], [], []
    df: Counter = Counter()
    counts = []
    for document in documents:
        tf = Counter(token for token in document if 0 <= token < vocab_size)
        counts.append(tf)
        df.update(tf.keys())
    n = len(counts)
    for col, tf in enumerate(counts):
        for token, count in tf.items():
            rows.append(token)
            cols.append(col)
            values.append((1.0 + math.log(count)) * math.log(n / df[token]))
    seen = torch.zeros(vocab_size, dtype=torch.bool)
    seen[list(df)] = True
    if not values or n < 2:
        return torch.zeros(vocab_size, dim), torch.zeros(vocab_size, dtype=torch.bool)
    matrix = torch.sparse_coo_tensor(
        [rows, cols], values, (vocab_size, n), dtype=torch.float32, check_invariants=False
    ).coalesce()
    rank = min(dim, n - 1, int(seen.sum()) - 1)
    state = torch.random.get_rng_state()
    if generator is not None:
        torch.random.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
    try:
        u, s, _ = torch.svd_lowrank(matrix, q=rank, niter=4)
    finally:
        torch.random.set_rng_state(state)
    vectors = torch.zeros(vocab_size, dim)
    vectors[:, :rank] = u * s.sqrt()
    used = vectors[seen]
    vectors[seen] = used / used.std().clamp_min(1e-12)
    vectors[~seen] = 0.0  # rounding leaves traces on rows of tokens no item holds
    logger.info("LSA token embeddings: %d tokens of %d items, rank %d", int(seen.sum()), n, rank)
    return vectors, seen
