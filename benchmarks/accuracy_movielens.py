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
import sys
import tempfile
from pathlib import Path

import torch
from accuracy.baselines import item_mean_rating_scores, item_prior_fit_scores, tfidf_scores
from accuracy.budget import Optimisation
from accuracy.embsum_runs import heuristic_summaries, item_length_report, train_embsum
from accuracy.movielens_data import DEFAULT_DATA, load_reads, movielens_run_arguments
from accuracy.nrms import train_nrms
from accuracy.results import Result, cold_metrics, print_rows, result_rows, run_seeds
from transformers import set_seed
from transformers.utils import logging as hf_logging

from embsum_hf.data import load_movielens, split_by_time
from embsum_hf.training import baseline_scores, impression_metrics
from embsum_hf.training.recipe import FROM_SCRATCH_LEARNING_RATE, build_model_and_processor

logger = logging.getLogger("accuracy_movielens")


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
    "embsum+lsa+in-batch+logq": ({"text_embedding_init": True}, {"in_batch_negatives": True, "logq_correction": True}),
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


def print_table(summary: dict[str, dict], seeds: list[int], protocol: str) -> None:
    counts = summary["popularity"]["mean"]
    print(
        f"\nml-100k:test, protocol {protocol} | {counts['num_impressions']:.0f} impressions scored "
        f"({counts['num_skipped_one_class']:.0f} one-class skipped) | seeds {seeds} | mean ± std"
    )
    print_rows(summary)


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
