"""Ranking stored items for users: exact `poly_relevance` top-k over any number of items, optionally after a FAISS
candidate prefilter.

Exact ranking takes the users in blocks and walks the items in chunks with a running top-k, so its working memory is
bounded by `user_batch_size x chunk_size` whatever the numbers of users and items (the stored tensors themselves are
`N x M x d`). The prefilter trades a little recall for speed on large catalogues: an inner-product IVF index over the
items' mean CPE codes, queried with the users' mean UPE codes; the hits are re-ranked exactly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

import torch

from ..modeling_embsum import poly_relevance
from .store import EmbeddingStore, StoreMismatchError, check_finite

logger = logging.getLogger(__name__)

# elements of one chunk's (users, chunk, K*M) score tensors: 1 MiB in float32 stays in cache (4096 items for one
# user); at least _MIN_CHUNK items so a block of users still multiplies by a wide item matrix
_CHUNK_ELEMENTS = 1 << 18
_MIN_CHUNK = 64
# users ranked together: enough GEMM rows (x K codes) to be compute-bound, few enough to keep their UPEs in cache
_USER_BLOCK = 128
# elements of the candidates' CPEs gathered for one batch of users in `rerank` (64 MiB in float32)
_GATHER_ELEMENTS = 1 << 24


class Recommendations(NamedTuple):
    """Top-k items per user, best first: `scores` `(B, k)` and the matching `item_ids` (B lists of k ids)."""

    scores: torch.Tensor
    item_ids: list[list[str | None]]


def top_k_scores(
    user_embeddings: torch.Tensor,
    item_embeddings: torch.Tensor,
    item_keys: torch.Tensor,
    k: int,
    *,
    chunk_size: int | None = None,
    user_batch_size: int = _USER_BLOCK,
    exclude: Sequence[torch.Tensor] | None = None,
    item_prior: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Exact top-k of `poly_relevance` over all items: users in blocks of `user_batch_size`, each block walking the
    items in chunks with a running top-k, so working memory is bounded whatever the numbers of users and items.

    Args:
        user_embeddings: `(B, K, d)` UPEs.
        item_embeddings, item_keys: `(N, M, d)` CPEs and `gelu(CPE W_s)`; any float dtype (upcast per chunk).
        k: items to return per user (at most `N`).
        chunk_size: items scored at once; by default as many as keep one chunk's `(block, chunk, K*M)` scores near
            256K elements (at least 64 items). Any value gives the same result.
        user_batch_size: users scored together (one GEMM row block). Any value gives the same result.
        exclude: per user, item row indices never to return (e.g. items already seen), as `B` long tensors.
        item_prior: `(N,)` the model's optional item prior (`EmbSumConfig.item_prior_ids`), added to every score.

    Returns:
        scores `(B, k)` float32, best first, and item row indices `(B, k)`; where exclusions leave a user fewer
        than `k` items, the tail is `-inf` / `-1`, as in [`rerank`].
    """
    if user_batch_size < 1 or (chunk_size is not None and chunk_size < 1):
        raise ValueError(f"user_batch_size ({user_batch_size}) and chunk_size ({chunk_size}) must be positive")
    if exclude is not None and len(exclude) != len(user_embeddings):
        raise ValueError(f"exclude has {len(exclude)} entries for {len(user_embeddings)} users")
    batch, num_codes, _ = user_embeddings.shape
    total, item_codes, _ = item_embeddings.shape
    device = user_embeddings.device
    k = min(k, total)
    block = max(1, min(user_batch_size, batch))  # max: an empty batch of users
    chunk = chunk_size or max(_MIN_CHUNK, _CHUNK_ELEMENTS // (block * num_codes * item_codes))
    all_scores = [torch.empty((0, k), device=device)]  # what an empty batch of users gets
    all_indices = [torch.empty((0, k), dtype=torch.long, device=device)]
    for first in range(0, batch, block):
        block_users = user_embeddings[first : first + block].float()  # upcast a block at a time, as the items
        best_scores = block_users.new_empty((len(block_users), 0))
        best_indices = torch.empty((len(block_users), 0), dtype=torch.long, device=device)
        if exclude is not None:  # (user in block, item row) pairs never to return
            banned_users, banned_items = _pairs(exclude[first : first + block], device)
        for start in range(0, total, chunk):
            stop = min(start + chunk, total)
            # chunks move to the users' device and float32 one at a time: a CPU store can serve a GPU ranker
            chunk_items = item_embeddings[start:stop].to(device, torch.float32)
            chunk_keys = item_keys[start:stop].to(device, torch.float32)
            scores = poly_relevance(block_users, chunk_items, chunk_keys)  # (block, c)
            if item_prior is not None:
                scores = scores + item_prior[start:stop].to(device, torch.float32)
            if exclude is not None:
                here = (banned_items >= start) & (banned_items < stop)
                scores[banned_users[here], banned_items[here] - start] = float("-inf")
            indices = torch.arange(start, stop, device=device).expand(len(block_users), -1)
            scores, indices = torch.cat([best_scores, scores], 1), torch.cat([best_indices, indices], 1)
            top = scores.topk(min(k, scores.shape[1]), dim=1)
            best_scores, best_indices = top.values, indices.gather(1, top.indices)
        all_scores.append(best_scores)
        all_indices.append(best_indices.masked_fill(best_scores == float("-inf"), -1))  # excluded: no item
    return torch.cat(all_scores), torch.cat(all_indices)


def _pairs(rows: Sequence[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten per-user index lists into (user position, index) pairs."""
    users = [torch.full((len(row),), position, dtype=torch.long) for position, row in enumerate(rows)]
    if not users:
        empty = torch.empty(0, dtype=torch.long, device=device)
        return empty, empty
    return torch.cat(users).to(device), torch.cat([torch.as_tensor(row, dtype=torch.long) for row in rows]).to(device)


def rerank(
    user_embeddings: torch.Tensor,
    item_embeddings: torch.Tensor,
    item_keys: torch.Tensor,
    candidates: torch.Tensor,
    k: int,
    item_prior: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Exact `poly_relevance` top-k among each user's candidates.

    Args:
        user_embeddings: `(B, K, d)`.
        item_embeddings, item_keys: `(N, M, d)`.
        candidates: `(B, C)` item row indices, `-1` padded.
        item_prior: `(N,)` the model's optional item prior, added to every score.

    Returns:
        scores `(B, k)` and item indices `(B, k)`; where a user has fewer than `k` candidates the tail is `-inf`/`-1`.
    """
    users = user_embeddings.float()
    batch, num_candidates = candidates.shape
    k = min(k, num_candidates)
    per_user = num_candidates * item_embeddings.shape[1] * item_embeddings.shape[2]  # gathered elements
    step = max(1, _GATHER_ELEMENTS // max(1, per_user))
    all_scores, all_indices = [], []
    for start in range(0, batch, step):
        rows = candidates[start : start + step]  # (b, C)
        safe = rows.clamp(min=0).to(item_embeddings.device)
        gathered = item_embeddings[safe].to(users.device, torch.float32)  # (b, C, M, d)
        gathered_keys = item_keys[safe].to(users.device, torch.float32)
        rows = rows.to(users.device)
        scores = poly_relevance(users[start : start + step], gathered, gathered_keys)
        if item_prior is not None:
            scores = scores + item_prior[safe].to(users.device, torch.float32)
        scores = scores.masked_fill(rows < 0, float("-inf"))  # (b, C)
        top = scores.topk(k, dim=1)
        all_scores.append(top.values)
        all_indices.append(rows.gather(1, top.indices))
    return torch.cat(all_scores), torch.cat(all_indices)


def _require_faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "FaissPrefilter needs FAISS: `pip install faiss-cpu` (or `pip install embsum_hf[faiss]`)"
        ) from error
    return faiss


class FaissPrefilter:
    """
    Candidate retrieval for [`recommend`]: an inner-product IVF index over each item's mean CPE code
    `v_bar = mean_m v_m` (centred over the catalogue), searched with each user's mean UPE code `u_bar`; the hits
    are re-ranked exactly.

    Why the means: with uniform pair weights the score `sum_am w_am u_a . v_m` is exactly `u_bar . v_bar`, so this
    search ranks by the score's weight-free part; the softmax weights only reorder items it already retrieves,
    which `num_candidates` (many more than `k`) leaves room for. Very peaked weights make the proxy weaker: check
    `recall_at_k` against exact ranking on your own embeddings.

    Args:
        item_embeddings: `(N, M, d)` stored CPEs (any float dtype).
        nlist: IVF lists; default `sqrt(N)` rounded.
        nprobe: lists visited per query; default `max(16, nlist // 16)`.
        num_candidates: items retrieved per user; default `max(400, 40 * k)` at query time.
        seed: sampling seed of the k-means training set.
    """

    def __init__(
        self,
        item_embeddings: torch.Tensor,
        *,
        nlist: int | None = None,
        nprobe: int | None = None,
        num_candidates: int | None = None,
        seed: int = 0,
    ):
        for name, value in (("nlist", nlist), ("nprobe", nprobe), ("num_candidates", num_candidates)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer (or unset for the default), got {value!r}")
        faiss = _require_faiss()
        num_items, _, dim = item_embeddings.shape
        self.nlist = nlist or max(1, round(math.sqrt(num_items)))
        self.nprobe = min(self.nlist, nprobe or max(16, self.nlist // 16))
        self.num_candidates = num_candidates
        self.seed = seed
        step = 1 << 16
        means = torch.cat([item_embeddings[i : i + step].float().mean(1) for i in range(0, num_items, step)])  # (N, d)
        # Centring changes every score of a query by the same constant (q . mean), so rankings are unchanged; it
        # removes the large direction all CPEs share, which otherwise makes the IP k-means lists useless.
        means = means - means.mean(0)
        self.index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
        # 40 points per list is enough for k-means here and keeps training to seconds at 100k items
        sample = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed))[: 40 * self.nlist]
        self.index.train(means[sample].contiguous().numpy())
        self.index.add(means.contiguous().numpy())
        self.index.nprobe = self.nprobe
        logger.info("FAISS IVF index over %d items: nlist %d, nprobe %d", num_items, self.nlist, self.nprobe)

    @classmethod
    def from_store(cls, store: EmbeddingStore, **kwargs) -> FaissPrefilter:
        """Index an item store's CPEs."""
        if store.kind != "items":
            raise StoreMismatchError(f"{store.path} holds {store.kind}, a prefilter indexes items")
        return cls(store.embeddings, **kwargs)

    @property
    def settings(self) -> dict[str, int | None]:
        """What decides its candidates (besides the items): recorded by jobs that resume."""
        return {"nlist": self.nlist, "nprobe": self.nprobe, "num_candidates": self.num_candidates, "seed": self.seed}

    def candidates(self, user_embeddings: torch.Tensor, k: int) -> torch.Tensor:
        """Candidate item rows `(B, C)` (`-1` where the index found fewer) for users `(B, K, d)` wanting `k` items."""
        queries = user_embeddings.detach().float().mean(1).cpu().contiguous().numpy()  # (B, d)
        _, hits = self.index.search(queries, self.num_candidates or max(400, 40 * k))
        return torch.from_numpy(hits).long()


def recall_at_k(approximate: torch.Tensor, exact: torch.Tensor) -> float:
    """Mean fraction of the exact top-k indices `(B, k)` that the approximate top-k `(B, k)` also returns."""
    hits = (approximate[:, :, None] == exact[:, None, :]).any(1).float()  # (B, k)
    return float(hits.mean())


def check_stores(users: EmbeddingStore | None, items: EmbeddingStore) -> None:
    """Refuse stores of the wrong kind, or a user and an item store written by different models."""
    if items.kind != "items":
        raise StoreMismatchError(f"{items.path} holds {items.kind}, expected an item store")
    if users is None:
        return
    if users.kind != "users":
        raise StoreMismatchError(f"{users.path} holds {users.kind}, expected a user store")
    if users.fingerprint != items.fingerprint:
        raise StoreMismatchError(
            f"user store {users.path} (model {users.fingerprint}) and item store {items.path} "
            f"(model {items.fingerprint}) come from different models"
        )


def recommend(
    users: torch.Tensor | EmbeddingStore,
    items: EmbeddingStore,
    k: int = 10,
    *,
    user_ids: list[str] | None = None,
    chunk_size: int | None = None,
    prefilter: FaissPrefilter | None = None,
    exclude: Mapping[str, Collection[str]] | Sequence[Collection[str]] | None = None,
) -> Recommendations:
    """
    The `k` best items of an item store for each user, by exact `poly_relevance`.

    Args:
        users: UPEs `(B, K, d)`, or a user store (all its users, or those named by `user_ids`); a user store must
            come from the same model as `items` (same fingerprint).
        items: an item store (`embeddings`, `keys` and, for a model with an item prior, `prior`, added to the
            scores; the FAISS prefilter retrieves by content alone, the re-ranking adds the prior).
        chunk_size: see [`top_k_scores`]; ignored with a prefilter (only candidates are scored).
        prefilter: rank only the candidates it retrieves (approximate: see `recall_at_k`).
        exclude: item ids never to recommend to a user, e.g. the items in their history: a mapping user id -> ids
            (with a user store), or one collection per row of `users`. Ids not in `items` are ignored.

    A user left with fewer than `k` items (a small catalogue, exclusions, a prefilter) gets `None` ids and `-inf`
    scores in the tail.
    """
    check_stores(users if isinstance(users, EmbeddingStore) else None, items)
    row_ids = None
    if isinstance(users, EmbeddingStore):
        row_ids = users.ids if user_ids is None else list(user_ids)
        upe = users.embeddings if user_ids is None else users.embeddings[users.positions(user_ids)]
    else:
        upe = users
        check_finite(upe, [], "user embeddings")  # store rows are checked as they are read
    banned = None
    if exclude is not None:
        if isinstance(exclude, Mapping):
            if row_ids is None:
                raise ValueError("exclude as a user id -> item ids mapping needs a user store; pass one list per row")
            exclude = [exclude.get(user_id, ()) for user_id in row_ids]
        banned = [items.positions(list(ids), skip_unknown=True) for ids in exclude]
    if prefilter is None:
        scores, indices = top_k_scores(
            upe, items.embeddings, items.keys, k, chunk_size=chunk_size, exclude=banned, item_prior=items.prior
        )
    else:
        candidates = prefilter.candidates(upe, k)
        if banned is not None:
            candidates = _drop_pairs(candidates, banned)
        scores, indices = rerank(upe, items.embeddings, items.keys, candidates, k, item_prior=items.prior)
    item_ids = [[items.ids[i] if i >= 0 else None for i in row] for row in indices.tolist()]
    return Recommendations(scores, item_ids)


def _drop_pairs(candidates: torch.Tensor, banned: Sequence[torch.Tensor]) -> torch.Tensor:
    """`candidates` `(B, C)` with every banned (user row, item) pair replaced by -1."""
    users, items = _pairs(banned, candidates.device)
    if len(items) == 0:
        return candidates
    width = int(max(int(candidates.max()), int(items.max()))) + 1
    keys = torch.arange(len(candidates), device=candidates.device)[:, None] * width + candidates
    hit = torch.isin(keys, users * width + items) & (candidates >= 0)
    return candidates.masked_fill(hit, -1)


__all__ = [
    "FaissPrefilter",
    "Recommendations",
    "check_stores",
    "recall_at_k",
    "recommend",
    "rerank",
    "top_k_scores",
]
