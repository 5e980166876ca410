"""A deterministic, LLM-free teacher: summaries naming the categories and themes that recur across a history."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from .base import TeacherBackend
from .prompts import SummaryRequest, get_domain

# common English words that carry no interest signal in titles
STOPWORDS = frozenset(
    """a about after again against all an and any are as at be because been before being between both but by can
    could did do does during each few for from further had has have he her here hers him his how i if in into is it
    its just me more most my new no nor not now of off on once only or other our out over own same she should so some
    such than that the their them then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your says said year years one two first
    last""".split()
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


def _is_text_field(key: str, category_keys: Sequence[str]) -> bool:
    """Item fields read for themes: every text field but ids, links and the categories (counted on their own)."""
    key = key.lower()
    return key not in category_keys and key != "id" and not key.endswith(("_id", "url", "link"))


class HeuristicBackend(TeacherBackend):
    """Three template sentences naming the recurring categories and themes of a history.

    Reads whatever text the items have: their category fields when present (the domain's `category_keys`: genre,
    category, ...), and the words of every other text field (title, description, abstract, name, ...). A theme is a
    word found in at least two items (stopwords aside), ranked by the number of items naming it, so the summary
    names what recurs across the history rather than the words of one title. Without categories the themes lead.

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
        category_keys = tuple(key.lower() for key in wording.category_keys)
        categories, item_words = [], []
        for item in request.history:
            for key in wording.category_keys:
                value = item.get(key)
                values = value if isinstance(value, (list, tuple)) else CATEGORY_SEPARATORS.split(str(value or ""))
                categories.extend(str(v).strip().lower() for v in values if str(v).strip())
            text = " ".join(
                value for key, value in item.items() if isinstance(value, str) and _is_text_field(key, category_keys)
            )
            item_words.append([word for word in WORD.findall(text.lower()) if word not in STOPWORDS])
        if not categories and not any(item_words):
            return f"The user has no {wording.items} with usable text, so no interests can be inferred."
        items = len(request.history)
        # a theme recurs: it is named by at least two items; more items first, then more mentions, then more recent
        in_items = Counter(word for words in item_words for word in dict.fromkeys(words))
        mentions = Counter(word for words in item_words for word in words)
        named_categories = {word for category in categories for word in WORD.findall(category)}
        themes = [
            word for word in _ranked(mentions, len(mentions)) if in_items[word] >= 2 and word not in named_categories
        ]
        themes.sort(key=lambda word: -in_items[word])  # stable: mentions and recency break ties
        if categories:
            top = _ranked(categories, self.top_categories)
            count = Counter(categories)[top[0]]
            lead = f"The top category, {top[0]}, appears in {count} of the {items} {wording.items}."
        elif themes:
            top, themes = themes[: self.top_categories], themes[self.top_categories :]
            lead = f"The top theme, {top[0]}, appears in {in_items[top[0]]} of the {items} {wording.items}."
        else:
            # nothing recurs: one word from each of a few items spread over the whole history, not the latest title
            step = max(1, len(item_words) // self.top_keywords)
            spread = list(dict.fromkeys(_ranked(words, 1)[0] for words in item_words[::step] if words))
            if items == 1:
                return f"The user {wording.activity} one {wording.item}, about {_join(spread[: self.top_keywords])}."
            return (
                f"The user {wording.activity} {items} {wording.items} with no theme in common. "
                f"They mention {_join(spread[: self.top_keywords])}."
            )
        sentences = [f"The user mostly {wording.activity} {wording.items} about {_join(top)}."]
        if themes:
            sentences.append(f"Recurring topics include {_join(themes[: self.top_keywords])}.")
        else:
            sentences.append(f"The {wording.items} span {len(set(categories))} distinct categories.")
        sentences.append(lead)
        return " ".join(sentences)

    def generate(self, requests: Sequence[SummaryRequest]) -> list[str | Exception]:
        return [self.summarize(request) for request in requests]
