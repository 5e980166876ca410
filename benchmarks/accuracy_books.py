"""Ranking accuracy on a sparse real catalogue: EmbSum-tiny against popularity, TF-IDF, their blend and NRMS on the
Goodreads book data in `../shared/data/goodreads-books` (real data, CPU; the folder's README says what it is).

Protocol (dev mode, the default)
  `train.jsonl` holds one impression per user: the user's last read among 4 books drawn uniformly from the books the
  user never read, with the earlier reads (1-8) as history. A seeded share of the users (`--dev-users`, 2,000,
  drawn once with the seed "books/dev", the same for every model seed) is held out as the dev split and their
  candidates are redrawn as the acceptance users' are: the read among 19 books drawn uniformly from the books the
  user never read. Every other user trains. AUC, MRR, nDCG@5, nDCG@10 over the 20 candidates (`impression_metrics`).

  Cold start (`--cold-books`, default 0.1): that share of the books (drawn once, "books/cold") is kept out of
  training entirely (no history, click or non-click of a training user, not in the items the trainer draws
  from). Users whose last read is such a book form the cold-start test: the read among 19 cold books the user never
  read, with the history less cold books. Popularity knows none of these books, so only the text can rank them:
  every system gets a "(cold start)" row. Dev users keep their histories less cold books.

Test mode (`--test FILE`, the acceptance check)
  Train on every user of `--data`'s `train.jsonl` (no cold books) and score the impressions of FILE (the same
  format, e.g. the 4,439 held-out users); the cold-start row is then FILE's users whose read never occurs in
  training. `--test-summaries FILE` gives their reference summaries for ROUGE. The blend's weight is still chosen on
  the dev split (with popularity counted without the dev users).

Systems
  random, popularity  popularity = reads of the book in the training users' histories and clicks (as the data's
                      README defines it).
  tfidf               sklearn TF-IDF (fit on the item texts, no labels) of each book as EmbSum reads it; user =
                      mean TF-IDF of the history window; score = cosine.
  blend               log(1 + popularity) + w * tfidf, w from a grid chosen on the dev split (in dev mode that is
                      the split it is scored on: an optimistic baseline, the bar EmbSum has to clear).
  item-prior-fit      `fit_item_prior` alone on every training read (history reads included) against 4 catalogue
                      draws: the prior `embsum+prior-reads` fits and keeps fixed (`item_prior_history_draws`).
                      Every EmbSum model without a prior is also scored fused with it after training ("+ prior
                      (late fusion)": content + w * prior, w chosen on the dev split by `choose_prior_weight`; in
                      dev mode that is the split it is scored on, as the blend's weight is).
  nrms                the MovieLens benchmark's NRMS (`accuracy.nrms.train_nrms`), same rows, negatives, budget.
  embsum...           EmbSum-tiny through the package recipe (`build_model_and_processor`, `build_trainer`):
                      "embsum" is `embsum train --dataset impressions` with the issue's tiny shape and every other
                      setting the recipe's default (on this catalogue `choose_data_levers` turns on the LSA start,
                      in-batch negatives with logQ, the 300-step summary warm-up, one history click per user and
                      the summary recipe: the copy mechanism, λ 2, no history boost, the sessions' order for the
                      decoder); each "+lever" of `LEVERS` in
                      the name changes one setting (e.g. `embsum+no-in-batch`, `embsum+history-clicks-0`,
                      `embsum+catalogue-4+item-prior`), and it trains without dropout (the recipe's
                      `FROM_SCRATCH_DROPOUT_RATE`). Reports before these two defaults name today's
                      `embsum+dropout0.1+paper-summary` "embsum"; reports before the sessions' order, today's
                      `embsum+no-session-positions`.

Fairness
  Same splits, same tokenizer (trained once on the training items and summaries, its CPU time charged to every
  learned model's budget), same batch size, learning rate and schedule, `--budget-cpu-s` of process CPU time per
  learned model (`accuracy.budget.TimeBudget`, torch on `--threads` threads). Evaluation is outside the budget.

    OMP_NUM_THREADS=1 python benchmarks/accuracy_books.py [--data ../shared/data/goodreads-books] \
        [--budget-cpu-s 1800] [--seeds 3] [--jobs 3] [--systems nrms,embsum,embsum+item-prior] [--json out.json] \
        [--test held_out.jsonl --test-summaries held_out_summaries.jsonl]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import datasets
import torch
from accuracy.baselines import tfidf_scores
from accuracy.budget import Optimisation
from accuracy.embsum_runs import item_length_report, train_embsum
from accuracy.nrms import train_nrms
from accuracy.results import Result, aggregate, cold_metrics, print_rows, result_rows, run_seeds
from transformers import set_seed
from transformers.utils import logging as hf_logging

from embsum_hf.data import build_training_rows, load_impressions, load_summaries
from embsum_hf.data.schema import RecommendationData
from embsum_hf.training import TrainingExamples, baseline_scores, impression_metrics
from embsum_hf.training.arguments import PAPER_MODEL_LEVERS
from embsum_hf.training.item_prior import choose_prior_weight, fit_item_prior
from embsum_hf.training.recipe import (
    FROM_SCRATCH_LEARNING_RATE,
    SPARSE_CATALOGUE_LEVERS,
    EmbSumRunArguments,
    build_model_and_processor,
    read_counts,
)

logger = logging.getLogger("accuracy_books")

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "goodreads-books"
METRICS_SHOWN = ("auc", "mrr", "ndcg@10")
BLEND_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0)

# `embsum train --dataset impressions` with the tiny shape; everything else is the recipe's default
BOOKS_RUN = dict(
    d_model=64, num_layers=2, num_heads=4, d_ff=256, vocab_size=8000, max_history_items=16, item_max_tokens=64,
)  # fmt: skip

# "+lever" -> (EmbSumRunArguments overrides, EmbSumTrainingArguments overrides); a system name chains them
LEVERS: dict[str, tuple[dict, dict]] = {
    "item-prior": ({"item_prior": True}, {}),
    "prior-reads": ({"item_prior": True}, {"item_prior_history_draws": 4, "item_prior_std": 5.0}),
    "lsa": ({"text_embedding_init": True}, {}),
    # the levers `choose_data_levers` turns on for this catalogue, turned off ("embsum+no-lsa+no-in-batch+summary-
    # warmup-0" is the paper's recipe, `embsum train`'s default before it chose them)
    "no-lsa": ({"text_embedding_init": False}, {}),
    "no-in-batch": ({}, {"in_batch_negatives": False, "logq_correction": False}),
    "no-logq": ({}, {"logq_correction": False}),
    # each user's most recent history reads as clicks of their own (`--history_clicks N`; 8: every read here; 1 is
    # `embsum`'s on this data, `choose_data_levers`; 0: the paper's rows)
    "history-clicks-0": ({}, {"history_clicks": 0}),
    "history-clicks-1": ({}, {"history_clicks": 1}),
    "history-clicks-2": ({}, {"history_clicks": 2}),
    "history-clicks-8": ({}, {"history_clicks": 8}),
    "catalogue-4": ({}, {"catalogue_negatives": 4}),
    "catalogue-16": ({}, {"catalogue_negatives": 16}),
    "catalogue-32": ({}, {"catalogue_negatives": 32}),
    "in-batch": ({}, {"in_batch_negatives": True}),
    "logq": ({}, {"logq_correction": True}),
    "negatives-1": ({}, {"num_negatives": 1}),
    "start": ({"summary_mode": "start"}, {}),
    # the summary recipe of issue 21 (docs/summaries.md: the learned copy mechanism, λ 2, no history boost), which
    # `choose_data_levers` turns on for this catalogue, and the paper's summary levers ("embsum" before it did)
    "copy": ({name: SPARSE_CATALOGUE_LEVERS[name] for name in PAPER_MODEL_LEVERS}, {}),
    "paper-summary": (dict(PAPER_MODEL_LEVERS), {}),
    # the summary decoder without the sessions' order (`summary_session_positions`, part of the summary recipe since
    # docs/summaries.md measured it): "embsum" of the reports before it
    "no-session-positions": ({"summary_session_positions": False}, {}),
    # λ (the config's 1 by default); "lambda0.2+summary-warmup-0" was `embsum`'s recipe on this data before the warm-up
    "lambda0.2": ({"summary_loss_weight": 0.2}, {}),
    "lambda1": ({"summary_loss_weight": 1.0}, {}),
    "lambda0": ({"summary_loss_weight": 0.0}, {}),
    "summary-warmup-0": ({}, {"summary_warmup_steps": 0}),
    "summary-warmup-300": ({}, {"summary_warmup_steps": 300}),  # `embsum`'s on this data (`choose_data_levers`)
    # text infilling on the items' text before the joint objective (its CPU time in the budget)
    "text-pretraining-500": ({}, {"text_pretraining_steps": 500}),
    # no dropout: `embsum`'s since the run of this name made it `embsum train`'s from scratch
    # (FROM_SCRATCH_DROPOUT_RATE); T5's 0.1 was `embsum`'s before
    "dropout0": ({"dropout_rate": 0.0}, {}),
    "dropout0.1": ({"dropout_rate": 0.1}, {}),
    "vocab-2k": ({"vocab_size": 2000, "tokenizer": None}, {}),
    "vocab-16k": ({"vocab_size": 16000, "tokenizer": None}, {}),
    "wide": ({"d_model": 128, "d_ff": 512}, {}),
    "1-layer": ({"num_layers": 1}, {}),
    "3-layers": ({"num_layers": 3}, {}),
    "title-only": ({"item_template": "Title: {title}"}, {}),
    "items-32": ({"item_max_tokens": 32}, {}),
    "lr4e-3": ({}, {"learning_rate": 4e-3}),
    "lr1e-3": ({}, {"learning_rate": 1e-3}),
}


def system_levers(name: str) -> tuple[dict, dict]:
    """The run and training overrides of a system name `embsum[+lever...]`."""
    run, training = {}, {}
    for lever in name.split("+")[1:]:
        if lever not in LEVERS:
            raise ValueError(f"unknown lever {lever!r} in {name!r}; levers: {', '.join(LEVERS)}")
        run.update(LEVERS[lever][0])
        training.update(LEVERS[lever][1])
    return run, training


# ---------------------------------------------------------------------------------------------------- data
def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def _clicks(row: dict) -> list[str]:
    return [item for item, label in zip(row["candidates"], row["labels"]) if int(label) == 1]


def _redraw(row: dict, pool: Sequence[str], negatives: int, rng: random.Random) -> dict:
    """The row's read among `negatives` books drawn uniformly from `pool` less the user's reads, in shuffled order."""
    reads = {*row["history"], *_clicks(row)}
    unread = [item for item in pool if item not in reads]
    impression = [(item, 1) for item in _clicks(row)] + [(item, 0) for item in rng.sample(unread, negatives)]
    rng.shuffle(impression)
    candidates, labels = map(list, zip(*impression))
    return {**row, "candidates": candidates, "labels": labels}


def _as_data(items: datasets.Dataset, rows: list[dict], split: str) -> RecommendationData:
    return load_impressions(items, datasets.Dataset.from_list(rows), split=split, domain="impressions")


def load_books(
    folder: Path, dev_users: int, cold_books: float, negatives: int = 19
) -> tuple[RecommendationData, RecommendationData | None, RecommendationData | None]:
    """(train, dev or None when `dev_users` is 0, cold-start test or None) of the dev protocol (module docstring)."""
    items = datasets.Dataset.from_list(_read_jsonl(folder / "items.jsonl"))
    rows = _read_jsonl(folder / "train.jsonl")
    catalogue = list(items["item_id"])
    cold = set(random.Random("books/cold").sample(catalogue, round(cold_books * len(catalogue))))
    dev_ids = set(random.Random("books/dev").sample([row["user_id"] for row in rows], dev_users))
    warm = [item for item in catalogue if item not in cold]
    train_rows, dev_rows, cold_rows = [], [], []
    for row in rows:
        rng = random.Random(f"books/{row['user_id']}")
        history = [item for item in row["history"] if item not in cold]
        if any(item in cold for item in _clicks(row)):
            cold_rows.append(_redraw({**row, "history": history}, sorted(cold), negatives, rng))
        elif row["user_id"] in dev_ids:
            dev_rows.append(_redraw({**row, "history": history}, catalogue, negatives, rng))
        else:
            kept = [(c, y) for c, y in zip(row["candidates"], row["labels"]) if c not in cold]
            train_rows.append(
                {**row, "history": history, "candidates": [c for c, _ in kept], "labels": [y for _, y in kept]}
            )
    history_reads = sum(len(row["history"]) for row in rows)
    clicked = {item for row in rows for item in _clicks(row)}
    latest = clicked | {row["history"][0] for row in rows if row["history"]}  # + each user's most recent history read
    logger.info(
        "books: %.0f%% of the file's reads are in the histories; %d books are a click, %d with each user's most "
        "recent history read (`--history_clicks 1`)",
        100 * history_reads / (history_reads + sum(len(_clicks(row)) for row in rows)),
        len(clicked),
        len(latest),
    )
    train_items = items.filter(lambda row: row["item_id"] not in cold) if cold else items
    train = _as_data(train_items, train_rows, f"{folder.name}:train")
    dev = _as_data(items, dev_rows, f"{folder.name}:dev({dev_users} users)") if dev_rows else None
    cold_test = _as_data(items, cold_rows, f"{folder.name}:cold({cold_books:g} of the books)") if cold else None
    logger.info(
        "books: %d train / %d dev / %d cold-start users; %d of %d books cold; %d warm books",
        len(train_rows),
        len(dev_rows),
        len(cold_rows),
        len(cold),
        len(catalogue),
        len(warm),
    )
    return train, dev, cold_test


def load_test(
    folder: Path, test_file: Path, train: RecommendationData
) -> tuple[RecommendationData, RecommendationData | None]:
    """(test, cold-start test: its users whose read never occurs in `train`, None when there are none) of test
    mode."""
    items = datasets.Dataset.from_list(_read_jsonl(folder / "items.jsonl"))
    rows = _read_jsonl(test_file)
    counts = read_counts(train)
    cold_rows = [row for row in rows if not any(counts.get(item) for item in _clicks(row))]
    logger.info("test: %d users, %d of them read a book never read in training", len(rows), len(cold_rows))
    cold = _as_data(items, cold_rows, f"{test_file.name}:never-read") if cold_rows else None
    return _as_data(items, rows, test_file.name), cold


# ---------------------------------------------------------------------------------------------------- baselines
def popularity_scores(test: RecommendationData, counts: Counter) -> list[list[float]]:
    return [[float(counts.get(item, 0)) for item in row] for row in test.impressions["candidates"]]


def blend_scores(popularity: list[list[float]], tfidf: list[list[float]], weight: float) -> list[list[float]]:
    return [[math.log1p(p) + weight * t for p, t in zip(ps, ts)] for ps, ts in zip(popularity, tfidf)]


def choose_blend_weight(popularity: list[list[float]], tfidf: list[list[float]], labels) -> float:
    """The `BLEND_WEIGHTS` entry with the best AUC on the given (dev) impressions: the library's late fusion
    (`choose_prior_weight`) of log-popularity and TF-IDF."""
    log_popularity = [[math.log1p(p) for p in row] for row in popularity]
    return choose_prior_weight(log_popularity, tfidf, labels, weights=BLEND_WEIGHTS)[0]


def fit_read_prior(train: RecommendationData, seed: int, draws: int = 4, prior_std: float | None = None):
    """item id -> `fit_item_prior` on every training read (history reads included) against `draws` catalogue draws:
    the rows `embsum+prior-reads` fits its prior on (`TrainingExamples.prior_fit_rows(history_draws=4)`), with its
    `item_prior_std` unless `prior_std` is given."""
    rows = build_training_rows(train.impressions)
    examples = TrainingExamples(rows, 4, seed=seed, catalogue=list(train.items["item_id"]))
    fit_rows = examples.prior_fit_rows(history_draws=draws)
    items = sorted(set(fit_rows["positive"]))
    std = LEVERS["prior-reads"][1]["item_prior_std"] if prior_std is None else prior_std
    bias = fit_item_prior(fit_rows, items, prior_std=std)
    return {item: float(bias[row]) for row, item in enumerate(items, start=1)}


def prior_sweep(options: argparse.Namespace) -> None:
    """`--prior-sweep`: the read prior fitted alone with each Gaussian std and number of catalogue draws, scored on
    the dev split (no model is trained)."""
    logging.basicConfig(level=logging.WARNING)
    train, dev, _ = load_books(options.data, options.dev_users, options.cold_books)
    print("draws  std  dev AUC")
    for draws in (4, 16):
        for std in (1.0, 2.0, 5.0, 10.0):
            prior = fit_read_prior(train, 0, draws=draws, prior_std=std)
            scores = [[prior.get(i, 0.0) for i in row] for row in dev.impressions["candidates"]]
            print(f"{draws:5d} {std:4g}  {100 * impression_metrics(scores, dev.impressions['labels'])['auc']:.2f}")


# ---------------------------------------------------------------------------------------------------- main
def run_seed(options: argparse.Namespace, seed: int) -> dict[str, dict]:
    """Every system on one seed: name -> {metrics..., steps, train_cpu_s, wall_s}."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    hf_logging.set_verbosity_warning()
    torch.set_num_threads(options.threads)
    set_seed(seed)
    train, dev, cold_test = load_books(options.data, options.dev_users, 0.0 if options.test else options.cold_books)
    counts = read_counts(train)
    if options.test:
        # acceptance: train on every user; the blend's weight still comes from the dev split
        train_all, _, _ = load_books(options.data, 0, 0.0)
        test, cold_test = load_test(options.data, options.test, train_all)
    else:
        train_all, test = train, dev
    summaries = load_summaries(options.data / "summaries.jsonl")
    trained_users = set(train_all.impressions["user_id"])
    train_summaries = {user: text for user, text in summaries.items() if user in trained_users}
    if options.test_summaries:
        summaries = {**load_summaries(options.test_summaries), **summaries}  # the test users' references
    labels = test.impressions["labels"]
    tests = [test] if cold_test is None else [test, cold_test]

    run_args = EmbSumRunArguments(
        dataset="impressions",
        train_data=str(options.data / "train.jsonl"),
        summaries=str(options.data / "summaries.jsonl"),
        dataset_name="goodreads-books",
        **BOOKS_RUN,
    )
    with tempfile.TemporaryDirectory() as tmp:
        # the one tokenizer (trained on the training items and summaries by the recipe), reused by every model; its
        # CPU time is charged to each learned model's budget
        start = time.process_time()
        set_seed(seed)
        _, processor = build_model_and_processor(run_args, train_all, train_summaries)
        tokenizer_cpu_s = time.process_time() - start
        logger.info(
            "%s; tokenizer trained in %.1f CPU-s", item_length_report(processor, train_all.items), tokenizer_cpu_s
        )
        processor.tokenizer.save_pretrained(Path(tmp, "tokenizer"))
        run_args = dataclasses.replace(run_args, tokenizer=str(Path(tmp, "tokenizer")))

        counts_all = counts if train_all is train else read_counts(train_all)
        popularity = [popularity_scores(t, counts_all) for t in tests]
        tfidf = tfidf_scores(tests, processor)
        # the blend's weight: chosen on the dev split, popularity from its own training users
        dev_tfidf = tfidf_scores([dev], processor)[0] if options.test else tfidf[0]
        weight = choose_blend_weight(popularity_scores(dev, counts), dev_tfidf, dev.impressions["labels"])
        read_prior = fit_read_prior(train_all, seed)
        baselines = {
            "item-prior-fit": [
                [[read_prior.get(i, 0.0) for i in row] for row in t.impressions["candidates"]] for t in tests
            ],
            "random": [baseline_scores(t, train_all, "random", seed=seed) for t in tests],
            "popularity": popularity,
            "tfidf": tfidf,
            f"blend (tfidf x {weight:g})": [blend_scores(p, t, weight) for p, t in zip(popularity, tfidf)],
        }
        results: dict[str, Result] = {}
        for name, scores in baselines.items():
            results[name] = Result(impression_metrics(scores[0], labels, split=test.split))
            if cold_test is not None:
                results[name].metrics.update(cold_metrics(scores[1], cold_test))

        budget = options.budget_cpu_s - tokenizer_cpu_s
        for name in options.systems:
            set_seed(seed)
            if name == "nrms":
                optimisation = Optimisation(batch_size=options.batch_size, learning_rate=options.learning_rate)
                results[name] = train_nrms(train_all, test, processor, optimisation, budget, seed, cold_test=cold_test)
                continue
            run_overrides, training_overrides = system_levers(name)
            learning_rate = training_overrides.pop("learning_rate", options.learning_rate)
            optimisation = Optimisation(batch_size=options.batch_size, learning_rate=learning_rate)
            if run_overrides.get("tokenizer", "shared") is None:
                run_overrides = {**run_overrides, "tokenizer": None}  # a tokenizer of its own, trained in the budget
            results[name] = train_embsum(
                dataclasses.replace(run_args, **run_overrides),
                train_all,
                test,
                summaries,
                optimisation,
                budget,
                seed,
                Path(tmp, name),
                training_overrides,
                rouge_users=options.rouge_users,
                cold_test=cold_test,
                late_prior=None if run_overrides.get("item_prior") else (read_prior, dev),
            )
    rows = result_rows(results, extra_cpu_s=tokenizer_cpu_s)
    for name, row in rows.items():  # each seed's figures as it ends (the table comes when every seed has)
        logger.info("seed %d: %s AUC %.2f MRR %.2f nDCG@10 %.2f", seed, name, *(100 * row[m] for m in METRICS_SHOWN))
    return rows


def merge_runs(paths: Sequence[Path], output: Path | None, renames: Sequence[str] = ()) -> None:
    """One table of `--json` files that ran the same systems on different seeds (`--first-seed`): every system the
    files share, `aggregate`d over all their seeds; the options of the first file, its seeds replaced. `renames`
    ("OLD=NEW") rename a system and its rows (late fusion, cold start) in every file first (a run made under an
    older name of the same recipe), recorded in the output's `renamed`."""
    pairs = [rename.partition("=") for rename in renames]
    if any(not old or not sep or not new for old, sep, new in pairs):
        sys.exit(f"--rename takes OLD=NEW, got {' '.join(renames)}")
    runs = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    for old, _, new in pairs:  # the system and its rows ("OLD + prior (late fusion)", "OLD (cold start)")
        if not any(old in run["systems"] for run in runs):
            sys.exit(f"--rename {old}={new}: no file has a system {old!r}")
        for run in runs:
            run["systems"] = {
                new + name[len(old) :] if name == old or name.startswith(old + " ") else name: row
                for name, row in run["systems"].items()
            }
    seeds = [seed for run in runs for seed in run["seeds"]]
    if len(set(seeds)) != len(seeds):
        sys.exit(f"--merge: the files repeat seeds {seeds}")
    names = [name for name in runs[0]["systems"] if all(name in run["systems"] for run in runs)]
    per_seed = [
        {name: run["systems"][name]["seeds"][at] for name in names} for run in runs for at in range(len(run["seeds"]))
    ]
    summary = aggregate(per_seed)
    print(f"\nmerged {', '.join(path.name for path in paths)} | seeds {seeds} | mean ± std")
    print_rows(summary, width=52)
    if output is not None:
        merged = {**runs[0], "seeds": seeds, "systems": summary, "merged_from": [path.name for path in paths]}
        if renames:
            merged["renamed"] = list(renames)
        output.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the goodreads-books folder")
    parser.add_argument("--test", type=Path, default=None, help="score this impressions file (train on all users)")
    parser.add_argument("--test-summaries", type=Path, default=None, help="reference summaries of --test's users")
    parser.add_argument("--budget-cpu-s", type=float, default=1800.0, help="CPU seconds per learned model")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1; mean and std over them")
    parser.add_argument("--first-seed", type=int, default=0, help="start the seeds here: FIRST..FIRST+N-1")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in this many processes at once")
    parser.add_argument(
        "--systems",
        default="nrms,embsum,embsum+item-prior",
        help=f"learned systems (the baselines always run): nrms, embsum and embsum+LEVER[+LEVER...] with levers "
        f"{', '.join(LEVERS)}",
    )
    parser.add_argument("--dev-users", type=int, default=2000, help="users held out as the dev split")
    parser.add_argument("--cold-books", type=float, default=0.1, help="share of the books kept out of training")
    parser.add_argument("--rouge-users", type=int, default=100, help="users whose summaries get ROUGE-L")
    parser.add_argument("--json", type=Path, default=None, help="write every system's metrics, mean and std here")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=FROM_SCRATCH_LEARNING_RATE)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the budget counts all of them)")
    parser.add_argument("--prior-sweep", action="store_true", help="only fit the read prior alone per std and draws")
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=None,
        metavar="JSON",
        help="no run: merge these --json files of the same systems on other seeds (e.g. --first-seed runs) into one "
        "table, mean and std over all their seeds (written to --json)",
    )
    parser.add_argument(
        "--rename",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="with --merge: system OLD of the files is NEW (a run under an older name of the same recipe); repeatable",
    )
    options = parser.parse_args()
    if options.prior_sweep:
        prior_sweep(options)
        return
    if options.merge:
        merge_runs(options.merge, options.json, options.rename)
        return
    options.systems = [name.strip() for name in options.systems.split(",") if name.strip()]
    for name in options.systems:
        if name != "nrms":
            if name.split("+")[0] != "embsum":
                parser.error(f"unknown system {name!r}")
            try:
                system_levers(name)
            except ValueError as error:
                parser.error(str(error))
    if not (options.data / "train.jsonl").is_file():
        print(
            f"book data not found: {options.data} has no train.jsonl (pass --data <goodreads-books folder>)",
            file=sys.stderr,
        )
        sys.exit(2)
    seeds = list(range(options.first_seed, options.first_seed + options.seeds))
    summary = run_seeds(run_seed, options, seeds)
    print(f"\n{options.test or f'{options.data.name}:dev'} | seeds {seeds} | mean ± std")
    print_rows(summary, width=52)
    if options.json is not None:
        meta = {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items() if k != "json"}
        options.json.write_text(json.dumps({**meta, "seeds": seeds, "systems": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
