"""A deterministic, LLM-free teacher: summaries from the history's most frequent categories and title keywords."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from .backends import TeacherBackend
from .prompts import SummaryRequest, get_domain

# common English words that carry no interest signal in titles
STOPWORDS = frozenset(
    """a about after again against all an and any are as at be because been before being between both but by can
    could did do does during each few for from further had has have he her here hers him his how i if in into is it
    its just me more most my new no nor not now of off on once only or other our out over own same she should so some
    such than that the their them then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your says said year years one two first last""".split()
)
WORD = re.compile(r"[a-z][a-z'-]{2,}")
CATEGORY_SEPARATORS = re.compile(r"[|,]")  # MovieLens "Action|Comedy", lists like "fantasy, fiction"


def _ranked(values: Iterable[str], top: int) -> list[str]:
    """The `top` most frequent values; ties go to the value seen first (i.e. the more recent one)."""
    counts = Counter(values)  # insertion-ordered: index = order of first appearance
    first_seen = {value: i for i, value in enumerate(counts)}
    return sorted(counts, key=lambda v: (-counts[v], first_seen[v]))[:top]


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


class HeuristicBackend(TeacherBackend):
    """Three template sentences naming the top categories, the top title keywords and the latest category.

    For pipelines and tests without an LLM. Its summaries are stored with `backend="heuristic"` and should never be
    mistaken for LLM supervision.
    """

    name = "heuristic"

    def __init__(self, top_categories: int = 3, top_keywords: int = 4):
        self.top_categories = top_categories
        self.top_keywords = top_keywords

    def summarize(self, request: SummaryRequest) -> str:
        """The summary of one request (deterministic: same history, same summary)."""
        wording = get_domain(request.domain)
        categories = []
        for item in request.history:
            for key in wording.category_keys:
                value = item.get(key)
                values = value if isinstance(value, (list, tuple)) else CATEGORY_SEPARATORS.split(str(value or ""))
                categories.extend(str(v).strip().lower() for v in values if str(v).strip())
        keywords = [
            word
            for item in request.history
            for word in WORD.findall(str(item.get("title") or "").lower())
            if word not in STOPWORDS
        ]
        if not categories and not keywords:
            return f"The user has no {wording.items} with usable text, so no interests can be inferred."
        top = _ranked(categories, self.top_categories) or ["various topics"]
        sentences = [f"The user mostly {wording.activity} {wording.items} about {_join(top)}."]
        if keywords:
            sentences.append(f"Recurring topics include {_join(_ranked(keywords, self.top_keywords))}.")
        else:
            sentences.append(f"The {wording.items} span {len(set(categories))} distinct categories.")
        if categories:
            sentences.append(f"Most recently the user turned to {categories[0]}.")
        else:
            sentences.append(f"The user {wording.activity} {len(request.history)} {wording.items} recently.")
        return " ".join(sentences)

    def generate(self, requests: Sequence[SummaryRequest]) -> list[str | Exception]:
        return [self.summarize(request) for request in requests]
