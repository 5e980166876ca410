"""Quality of generated user-interest summaries against the teacher LLM's: ROUGE, and the metrics ROUGE cannot replace.

With a shared template ("The viewer is interested in A, B, C, D and E."), one constant sentence scores a high ROUGE
against every user's teacher summary, and so does a collapsed model that writes the population's most frequent words
for everybody. [`summary_metrics`] therefore reports, next to ROUGE:

- `constant_rouge1/2/L`: ROUGE of one constant sentence (the most typical teacher summary, [`constant_summary`])
  against every reference. A model should beat it.
- `specificity_gap`: mean ROUGE-L of each summary against its own user's teacher summary minus against a random
  other user's (seeded). It measures how much a summary says about *this* user; a collapsed model scores about 0 (and
  a warning is logged below [`COLLAPSE_GAP_THRESHOLD`]).
- `distinct_summaries`: the share of distinct summaries (1.0: every user has their own; 1/n: one for everybody).
- `distinct_1`, `distinct_2`: distinct unigrams / bigrams over all unigrams / bigrams of all summaries.
- `repeated_token_rate`: the share of tokens that repeat an earlier token of the same summary ("adventure,
  adventure, adventure").
- `malformed_rate`: the share of summaries that break the teacher's template "<lead> A, B, C, D and E." (see
  [`malformed_summary`]): an interest slot that is empty or only stop-words ("interested in and love", "novel, as
  and thought-provoking"), a content word written twice, or no lead at all.

Tokens are ROUGE's: lowercased alphanumeric runs.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Collection, Sequence

from ..configuration_embsum import DEFAULT_SUMMARY_SLOT_LEAD, SLOT_STOPWORDS

logger = logging.getLogger(__name__)

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")

COLLAPSE_GAP_THRESHOLD = 0.02
"""A specificity gap (ROUGE-L, own minus other user's teacher summary) below this logs a collapse warning: the
summaries describe the population, not the user. On `benchmarks/summary_quality.py` (159 held-out users) one constant
sentence scores 0.002, the teacher-nearest-neighbour baseline 0.066 and the teacher itself 0.314."""


def _scorer(use_stemmer: bool, types: Sequence[str] = ROUGE_TYPES):
    from rouge_score import rouge_scorer  # imports nltk (seconds): only when ROUGE is computed

    return rouge_scorer.RougeScorer(list(types), use_stemmer=use_stemmer)


def _mean_scores(scorer, predictions: Sequence[str], references: Sequence[str], types: Sequence[str]) -> dict:
    totals = dict.fromkeys(types, 0.0)
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)  # (target, prediction)
        for name in types:
            totals[name] += scores[name].fmeasure
    n = len(predictions)
    return {name: (total / n if n else float("nan")) for name, total in totals.items()}


def _check_lengths(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")


def rouge_scores(predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = True) -> dict:
    """Mean ROUGE-1 / ROUGE-2 / ROUGE-L F-measure (fractions in [0, 1]) of `predictions` against `references`.

    Uses the `rouge-score` package (the implementation behind the Hub's `rouge` metric), which lowercases and keeps
    alphanumeric tokens only. Returns `{"rouge1", "rouge2", "rougeL", "num_summaries"}`; ROUGE is NaN for no pairs.
    """
    _check_lengths(predictions, references)
    result: dict = _mean_scores(_scorer(use_stemmer), predictions, references, ROUGE_TYPES)
    result["num_summaries"] = len(predictions)
    return result


def _tokens(texts: Sequence[str]) -> list[list[str]]:
    from rouge_score.tokenizers import DefaultTokenizer

    tokenizer = DefaultTokenizer(use_stemmer=False)
    return [tokenizer.tokenize(text) for text in texts]


def distinct_ngrams(texts: Sequence[str], n: int) -> float:
    """Distinct-n (Li et al., 2016): distinct n-grams over all n-grams of all `texts` (NaN when there are none)."""
    grams = [tuple(tokens[i : i + n]) for tokens in _tokens(texts) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def repeated_token_rate(texts: Sequence[str]) -> float:
    """The share of tokens that repeat an earlier token of the same text (NaN when there are no tokens)."""
    token_lists = _tokens(texts)
    total = sum(len(tokens) for tokens in token_lists)
    repeats = sum(len(tokens) - len(set(tokens)) for tokens in token_lists)
    return repeats / total if total else float("nan")


SLOT_SEPARATOR = re.compile(r",|\band\b", re.IGNORECASE)


def summary_slots(text: str, lead: str = DEFAULT_SUMMARY_SLOT_LEAD) -> list[list[str]] | None:
    """
    The words of each interest slot of `text` under the template "<...> `lead` A, B, C, D and E.": the pieces after
    the first `lead` (case-insensitive; default "interested in", the teachers' "The reader/viewer/user is interested
    in"), up to a closing ".", split at commas and at the word "and"; words are ROUGE's tokens (lowercased
    alphanumeric runs). None when `text` has no lead.
    """
    found = re.search(rf"\b{re.escape(lead)}\b", text, re.IGNORECASE)
    if found is None:
        return None
    rest = text[found.end() :].strip()
    rest = rest[:-1] if rest.endswith(".") else rest
    return [_tokens([slot])[0] for slot in SLOT_SEPARATOR.split(rest)]


def malformed_summary(text: str, lead: str = DEFAULT_SUMMARY_SLOT_LEAD) -> bool:
    """
    Whether `text` breaks the template "<...> `lead` A, B, C, D and E." ([`summary_slots`]). It is malformed when the
    lead is missing, a slot is empty ("in and love", "A, , B", "A and.") or holds only stop-words
    ([`SLOT_STOPWORDS`]: "novel, as and thought-provoking"), or a word that is no stop-word occurs twice among the
    slots ("adventure, adventure", "love and love story").
    """
    slots = summary_slots(text, lead)
    if slots is None:
        return True
    if any(all(word in SLOT_STOPWORDS for word in slot) for slot in slots):  # all() of an empty slot is True
        return True
    content = [word for slot in slots for word in slot if word not in SLOT_STOPWORDS]
    return len(content) != len(set(content))


def malformed_rate(texts: Sequence[str], lead: str = DEFAULT_SUMMARY_SLOT_LEAD) -> float:
    """The share of `texts` that are [`malformed_summary`] (NaN when there are none)."""
    return sum(malformed_summary(text, lead) for text in texts) / len(texts) if texts else float("nan")


def nonword_rate(texts: Sequence[str], words: Collection[str], lead: str = DEFAULT_SUMMARY_SLOT_LEAD) -> float:
    """
    The share of `texts` with a slot word ([`summary_slots`]) that is not among `words` (lower-cased; e.g. the words
    of the training summaries, `EmbSumProcessor.summary_words`): a word piece run on into a non-word ("selen",
    "gainesbtractingale"). A text without the lead has none. NaN when there are no texts.
    """
    known = {word.lower() for word in words}
    found = [summary_slots(text, lead) or [] for text in texts]
    return (
        sum(any(word not in known for slot in slots for word in slot) for slots in found) / len(texts)
        if texts
        else float("nan")
    )


def constant_summary(
    summaries: Sequence[str], *, candidates: int = 50, sample: int = 200, seed: int = 0, use_stemmer: bool = True
) -> str:
    """
    The most typical of `summaries`: the constant sentence a collapsed model would do best to write. Candidates are
    the `candidates` most frequent texts (ties: first seen), topped up with a seeded sample of the others when they are
    fewer; the one with the highest mean ROUGE-L against a seeded sample of `sample` summaries wins. When one summary
    dominates (a template collapse in the teacher) that is the most frequent one.
    """
    if not summaries:
        raise ValueError("constant_summary needs at least one summary")
    rng = random.Random(seed)
    counts = Counter(summaries)
    pool = [text for text, _ in counts.most_common(candidates)]  # most_common keeps first-seen order on ties
    if len(pool) < candidates and len(counts) > len(pool):
        rest = [text for text in counts if text not in set(pool)]
        pool += rng.sample(rest, min(candidates - len(pool), len(rest)))
    targets = list(summaries) if len(summaries) <= sample else rng.sample(list(summaries), sample)
    scorer = _scorer(use_stemmer, ("rougeL",))
    return max(pool, key=lambda text: _mean_scores(scorer, [text] * len(targets), targets, ("rougeL",))["rougeL"])


def other_user_references(references: Sequence[str], seed: int = 0) -> list[str]:
    """For each position, the reference of a seeded random *other* position (an empty list below two references)."""
    n = len(references)
    if n < 2:
        return []
    rng = random.Random(seed)
    return [references[(i + rng.randrange(1, n)) % n] for i in range(n)]


def summary_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    constant: str | None = None,
    seed: int = 0,
    use_stemmer: bool = True,
    lead: str = DEFAULT_SUMMARY_SLOT_LEAD,
    words: Collection[str] | None = None,
) -> dict:
    """
    ROUGE of `predictions` against their own `references` (the teacher summaries of the same users, in order) plus
    the metrics it cannot be fooled by (see the module docstring): `constant_rouge1/2/L`, `rougeL_other_user`,
    `specificity_gap`, `distinct_summaries`, `distinct_1`, `distinct_2`, `repeated_token_rate`, `malformed_rate`
    (against the template lead `lead`), `num_summaries`, and given `words` (the words a summary may use, e.g. the
    training summaries') `nonword_rate` ([`nonword_rate`]).

    `constant` is the constant-sentence baseline; default [`constant_summary`] of `references` (pass the one of the
    training summaries when you have them). `seed` draws the other users of the specificity gap. Logs a warning when
    the gap is below [`COLLAPSE_GAP_THRESHOLD`]. Values are fractions (the gap may be negative); NaN when undefined.
    """
    _check_lengths(predictions, references)
    n = len(predictions)
    nan = float("nan")
    scorer = _scorer(use_stemmer)
    result: dict = _mean_scores(scorer, predictions, references, ROUGE_TYPES)
    if n:
        constant = (
            constant if constant is not None else constant_summary(references, seed=seed, use_stemmer=use_stemmer)
        )
        baseline = _mean_scores(scorer, [constant] * n, references, ROUGE_TYPES)
    else:
        baseline = dict.fromkeys(ROUGE_TYPES, nan)
    result.update({f"constant_{name}": value for name, value in baseline.items()})
    others = other_user_references(references, seed)
    other = (
        _mean_scores(_scorer(use_stemmer, ("rougeL",)), predictions, others, ("rougeL",))["rougeL"] if others else nan
    )
    result["rougeL_other_user"] = other
    result["specificity_gap"] = result["rougeL"] - other if others else nan
    result["distinct_summaries"] = len({text.strip() for text in predictions}) / n if n else nan
    result["distinct_1"] = distinct_ngrams(predictions, 1)
    result["distinct_2"] = distinct_ngrams(predictions, 2)
    result["repeated_token_rate"] = repeated_token_rate(predictions)
    result["malformed_rate"] = malformed_rate(predictions, lead)
    if words is not None:
        result["nonword_rate"] = nonword_rate(predictions, words, lead)
    result["num_summaries"] = n
    if others and result["specificity_gap"] < COLLAPSE_GAP_THRESHOLD:
        logger.warning(
            "summaries barely depend on the user: specificity gap %.3f < %.2f (ROUGE-L %.3f against their own teacher "
            "summaries, %.3f against other users'; %.0f%% distinct summaries over %d users). The model writes the "
            "population's summary, not this user's.",
            result["specificity_gap"],
            COLLAPSE_GAP_THRESHOLD,
            result["rougeL"],
            other,
            100 * result["distinct_summaries"],
            n,
        )
    return result
