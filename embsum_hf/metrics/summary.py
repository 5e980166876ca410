"""ROUGE of generated user-interest summaries against the teacher LLM's summaries."""

from __future__ import annotations

from collections.abc import Sequence

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge_scores(predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = True) -> dict:
    """Mean ROUGE-1 / ROUGE-2 / ROUGE-L F-measure (fractions in [0, 1]) of `predictions` against `references`.

    Uses the `rouge-score` package (the implementation behind the Hub's `rouge` metric), which lowercases and keeps
    alphanumeric tokens only. Returns `{"rouge1", "rouge2", "rougeL", "num_summaries"}`; ROUGE is NaN for no pairs.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    from rouge_score import rouge_scorer  # imports nltk (seconds): only when ROUGE is computed

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)  # (target, prediction)
        for name in ROUGE_TYPES:
            totals[name] += scores[name].fmeasure
    n = len(predictions)
    result: dict = {name: (total / n if n else float("nan")) for name, total in totals.items()}
    result["num_summaries"] = n
    return result
