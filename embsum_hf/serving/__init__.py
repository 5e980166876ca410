"""Serving EmbSum: offline embedding jobs, one store format for users and items, exact and FAISS-prefiltered
ranking, incremental user updates and score explanations.

Typical flow::

    items = encode_items(model, processor, item_dicts, "stores/items")        # resumable, multi-process
    users = encode_users(model, processor, user_histories, "stores/users")
    scores, item_ids = recommend(users, items, k=10)
    recommend_all(users, items, "recs/", k=10)                                # every user, to JSONL, resumable
    state, upe = update_user(model, processor, state, [new_item])            # re-encodes one session
    print(explain_recommendation(model, processor, history, item).text())

`faiss` is imported only by `FaissPrefilter`.
"""

from .batch import recommend_all
from .encode import SessionStateCache, encode_items, encode_users
from .explain import Explanation, HistoryContribution, PairContribution, explain, explain_recommendation
from .incremental import UserState, update_user
from .ranking import FaissPrefilter, Recommendations, check_stores, recall_at_k, recommend, rerank, top_k_scores
from .store import EmbeddingStore, StoreMismatchError, model_fingerprint

__all__ = [
    "EmbeddingStore",
    "Explanation",
    "FaissPrefilter",
    "HistoryContribution",
    "PairContribution",
    "Recommendations",
    "SessionStateCache",
    "StoreMismatchError",
    "UserState",
    "check_stores",
    "encode_items",
    "encode_users",
    "explain",
    "explain_recommendation",
    "model_fingerprint",
    "recall_at_k",
    "recommend",
    "recommend_all",
    "rerank",
    "top_k_scores",
    "update_user",
]
