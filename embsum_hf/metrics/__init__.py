"""Evaluation metrics: the official MIND ranking metrics (plain function and local `evaluate` module), ROUGE and the
summary metrics it cannot replace (constant-sentence baseline, specificity gap, distinct summaries)."""

from __future__ import annotations

from pathlib import Path

from .mind import candidate_ranks, compute_mind_metrics, read_prediction_file, write_prediction_file
from .summary import COLLAPSE_GAP_THRESHOLD, constant_summary, rouge_scores, summary_metrics

MIND_METRIC_PATH = Path(__file__).parent / "mind_metrics"
"""Folder of the local `evaluate` module (shipped as package data)."""


def load_mind_metric(**kwargs):
    """
    `evaluate.load` of the local MIND metrics module; needs no network, and the `evaluate` extra
    (`pip install "embsum_hf[evaluate]"`). `kwargs` go to `evaluate.load`.
    """
    try:
        import evaluate  # imported here: evaluate is slow to import and only this loader needs it
    except ImportError as error:
        raise ImportError('load_mind_metric needs the evaluate package: pip install "embsum_hf[evaluate]"') from error

    return evaluate.load(str(MIND_METRIC_PATH), **kwargs)


__all__ = [
    "COLLAPSE_GAP_THRESHOLD",
    "MIND_METRIC_PATH",
    "candidate_ranks",
    "compute_mind_metrics",
    "constant_summary",
    "load_mind_metric",
    "read_prediction_file",
    "rouge_scores",
    "summary_metrics",
    "write_prediction_file",
]
