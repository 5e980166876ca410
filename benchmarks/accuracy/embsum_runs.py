"""EmbSum under the budget: the package recipe (`build_model_and_processor`, `build_trainer`) trained until the
CPU-time budget ends and scored like every other system; the heuristic teacher's summaries it trains on; the item
token lengths under the shared tokenizer."""

from __future__ import annotations

import dataclasses
import logging
import statistics
from pathlib import Path

import numpy as np
import torch
from transformers import set_seed

from embsum_hf.data.schema import RecommendationData
from embsum_hf.modeling_embsum import EmbSumModel
from embsum_hf.processing_embsum import EmbSumProcessor
from embsum_hf.teacher import HeuristicBackend, SummaryStore, summarize_users, user_histories
from embsum_hf.training import EmbSumTrainingArguments, ImpressionEvaluator, impression_metrics
from embsum_hf.training.evaluation import summary_rouge
from embsum_hf.training.item_prior import choose_prior_weight
from embsum_hf.training.recipe import (
    EmbSumRunArguments,
    Splits,
    build_model_and_processor,
    build_trainer,
    choose_data_levers,
)

from .budget import Optimisation, TimeBudget
from .results import METRICS, Result, cold_metrics

logger = logging.getLogger(__name__)


def heuristic_summaries(train: RecommendationData, folder: Path) -> dict[str, str]:
    """`HeuristicBackend` summaries of every train user's longest train history (user id -> text)."""
    with SummaryStore(folder / "heuristic_summaries.jsonl") as store:
        logger.info(
            "teacher: %s", summarize_users(user_histories(train), HeuristicBackend(), store, domain=train.domain)
        )
        return store.as_dict()


def train_under_budget(
    run_args: EmbSumRunArguments,
    train: RecommendationData,
    summaries: dict[str, str],
    optimisation: Optimisation,
    budget: TimeBudget,
    seed: int,
    output_dir: Path,
    training_overrides: dict | None = None,
) -> tuple[EmbSumModel, EmbSumProcessor]:
    """EmbSum from the package recipe (`choose_data_levers`, `build_model_and_processor`, `build_trainer`), trained
    until `budget` ends."""
    set_seed(seed)
    run_args = dataclasses.replace(run_args)  # the levers left unset are chosen from the data on a copy
    training_args = EmbSumTrainingArguments(
        output_dir=str(output_dir),
        max_steps=10**7,  # the time budget ends training
        per_device_train_batch_size=optimisation.batch_size,
        learning_rate=optimisation.learning_rate,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=optimisation.warmup_steps,
        max_grad_norm=optimisation.max_grad_norm,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=100,
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        seed=seed,
        **(training_overrides or {}),
    )
    choose_data_levers(run_args, training_args, train)
    model, processor = build_model_and_processor(run_args, train, summaries)
    trainer = build_trainer(model, processor, training_args, Splits(train, None, None), summaries, callbacks=[budget])
    trainer.train()
    return trainer.model, processor


def train_embsum(
    run_args: EmbSumRunArguments,
    train: RecommendationData,
    test: RecommendationData,
    summaries: dict[str, str],
    optimisation: Optimisation,
    budget_seconds: float,
    seed: int,
    output_dir: Path,
    training_overrides: dict | None = None,
    rouge_users: int = 100,
    cold_test: RecommendationData | None = None,
    late_prior: tuple[dict[str, float], RecommendationData] | None = None,
) -> Result:
    """EmbSum trained under the CPU-time budget, scored on the test impressions (and ROUGE-L when it summarises, and
    the cold-start test when given: a cold film's prior is 0, so that is the content model's own ranking).

    `late_prior` = (item id -> fitted prior, dev split): the model is also scored fused with that prior, `content +
    w * prior`, `w` chosen on the dev split by `choose_prior_weight` (metrics `late_*`, the weight `late_weight`)."""
    budget = optimisation.budget(budget_seconds)
    model, processor = train_under_budget(
        run_args, train, summaries, optimisation, budget, seed, output_dir, training_overrides
    )
    evaluator = ImpressionEvaluator(test, processor)
    scores = evaluator.predict(model).scores
    result = Result(impression_metrics(scores, test.impressions["labels"], split=test.split), budget)
    if cold_test is not None:
        result.metrics.update(cold_metrics(ImpressionEvaluator(cold_test, processor).predict(model).scores, cold_test))
    if late_prior is not None:
        prior_of, dev = late_prior

        def prior_scores(data: RecommendationData) -> list[list[float]]:
            return [[prior_of.get(item, 0.0) for item in row] for row in data.impressions["candidates"]]

        dev_scores = scores if dev is test else ImpressionEvaluator(dev, processor).predict(model).scores
        weight, _ = choose_prior_weight(dev_scores, prior_scores(dev), dev.impressions["labels"])
        fused = [[s + weight * p for s, p in zip(ss, ps)] for ss, ps in zip(scores, prior_scores(test))]
        late = impression_metrics(fused, test.impressions["labels"], split=test.split)
        result.metrics.update({f"late_{name}": late[name] for name in METRICS}, late_weight=weight)
    if summaries and model.config.summary_loss_weight > 0:
        rouge, _ = summary_rouge(model, processor, test, summaries, max_users=rouge_users)
        result.metrics["rougeL"] = rouge.get("rougeL", float("nan"))
    if model.item_prior is not None:
        # the content model's own strength: the same weights scored with the prior dropped (every item cold)
        with torch.no_grad():
            model.item_prior.weight.zero_()
        content = impression_metrics(evaluator.predict(model).scores, test.impressions["labels"], split=test.split)
        result.metrics.update({f"content_{name}": content[name] for name in METRICS})
    return result


def item_length_report(processor: EmbSumProcessor, items) -> str:
    """Token lengths of the items (with `<sos>`) under the trained tokenizer, against the item budget."""
    texts = [processor.format_item(row) for row in items]
    lengths = [1 + len(ids) for ids in processor.tokenizer(texts, add_special_tokens=False)["input_ids"]]
    budget = processor.config.item_max_tokens
    return (
        f"item tokens (with <sos>): median {statistics.median(lengths):.0f}, p99 {np.percentile(lengths, 99):.0f}, "
        f"max {max(lengths)}; budget {budget}, {sum(n > budget for n in lengths)} items truncated; "
        f"vocabulary {len(processor.tokenizer)}"
    )
