"""Ranking accuracy of EmbSum-tiny against popularity, TF-IDF and NRMS on MovieLens 100K (real data, CPU).

Protocol
  Data: `load_movielens` (ratings > 3 clicked, < 3 not clicked, 3 dropped; each user's ratings grouped by time into
  impressions of 10) and `split_by_time` (each user's last impression -> test, the one before -> dev, the rest ->
  train). Every system is scored on the same test impressions with `impression_metrics`; impressions whose
  candidates are all clicked or all not clicked have no ranking and are skipped by the metrics (the count is
  printed). Dev is not used: no system does model selection, each learned model is evaluated with its final weights.

Systems
  random, popularity  `baseline_scores` (popularity = clicks per item in train).
  tfidf               sklearn TF-IDF (fit on the whole items table: text only, no labels) over each item's text
                      formatted exactly as EmbSum reads it (the processor's movielens template); user profile = mean
                      TF-IDF vector of the history window; score = cosine.
  nrms                NRMS (Wu et al., 2019), small (d 64, 4 heads): word embeddings -> multi-head self-attention ->
                      additive attention = item vector; history item vectors -> multi-head self-attention ->
                      additive attention = user vector (plus one learned slot, so an empty history has a vector too,
                      as EmbSum's h_sum does); score = dot product.
  item-mean-rating    each item's mean star rating over the train impressions (damped towards the global mean).
  item-prior-fit      `fit_item_prior` alone: each item's MAP bias under the click loss on the training rows (what
                      EmbSum's optional item prior starts from); also logs the number of cold-start test candidates.
  embsum              EmbSum-tiny from scratch with the package recipe (`build_model_and_processor` with the demo's
                      tiny shape, `EmbSumTrainer`), the summary decoder trained on `HeuristicBackend` teacher
                      summaries of the train histories (template sentences, not LLM text) with lambda 0.2; h_sum from
                      the decoder start token.
  embsum+item-prior   the same plus the optional item prior (fitted to the training clicks before the first step),
                      also scored with the prior dropped ("(content only)" row). The other `VARIANTS` each change one
                      lever of the recipe (the README's ablation).

Fairness
  Same split and test impressions. Same tokenizer: trained once on the item texts by the EmbSum recipe, then reused
  by NRMS and every EmbSum variant, so every model reads the same token ids, item budget and history window (the
  latest `max_history_items` = 16 items; TF-IDF uses that window too). Same training rows and negatives
  (`build_training_rows` + `TrainingExamples` with the same seed) and the same NCE loss over one click and
  `DEFAULT_NUM_NEGATIVES` non-clicks. Same batch size, learning rate, warm-up, schedule and gradient clipping
  (EmbSum's new layers keep the recipe's learning-rate multiplier). The schedule (`--schedule anneal`, the default)
  decays the rate linearly to 0 at the end of the CPU budget, as `embsum train`'s linear schedule does at the end of
  its steps (a budget's last step is not known in advance, so the decay follows the clock); `--schedule constant`
  keeps the rate flat after the warm-up. Same CPU-time budget per learned model: process
  CPU time of the training loop with torch pinned to `--threads` threads; a `TrainerCallback` stops EmbSum and the
  NRMS loop checks the same clock. Tokenizer training, item tokenisation and evaluation are outside the budget.
  Everything is seeded, but a time budget ends at a load-dependent step, so reruns differ (the README shows two
  runs of the same code).

Protocol "reads" (`--protocol reads`: the acceptance book data's protocol, rebuilt from MovieLens)
  Every rating is a read (implicit feedback, stars ignored); each user keeps the latest `--reads-per-user` (20) reads.
  Each read is one impression: the read movie and `--read-negatives` (19) movies drawn uniformly from the movies
  the user never rated (seeded by the read, not by the model seed), built through the package's own custom-data path
  (`load_custom` with an impression column). Each user's last read -> test (leave-last-out), the rest -> train; the
  history is the user's earlier reads. With 943 users that is 17,917 training impressions, as in the book data
  (17,700), over a far smaller catalogue (1,682 movies instead of 16,800 books). Popularity counts reads, so it is
  strong here; item-mean-rating does not apply (no stars are read). `--cold-films 0.2` keeps a fifth of the films
  (drawn once) out of training, histories and the test, and adds a cold-start test: each test user's latest read of
  a held-out film among 19 unread held-out films, with the test's history; every system gets a "(cold start)" row.

    OMP_NUM_THREADS=1 python benchmarks/accuracy_movielens.py [--data ../shared/data/ml-100k] [--budget-cpu-s 600] \
        [--seeds 3] [--jobs 3] [--systems nrms,embsum,embsum+item-prior] [--protocol ratings|reads] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import datasets
import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from torch import nn
from tqdm.auto import tqdm
from transformers import TrainerCallback, get_constant_schedule_with_warmup, set_seed
from transformers.utils import logging as hf_logging

from embsum_hf.data import build_training_rows, load_custom, load_movielens, split_by_time
from embsum_hf.data._io import iter_fields
from embsum_hf.data.schema import RecommendationData
from embsum_hf.modeling_embsum import EmbSumModel
from embsum_hf.processing_embsum import EmbSumProcessor
from embsum_hf.teacher import HeuristicBackend, SummaryStore, summarize_users, user_histories
from embsum_hf.training import (
    EmbSumTrainingArguments,
    ImpressionEvaluator,
    TrainingExamples,
    baseline_scores,
    impression_metrics,
    tokenize_item_table,
)
from embsum_hf.training.arguments import DEFAULT_NUM_NEGATIVES
from embsum_hf.training.evaluation import summary_rouge
from embsum_hf.training.item_prior import choose_prior_weight, fit_item_prior
from embsum_hf.training.recipe import (
    FROM_SCRATCH_LEARNING_RATE,
    EmbSumRunArguments,
    Splits,
    build_model_and_processor,
    build_trainer,
    demo_run_arguments,
)

logger = logging.getLogger("accuracy_movielens")

METRICS = ("auc", "mrr", "ndcg@5", "ndcg@10")
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ml-100k"
# the full movielens item text: "<sos>" + at most 45-47 tokens under the recipe's tokenizer (its training is not
# bit-reproducible, so the lengths are logged with the number of truncated items on every run); padding is per batch
ITEM_MAX_TOKENS = 64


class TimeBudget(TrainerCallback):
    """
    A CPU-time budget (seconds of this process) for one training loop: `step()` after every optimiser step says
    whether it is spent, and as a Trainer callback it stops training then. `cpu_seconds` / `wall_seconds` / `steps`
    hold the training time and steps up to the last step.
    """

    def __init__(self, seconds: float, anneal: bool = False):
        self.seconds = seconds
        self.anneal = anneal
        self._cpu_start = self._wall_start = 0.0
        self.cpu_seconds = self.wall_seconds = 0.0
        self.steps = 0

    def start(self) -> None:
        self._cpu_start, self._wall_start = time.process_time(), time.perf_counter()
        self.cpu_seconds = self.wall_seconds = 0.0
        self.steps = 0

    def step(self) -> bool:
        self.steps += 1
        self.cpu_seconds = time.process_time() - self._cpu_start
        self.wall_seconds = time.perf_counter() - self._wall_start
        return self.cpu_seconds >= self.seconds

    def lr_factor(self) -> float:
        """With `anneal`, the share of the budget left (1 -> 0, linear in CPU time), else 1."""
        if not self.anneal:
            return 1.0
        return max(0.0, 1.0 - (time.process_time() - self._cpu_start) / self.seconds)

    def scale_learning_rate(self, optimizer) -> None:
        """Scale this optimiser step's learning rate (the scheduler sets it again from its base after the step)."""
        factor = self.lr_factor()
        for group in optimizer.param_groups:
            group["lr"] *= factor

    def on_train_begin(self, args, state, control, **kwargs):
        self.start()

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.scale_learning_rate(optimizer)

    def on_step_end(self, args, state, control, **kwargs):
        if self.step():
            control.should_training_stop = True


@dataclasses.dataclass
class Result:
    metrics: dict[str, float]
    budget: TimeBudget | None = None  # None: nothing learned


@dataclasses.dataclass
class Optimisation:
    """The optimiser settings every learned model shares."""

    batch_size: int
    learning_rate: float
    warmup_steps: int = 20
    max_grad_norm: float = 1.0
    # "anneal": warm-up, then times the share of the CPU budget left (a linear decay to 0 at the budget's end: what a
    # linear schedule over a known number of steps does); "constant": warm-up, then constant
    schedule: str = "anneal"

    def budget(self, seconds: float) -> TimeBudget:
        """The CPU-time budget of one training loop under this schedule."""
        return TimeBudget(seconds, anneal=self.schedule == "anneal")


# ---------------------------------------------------------------------------------------------------- TF-IDF
def tfidf_scores(tests: Sequence[RecommendationData], processor: EmbSumProcessor) -> list[list[list[float]]]:
    """For each test (sharing one items table): cosine between each candidate's TF-IDF vector and the mean TF-IDF
    vector of the user's history window. One fit for all of them."""
    item_ids = list(tests[0].items["item_id"])
    matrix = TfidfVectorizer().fit_transform([processor.format_item(row) for row in tests[0].items])
    index = {item: i for i, item in enumerate(item_ids)}
    window = processor.config.max_history_items
    per_test = []
    for test in tests:
        scores = []
        for history, candidates in zip(test.impressions["history"], test.impressions["candidates"]):
            items = matrix[[index[c] for c in candidates]]
            if not history:
                scores.append([0.0] * len(candidates))
                continue
            profile = np.asarray(matrix[[index[h] for h in history[:window]]].mean(axis=0))
            profile /= max(np.linalg.norm(profile), 1e-12)
            scores.append((items @ profile.T).ravel().tolist())  # rows are L2-normalised: dot = cosine
        per_test.append(scores)
    return per_test


# ---------------------------------------------------------------------------------------------------- NRMS
class AdditiveAttention(nn.Module):
    """Softmax-weighted sum of a sequence, weights from `q^T tanh(W x + b)` (padding masked out)."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.score(states).squeeze(-1).masked_fill(~mask, float("-inf"))
        return torch.einsum("nl,nld->nd", logits.softmax(-1), states)


class NRMS(nn.Module):
    def __init__(self, vocab_size: int, pad_token_id: int, dim: int = 64, heads: int = 4, dropout: float = 0.2):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_token_id)
        self.word_attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.word_pool = AdditiveAttention(dim)
        self.item_attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.item_pool = AdditiveAttention(dim)
        self.user_slot = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def encode_items(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N, L) token ids -> (N, d) item vectors."""
        words = self.dropout(self.embed(input_ids))
        words, _ = self.word_attention(words, words, words, key_padding_mask=~mask, need_weights=False)
        return self.word_pool(self.dropout(words), mask)

    def encode_users(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, H, d) history item vectors (H may be 0) -> (B, d) user vectors."""
        history = torch.cat([self.user_slot.expand(len(history), 1, -1), history], dim=1)
        mask = torch.cat([mask.new_ones(len(mask), 1), mask], dim=1)
        history, _ = self.item_attention(history, history, history, key_padding_mask=~mask, need_weights=False)
        return self.item_pool(history, mask)


class ItemTokens:
    """Every item's token ids (the EmbSum processor's, `<sos>` included) as one padded tensor, looked up by item id."""

    def __init__(self, processor: EmbSumProcessor, items):
        token_ids = tokenize_item_table(processor, items)
        self.index = {item: i for i, item in enumerate(token_ids)}
        padded = processor.pad_items(list(token_ids.values()))
        self.input_ids, self.mask = padded["item_input_ids"], padded["item_attention_mask"].bool()

    def encode(self, model: NRMS, item_ids: Sequence[str]) -> torch.Tensor:
        """(N, d) vectors of the given items, padded only to their own longest text."""
        rows = torch.tensor([self.index[item] for item in item_ids], dtype=torch.long)
        mask = self.mask[rows]
        width = int(mask.sum(1).max())
        return model.encode_items(self.input_ids[rows, :width], mask[:, :width])


def nrms_users(model: NRMS, vectors: torch.Tensor, histories: Sequence[Sequence[int]]) -> torch.Tensor:
    """(B, d) user vectors from histories given as rows of `vectors` (item vectors)."""
    length = max([len(history) for history in histories] + [1])
    rows = torch.zeros(len(histories), length, dtype=torch.long)
    mask = torch.zeros(len(histories), length, dtype=torch.bool)
    for b, history in enumerate(histories):
        rows[b, : len(history)] = torch.tensor(history, dtype=torch.long)
        mask[b, : len(history)] = True
    return model.encode_users(vectors[rows], mask)


def nrms_training_scores(model: NRMS, tokens: ItemTokens, batch: Sequence[dict], window: int) -> torch.Tensor:
    """(B, C) scores of a batch of `TrainingExamples` (clicked item first); each distinct item is encoded once."""
    histories = [example["history"][:window] for example in batch]
    unique = sorted(
        {item for example, history in zip(batch, histories) for item in (*history, *example["candidates"])}
    )
    row = {item: r for r, item in enumerate(unique)}
    vectors = tokens.encode(model, unique)
    users = nrms_users(model, vectors, [[row[item] for item in history] for history in histories])
    candidates = torch.tensor([[row[item] for item in example["candidates"]] for example in batch])
    return torch.einsum("bd,bcd->bc", users, vectors[candidates])


@torch.no_grad()
def nrms_test_scores(
    model: NRMS, tokens: ItemTokens, test: RecommendationData, window: int, batch_size: int = 256
) -> list[list[float]]:
    """Scores of every test impression: all items encoded once, users in batches."""
    model.eval()
    item_ids = list(tokens.index)
    vectors = torch.cat(
        [tokens.encode(model, item_ids[i : i + batch_size]) for i in range(0, len(item_ids), batch_size)]
    )
    histories = [[tokens.index[item] for item in history[:window]] for history in test.impressions["history"]]
    users = torch.cat(
        [nrms_users(model, vectors, histories[i : i + batch_size]) for i in range(0, len(histories), batch_size)]
    )
    candidates = test.impressions["candidates"]
    return [(vectors[[tokens.index[item] for item in row]] @ user).tolist() for user, row in zip(users, candidates)]


def train_nrms(
    train: RecommendationData,
    test: RecommendationData,
    processor: EmbSumProcessor,
    optimisation: Optimisation,
    budget_seconds: float,
    seed: int,
    cold_test: RecommendationData | None = None,
) -> Result:
    """Train NRMS on EmbSum's training rows and negatives under the CPU-time budget; score the test impressions (and
    the cold-start test's, when given)."""
    set_seed(seed)
    config = processor.config
    tokens = ItemTokens(processor, train.items)
    model = NRMS(len(processor.tokenizer), processor.pad_token_id)
    examples = TrainingExamples(build_training_rows(train.impressions), num_negatives=DEFAULT_NUM_NEGATIVES, seed=seed)
    loader = torch.utils.data.DataLoader(
        examples,
        batch_size=optimisation.batch_size,
        shuffle=True,
        collate_fn=list,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=optimisation.learning_rate, weight_decay=0.0)
    schedule = get_constant_schedule_with_warmup(optimizer, optimisation.warmup_steps)  # the Trainer's own
    budget = optimisation.budget(budget_seconds)
    model.train()
    budget.start()
    spent, epoch = False, 0
    with tqdm(desc="NRMS training", unit="step") as bar:
        while not spent:
            examples.set_epoch(epoch)
            for batch in loader:
                scores = nrms_training_scores(model, tokens, batch, config.max_history_items)
                loss = nn.functional.cross_entropy(
                    scores, scores.new_zeros(len(batch), dtype=torch.long)
                )  # NCE: click first
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), optimisation.max_grad_norm)
                budget.scale_learning_rate(optimizer)
                optimizer.step()
                schedule.step()
                bar.update()
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}", refresh=False)
                if spent := budget.step():
                    break
            epoch += 1
    scores = nrms_test_scores(model, tokens, test, config.max_history_items)
    result = Result(impression_metrics(scores, test.impressions["labels"], split=test.split), budget)
    if cold_test is not None:
        result.metrics.update(
            cold_metrics(nrms_test_scores(model, tokens, cold_test, config.max_history_items), cold_test)
        )
    return result


# ---------------------------------------------------------------------------------------------------- EmbSum
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
    """EmbSum from the package recipe (`build_model_and_processor`, `build_trainer`), trained until `budget` ends."""
    set_seed(seed)
    model, processor = build_model_and_processor(run_args, train, summaries)
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


# ---------------------------------------------------------------------------------------------------- main
# EmbSum variants: name -> (EmbSumRunArguments overrides, EmbSumTrainingArguments overrides). "embsum" is the
# library's from-scratch recipe as `embsum train` runs it (tiny shape, lambda 0.2 on heuristic summaries); each other
# variant changes one lever of it (the README's ablation table). "embsum+item-prior" starts its prior from
# `fit_item_prior` (the trainer's default); "embsum+item-prior-unfitted" from zeros.
RECIPE_RUN = {"summary_loss_weight": 0.2}
VARIANTS: dict[str, tuple[dict, dict]] = {
    "embsum": ({}, {}),
    "embsum+item-prior": ({"item_prior": True}, {}),
    "embsum+lsa": ({"text_embedding_init": True}, {}),
    "embsum+item-prior-unfitted": ({"item_prior": True}, {"fit_item_prior": False}),
    "embsum-paper-sessions": ({"session_max_items": 10**6}, {}),
    "embsum-per-click": ({}, {"group_by_impression": False}),
    "embsum+in-batch": ({}, {"in_batch_negatives": True}),
    "embsum+in-batch+logq": ({}, {"in_batch_negatives": True, "logq_correction": True}),
    "embsum-8-negatives": ({}, {"num_negatives": 8}),
    "embsum-compact-template": ({"item_template": "{title} ({year}) {genres}"}, {}),
    "embsum-new-layers-1x": ({}, {"new_layers_lr_multiplier": 1.0}),
    "embsum-1-layer": ({"num_layers": 1}, {}),
    "embsum-3-layers": ({"num_layers": 3}, {}),
    "embsum-wide": ({"d_model": 96, "d_ff": 384}, {}),
    "embsum-dropout": ({"dropout_rate": 0.1}, {}),
    "embsum-weight-decay": ({}, {"weight_decay": 0.01}),
    "embsum-lambda0": ({"summary_loss_weight": 0.0}, {}),
    # a tokenizer of its own (tokenizer=None: the recipe trains one) with half the shared one's 2,000 pieces (the
    # demo's tiny shape; `item_length_report` logs the vocabulary)
    "embsum-vocab-1k": ({"tokenizer": None, "vocab_size": 1000}, {}),
    "embsum-paper": ({"session_max_items": 10**6}, {"group_by_impression": False}),
}


def movielens_run_arguments(folder: Path, **overrides) -> EmbSumRunArguments:
    """The demo's tiny from-scratch shape on MovieLens 100K (its data fields, template and item budget)."""
    values = dict(
        dataset="movielens", train_data=str(folder), eval_data=None, paper_split=False, summaries=None,
        dataset_name="MovieLens-100K", item_template="movielens", item_max_tokens=ITEM_MAX_TOKENS,
    )  # fmt: skip
    return demo_run_arguments(folder, **{**values, **overrides})


def item_mean_rating_scores(folder: Path, train: RecommendationData, test: RecommendationData, prior: float = 5.0):
    """Each item's mean star rating over the train impressions' ratings, damped towards the global mean."""
    ratings = {}
    for _, fields in iter_fields(folder / "u.data", 4):
        ratings[(fields[0], fields[1])] = float(fields[2])
    total, count = {}, {}
    for user, candidates in zip(train.impressions["user_id"], train.impressions["candidates"]):
        for item in candidates:
            total[item] = total.get(item, 0.0) + ratings[(user, item)]
            count[item] = count.get(item, 0) + 1
    mean = sum(total.values()) / sum(count.values())
    damped = {item: (total[item] + prior * mean) / (count[item] + prior) for item in total}
    return [[damped.get(item, mean) for item in row] for row in test.impressions["candidates"]]


def item_prior_fit_scores(train: RecommendationData, tests: Sequence[RecommendationData]) -> list[list[list[float]]]:
    """`fit_item_prior` alone (what EmbSum + item prior starts from), fitted once: for each test, each candidate's
    fitted bias, 0 if unseen. Also logs how many of each test's candidates were never a training candidate (cold
    start: their prior is 0)."""
    items = sorted({item for candidates in train.impressions["candidates"] for item in candidates})
    bias = fit_item_prior(build_training_rows(train.impressions), items)
    rows = {item: row for row, item in enumerate(items, start=1)}
    per_test = []
    for test in tests:
        candidates = test.impressions["candidates"]
        cold = sum(item not in rows for row in candidates for item in row)
        total = sum(map(len, candidates))
        logger.info("%s: %d of %d candidates never were a training candidate", test.split, cold, total)
        per_test.append([[float(bias[rows.get(item, 0)]) for item in row] for row in candidates])
    return per_test


def load_reads(
    folder: Path, reads_per_user: int, negatives: int, cold_fraction: float = 0.0
) -> tuple[RecommendationData, RecommendationData, RecommendationData | None]:
    """The "reads" protocol (module docstring): (train, test, cold-start test or None) through `load_custom`, one
    impression per read. With `cold_fraction`, that share of the films (drawn once, the same for every seed) never
    appears in training, in a history or among the test's unread films; the cold-start test gives each test user
    whose ratings include one the latest of them among `negatives` unread cold films, with the test's history."""
    movies = load_movielens(folder).items
    catalogue = list(movies["item_id"])
    cold = set(random.Random("reads/cold").sample(catalogue, round(cold_fraction * len(catalogue))))
    warm = [item for item in catalogue if item not in cold]
    by_user: dict[str, list[tuple[int, int, str]]] = {}
    for number, fields in iter_fields(folder / "u.data", 4):
        by_user.setdefault(fields[0], []).append((int(fields[3]), number, fields[1]))
    logs = {name: [] for name in ("user_id", "item_id", "label", "timestamp", "impression_id")}
    cold_reads: dict[str, tuple[str, list[str]]] = {}  # user -> (latest cold read, unread cold films)
    for user, reads in by_user.items():
        rated = {item for _, _, item in reads}
        unrated = [item for item in warm if item not in rated]
        reads = sorted(reads)
        if latest_cold := [item for _, _, item in reads if item in cold]:
            cold_reads[user] = latest_cold[-1], [item for item in catalogue if item in cold and item not in rated]
        reads = [read for read in reads if read[2] not in cold][-reads_per_user:]
        previous = -1
        for k, (timestamp, number, item) in enumerate(reads):
            previous = timestamp = max(timestamp, previous + 1)  # ties broken by file order: a strict history
            rng = random.Random(f"reads/{user}/{number}")
            impression = [(item, 1), *((other, 0) for other in rng.sample(unrated, negatives))]
            rng.shuffle(impression)  # the read's place says nothing (a tie must not rank it first)
            for candidate, label in impression:
                for name, value in zip(logs, (user, candidate, label, timestamp, f"{user}/{k}")):
                    logs[name].append(value)
    data = load_custom(
        movies, datasets.Dataset.from_dict(logs), impression_column="impression_id", domain="movielens",
        split=f"{folder.name}-reads",
    )  # fmt: skip
    train, _, test = split_by_time(data, dev_impressions=0)
    if not cold:
        return train, test, None
    rows = []
    for row in test.impressions:
        if row["user_id"] not in cold_reads:
            continue
        item, unread = cold_reads[row["user_id"]]
        rng = random.Random(f"reads/cold/{row['user_id']}")
        impression = [(item, 1), *((other, 0) for other in rng.sample(unread, min(negatives, len(unread))))]
        rng.shuffle(impression)
        candidates, labels = map(list, zip(*impression))
        rows.append({**row, "impression_id": f"{row['user_id']}/cold", "candidates": candidates, "labels": labels})
    cold_test = RecommendationData.from_rows(movies, rows, "movielens", f"{folder.name}-reads:cold", {})
    logger.info("cold start: %d of %d films held out of training; %d test users read one", len(cold), len(catalogue),
                len(rows))  # fmt: skip
    return train, test, cold_test


def cold_metrics(scores: list[list[float]], cold_test: RecommendationData) -> dict[str, float]:
    """The metrics of scores on the cold-start test, keyed `cold_<metric>` (a row of their own in the table)."""
    metrics = impression_metrics(scores, cold_test.impressions["labels"], split=cold_test.split)
    return {f"cold_{name}": metrics[name] for name in METRICS}


def run_seed(options: argparse.Namespace, seed: int) -> dict[str, dict]:
    """Every system on one seed: name -> {metrics..., steps, train_cpu_s, wall_s}."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    hf_logging.set_verbosity_warning()
    torch.set_num_threads(options.threads)
    set_seed(seed)
    cold_test = None
    if options.protocol == "reads":
        train, test, cold_test = load_reads(
            options.data, options.reads_per_user, options.read_negatives, options.cold_films
        )
    else:
        train, _, test = split_by_time(load_movielens(options.data))
    logger.info(
        "train %d / test %d impressions; %d items", len(train.impressions), len(test.impressions), len(train.items)
    )
    optimisation = Optimisation(
        batch_size=options.batch_size, learning_rate=options.learning_rate, schedule=options.schedule
    )
    run_args = movielens_run_arguments(options.data, teacher="heuristic")
    labels = test.impressions["labels"]
    results: dict[str, Result] = {
        kind: Result(impression_metrics(baseline_scores(test, train, kind, seed=seed), labels))
        for kind in ("random", "popularity")
    }
    if options.protocol == "ratings":
        results["item-mean-rating"] = Result(
            impression_metrics(item_mean_rating_scores(options.data, train, test), labels)
        )
    tests = [test] if cold_test is None else [test, cold_test]
    prior_scores = item_prior_fit_scores(train, tests)
    results["item-prior-fit"] = Result(impression_metrics(prior_scores[0], labels))
    with tempfile.TemporaryDirectory() as tmp:
        summaries = heuristic_summaries(train, Path(tmp))
        # the one tokenizer: trained on the item texts (and summaries) by the recipe, then reused by every model
        set_seed(seed)
        _, processor = build_model_and_processor(run_args, train, summaries)
        logger.info(item_length_report(processor, train.items))
        processor.tokenizer.save_pretrained(Path(tmp, "tokenizer"))
        run_args = dataclasses.replace(run_args, tokenizer=str(Path(tmp, "tokenizer")))
        tfidf = tfidf_scores(tests, processor)
        results["tfidf"] = Result(impression_metrics(tfidf[0], labels))
        if cold_test is not None:
            cold_baselines = {
                "random": baseline_scores(cold_test, train, "random", seed=seed),
                "popularity": baseline_scores(cold_test, train, "popularity"),
                "item-prior-fit": prior_scores[1],
                "tfidf": tfidf[1],
            }
            for name, scores in cold_baselines.items():
                results[name].metrics.update(cold_metrics(scores, cold_test))
        if "nrms" in options.systems:
            results["nrms"] = train_nrms(
                train, test, processor, optimisation, options.budget_cpu_s, seed, cold_test=cold_test
            )
        for name in options.systems:
            if name in VARIANTS:
                run_overrides, training_overrides = VARIANTS[name]
                results[name] = train_embsum(
                    dataclasses.replace(run_args, **{**RECIPE_RUN, **run_overrides}),
                    train,
                    test,
                    summaries,
                    optimisation,
                    options.budget_cpu_s,
                    seed,
                    Path(tmp, name),
                    training_overrides,
                    cold_test=cold_test,
                )
    return result_rows(results)


def result_rows(results: dict[str, Result], extra_cpu_s: float = 0.0) -> dict[str, dict]:
    """name -> {metrics..., steps, train_cpu_s, wall_s} of one seed's results; a model with an item prior scored
    without it and a system's cold-start metrics become rows of their own. `extra_cpu_s` (e.g. a shared tokenizer's
    training) is added to every learned model's CPU time."""
    rows = {}
    for name, result in results.items():
        row = {key: float(value) for key, value in result.metrics.items() if not isinstance(value, str)}
        content = {metric: row.pop(f"content_{metric}") for metric in METRICS if f"content_{metric}" in row}
        cold = {metric: row.pop(f"cold_{metric}") for metric in METRICS if f"cold_{metric}" in row}
        late = {metric: row.pop(f"late_{metric}") for metric in METRICS if f"late_{metric}" in row}
        if late:
            late["prior_weight"] = row.pop("late_weight")
        if result.budget is not None:
            row.update(
                steps=result.budget.steps,
                train_cpu_s=result.budget.cpu_seconds + extra_cpu_s,
                wall_s=result.budget.wall_seconds,
            )
        rows[name] = row
        if content:  # a model with an item prior, scored again without it: a row of its own
            rows[f"{name} (content only)"] = content
        if late:  # the same model fused with an item prior after training (weight chosen on dev)
            rows[f"{name} + prior (late fusion)"] = late
        if cold:  # the same system on the cold-start test
            rows[f"{name} (cold start)"] = cold
    return rows


def run_seeds(run_seed, options: argparse.Namespace, seeds: list[int]) -> dict[str, dict]:
    """`run_seed(options, seed)` for every seed (`options.jobs` processes at once), `aggregate`d."""
    if options.jobs > 1:
        with ProcessPoolExecutor(options.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            return aggregate(list(pool.map(run_seed, [options] * len(seeds), seeds)))
    return aggregate([run_seed(options, seed) for seed in seeds])


def aggregate(per_seed: list[dict[str, dict]]) -> dict[str, dict]:
    """name -> {"mean": {...}, "std": {...}, "seeds": [...]} over the seeds (std: sample std, 0 for one seed)."""
    out = {}
    for name in per_seed[0]:
        runs = [seed_rows[name] for seed_rows in per_seed]
        keys = [key for key in runs[0] if all(key in run for run in runs)]
        out[name] = {
            "mean": {key: statistics.fmean(run[key] for run in runs) for key in keys},
            "std": {key: statistics.stdev([run[key] for run in runs]) if len(runs) > 1 else 0.0 for key in keys},
            "seeds": runs,
        }
    return out


def print_table(summary: dict[str, dict], seeds: list[int], protocol: str) -> None:
    counts = summary["popularity"]["mean"]
    print(
        f"\nml-100k:test, protocol {protocol} | {counts['num_impressions']:.0f} impressions scored "
        f"({counts['num_skipped_one_class']:.0f} one-class skipped) | seeds {seeds} | mean ± std"
    )
    print_rows(summary)


def print_rows(summary: dict[str, dict], width: int = 26) -> None:
    """The table of `aggregate`'s summary: every system's metrics (mean ± std), ROUGE-L, steps and CPU seconds."""
    print(
        f"{'system':<{width}}"
        + "".join(f"{m:>16}" for m in ("AUC", "MRR", "nDCG@5", "nDCG@10"))
        + f"{'ROUGE-L':>9}{'steps':>8}{'CPU s':>8}"
    )
    for name, row in summary.items():
        mean, std = row["mean"], row["std"]
        line = f"{name:<{width}}" + "".join(f"{100 * mean[m]:>9.2f} ± {100 * std[m]:<4.2f}" for m in METRICS)
        line += f"{mean['rougeL']:>9.3f}" if "rougeL" in mean else f"{'-':>9}"
        line += f"{mean['steps']:>8.0f}{mean['train_cpu_s']:>8.0f}" if "steps" in mean else f"{'-':>8}{'-':>8}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the ml-100k folder (u.data, u.item, u.genre)")
    parser.add_argument("--budget-cpu-s", type=float, default=600.0, help="CPU seconds of training per learned model")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1; mean and std over them")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in this many processes at once")
    parser.add_argument(
        "--systems",
        default="nrms,embsum,embsum+item-prior",
        help=f"learned systems to run (the baselines always run): nrms and any of {', '.join(VARIANTS)}",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every system's metrics, mean and std here")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=FROM_SCRATCH_LEARNING_RATE)
    parser.add_argument(
        "--schedule",
        choices=("constant", "anneal"),
        default=Optimisation.schedule,
        help="learning rate after warm-up, for every learned model: constant, or annealed linearly to 0 at the end "
        "of the CPU budget",
    )
    parser.add_argument(
        "--protocol",
        choices=("ratings", "reads"),
        default="ratings",
        help="ratings: which rated films a user liked (the acceptance run); reads: the book data's leave-last-out "
        "protocol (the held-out read among uniformly drawn unread movies)",
    )
    parser.add_argument("--reads-per-user", type=int, default=20, help="reads protocol: each user's latest reads")
    parser.add_argument(
        "--read-negatives", type=int, default=19, help="reads protocol: unread movies drawn into each impression"
    )
    parser.add_argument(
        "--cold-films",
        type=float,
        default=0.0,
        help="reads protocol: this share of the films is kept out of training for a cold-start test (0: none)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (the budget counts CPU time of all of them)"
    )
    options = parser.parse_args()
    options.systems = [name.strip() for name in options.systems.split(",") if name.strip()]
    unknown = [name for name in options.systems if name != "nrms" and name not in VARIANTS]
    if unknown:
        parser.error(f"unknown systems {unknown}")
    if not (options.data / "u.data").is_file():
        print(
            f"MovieLens 100K not found: {options.data} has no u.data (pass --data <ml-100k folder>)", file=sys.stderr
        )
        sys.exit(2)
    seeds = list(range(options.seeds))
    summary = run_seeds(run_seed, options, seeds)
    print_table(summary, seeds, options.protocol)
    if options.json is not None:
        options.json.write_text(
            json.dumps(
                {
                    "budget_cpu_s": options.budget_cpu_s,
                    "seeds": seeds,
                    "learning_rate": options.learning_rate,
                    "schedule": options.schedule,
                    "protocol": options.protocol,
                    **(
                        {
                            "reads_per_user": options.reads_per_user,
                            "read_negatives": options.read_negatives,
                            "cold_films": options.cold_films,
                        }
                        if options.protocol == "reads"
                        else {}
                    ),
                    "systems": summary,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
