"""Joint training (click NCE + summary NLL) and whole-impression evaluation of EmbSum."""

from .arguments import EmbSumTrainingArguments, ModelArguments
from .collator import EmbSumDataCollator, TrainingExamples, tokenize_item_table
from .evaluation import ImpressionEvaluator, ImpressionPredictions, baseline_scores, impression_metrics, summary_rouge
from .trainer import EmbSumTrainer, default_hp_space

__all__ = [
    "EmbSumDataCollator",
    "EmbSumTrainer",
    "EmbSumTrainingArguments",
    "ImpressionEvaluator",
    "ImpressionPredictions",
    "ModelArguments",
    "TrainingExamples",
    "baseline_scores",
    "default_hp_space",
    "impression_metrics",
    "summary_rouge",
    "tokenize_item_table",
]
