"""Do EmbSum's summaries describe the user? ROUGE vs one constant sentence, the specificity gap, distinct summaries.

Reproduces, on public data, a collapse seen with real LLM teacher profiles: a from-scratch EmbSum that writes the
population's most frequent keywords for everybody scores a ROUGE close to one constant sentence's. Prints every
metric of `embsum_hf.metrics.summary_metrics` for EmbSum and three baselines.

Protocol
  Data: MovieLens 100K (`load_movielens` + `split_by_time`); only the train split is used. Its users are split at
  random (seeded, `--heldout`) into training users and held-out users, who never appear in training (their
  impressions are dropped), so every summary is written for a user the model has never seen, as for new users.
  Teacher: a deterministic "LLM" writing "The viewer is interested in A, B, C, D and E." from the history window the
  model reads (the latest `max_history_items` train items): the 3 most frequent genres (ties: the more common genre
  overall) then the 2 title words recurring in at least 2 of the user's movies with the highest count x IDF (IDF
  over all titles), more genres when fewer words recur. Genres are few and skewed (drama, comedy, action) and the
  template is shared, so one constant sentence scores a high ROUGE; the recurring title words are a long tail
  ("star", "trek", "ii", ...).

Systems (all scored on the held-out users against their teacher summaries)
  teacher       the teacher's own summaries: the ceiling of every metric (its gap is the most a summary can say).
  constant      one sentence for everybody: `constant_summary` of the training users' teacher summaries.
  nearest       the teacher summary of the training user whose history window is most similar (Jaccard of the item
                sets; ties: the first training user). What a lookup table of training summaries achieves.
  embsum        EmbSum from scratch (the demo's tiny shape, the recipe's tokenizer trained once on the items and the
                training users' summaries), trained with `EmbSumTrainer` on the training users' impressions and
                summaries until `--budget-cpu-s` CPU seconds are spent (the accuracy benchmark's `TimeBudget`, torch
                pinned to `--threads`), one model per seed; summaries from `generate_summary` with the model's own
                generation config. Metrics are the mean over seeds (+- the seed-to-seed standard deviation).

Book data (`--data` a folder with items.jsonl, train.jsonl and summaries.jsonl, e.g. ../shared/data/goodreads-books,
read with the package's impressions loader `load_impressions`; this benchmark reads that folder when told to)
  Teacher: GPT-3.5's profiles "The reader is interested in A, B, C, D and E." (summaries.jsonl). Dev users: a seeded
  `--dev-users` of train.jsonl's users (seed `--split-seed`) are held out of training; their impression gets the
  held-out protocol (the positive among `--dev-negatives` books drawn uniformly from those they never read, for
  `--auc`). `--test FILE --test-summaries FILE` scores those other users (same items) against their own profiles
  instead, training on every user of train.jsonl. Shape: the demo's tiny one (d_model 64, 2 + 2 layers, a 2,000-piece
  tokenizer), `max_history_items` 8 (the longest history), items cut at 64 tokens, summaries at 40; every lever
  `embsum train` chooses from the data is chosen the same way (on these books: the sparse-catalogue levers and the
  summary recipe, `choose_data_levers`).
  nearest       the profile of the training user whose history window is most similar under TF-IDF of the item texts
                (cosine of the L2-normalised sums of the window's item vectors; ties: the first training user).
  keywords      a keyword extractor a person could write in an afternoon: every word of the window's item texts
                (ROUGE's tokens, no stop-word) is scored by how often the training users whose window holds it have it
                in their profile's slots ((picked + 1) / (held + 5)); the five best are written in the template of the
                training profiles, in the order of the books they first occur in, oldest first (the profiles tend to
                list their interests in reading order).
  keywords (best first)  the same five words, best first.
  Every system's `malformed_rate` is `summary_metrics`'.

Levers: `--set NAME=VALUE` overrides a run argument (`EmbSumRunArguments`: summary_loss_weight, d_model, ... and the
summary fields of `EmbSumConfig`), `--set-training NAME=VALUE` a training argument (`EmbSumTrainingArguments`:
summary_warmup_steps, ...); `--decodings NAME:K=V,...` also scores other generation settings of the same trained
models (rows `embsum[NAME]`). Seeds trained as separate processes (`--seeds 1`, `--seeds 2`, each its own `--json`)
become one report with `--merge A.json B.json ... --json OUT` (no run).

    OMP_NUM_THREADS=1 python benchmarks/summary_quality.py [--data ../shared/data/ml-100k] [--budget-cpu-s 150] \
        [--seeds 0,1] [--json results.json] [--set summary_loss_weight=2] [--decodings beam4:num_beams=4] [--auc]
    OMP_NUM_THREADS=1 python benchmarks/summary_quality.py --data ../shared/data/goodreads-books --budget-cpu-s 1800 \
        --seeds 0 --auc --set vocab_size=8000 --decodings greedy:history_boost=0,slot_lead=None
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import logging
import math
import random
import re
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import datasets
import numpy as np
import torch
from accuracy.budget import Optimisation, TimeBudget
from accuracy.embsum_runs import item_length_report, train_under_budget
from accuracy.movielens_data import DEFAULT_DATA, movielens_run_arguments
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from transformers import set_seed
from transformers.utils import logging as hf_logging

from embsum_hf.configuration_embsum import DEFAULT_SUMMARY_SLOT_LEAD, SLOT_STOPWORDS
from embsum_hf.data import load_impressions, load_movielens, split_by_time
from embsum_hf.data.schema import RecommendationData
from embsum_hf.data.users import user_histories
from embsum_hf.metrics import constant_summary, summary_metrics
from embsum_hf.metrics.summary import summary_slots
from embsum_hf.modeling_embsum import EmbSumModel
from embsum_hf.processing_embsum import EmbSumProcessor
from embsum_hf.serving.explain import generate_summaries
from embsum_hf.teacher.backend_heuristic import STOPWORDS
from embsum_hf.training import ImpressionEvaluator, impression_metrics
from embsum_hf.training.recipe import (
    FROM_SCRATCH_LEARNING_RATE,
    build_model_and_processor,
    demo_run_arguments,
    summary_vocabulary,
)

logger = logging.getLogger("summary_quality")

TITLE_WORD = re.compile(r"[a-z][a-z0-9']+")
WORD = re.compile(r"[A-Za-z0-9]+")  # ROUGE's tokens, before lower-casing
SHOWN = (
    "rougeL",
    "constant_rougeL",
    "specificity_gap",
    "distinct_summaries",
    "distinct_1",
    "distinct_2",
    "repeated_token_rate",
    "malformed_rate",
    "nonword_rate",
    "rouge1",
    "rouge2",
)
BOOK_FILES = ("items.jsonl", "train.jsonl", "summaries.jsonl")


# ---------------------------------------------------------------------------------------------------- teacher
class KeywordTeacher:
    """ "The viewer is interested in A, B, C, D and E.": top genres, then recurring title words by count x IDF."""

    def __init__(self, items: Sequence[Mapping], genres: int = 3, words: int = 2):
        self.genres, self.words = genres, words
        self.genre_counts = Counter(genre for item in items for genre in self._genres(item))
        document_frequency = Counter(word for item in items for word in set(self._words(item)))
        self.idf = {word: math.log(len(items) / n) for word, n in document_frequency.items()}

    @staticmethod
    def _genres(item: Mapping) -> list[str]:
        return [genre.strip().lower() for genre in str(item.get("genres") or "").split(",") if genre.strip()]

    @staticmethod
    def _words(item: Mapping) -> list[str]:
        return [word for word in TITLE_WORD.findall(str(item.get("title") or "").lower()) if word not in STOPWORDS]

    def __call__(self, history: Sequence[Mapping]) -> str | None:
        genres = Counter(genre for item in history for genre in self._genres(item))
        words = Counter(word for item in history for word in set(self._words(item)))
        recurring = sorted((w for w, n in words.items() if n >= 2), key=lambda w: (-words[w] * self.idf[w], w))
        keywords = recurring[: self.words]
        ranked = sorted(genres, key=lambda g: (-genres[g], -self.genre_counts[g], g))
        names = ranked[: self.genres + self.words - len(keywords)] + keywords
        if not names:
            return None
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"The viewer is interested in {listed}."


def nearest_neighbour_summaries(
    heldout: Sequence[str],
    training: Sequence[str],
    windows: Mapping[str, Sequence[Mapping]],
    summaries: Mapping[str, str],
) -> list[str]:
    """For each held-out user, the teacher summary of the training user with the most similar window (Jaccard)."""
    sets = {user: {item["item_id"] for item in windows[user]} for user in (*heldout, *training)}

    def jaccard(a: set, b: set) -> float:
        return len(a & b) / len(a | b) if a or b else 0.0

    return [summaries[max(training, key=lambda other: jaccard(sets[user], sets[other]))] for user in heldout]


# ---------------------------------------------------------------------------------------------------- book data
@dataclasses.dataclass
class Setup:
    """What every system is scored on: the training data and summaries, the held-out users' windows and references."""

    title: str
    run_args: object
    train: RecommendationData  # the training users' impressions
    train_summaries: dict[str, str]
    heldout: list[str]
    windows: list[list[Mapping]]  # the held-out users' history windows, in `heldout` order
    references: list[str]
    nearest: list[str]
    test: RecommendationData | None  # impressions to rank for --auc
    keywords: dict[str, list[str]] | None = None  # book data: the keyword extractor's summaries, by name


def read_summaries(path: Path) -> dict[str, str]:
    """user id -> summary of a JSON-lines file of {user_id, summary}; a bad line exits naming it."""
    summaries = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                summaries[str(record["user_id"])] = str(record["summary"])
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                print(f"{path}:{number}: expected a JSON object with user_id and summary ({error})", file=sys.stderr)
                sys.exit(2)
    return summaries


def redraw_candidates(rows: list[dict], item_ids: Sequence[str], negatives: int, seed: int) -> list[dict]:
    """Each row's positive among `negatives` items drawn uniformly (seeded) from those the user never read."""
    rng = random.Random(seed)
    redrawn = []
    for row in rows:
        positive = row["candidates"][row["labels"].index(1)]
        read = {*row["history"], positive}
        drawn: list[str] = []
        while len(drawn) < negatives:
            item = item_ids[rng.randrange(len(item_ids))]
            if item not in read and item not in drawn:
                drawn.append(item)
        candidates = [positive, *drawn]
        rng.shuffle(candidates)
        redrawn.append({**row, "candidates": candidates, "labels": [int(item == positive) for item in candidates]})
    return redrawn


def tfidf_nearest_summaries(
    items: datasets.Dataset,
    heldout_windows: Sequence[Sequence[Mapping]],
    training_windows: Sequence[Sequence[Mapping]],
    training_summaries: Sequence[str],
) -> list[str]:
    """For each held-out window, the summary of the training window of highest TF-IDF cosine (see the docstring)."""
    ids = list(items["item_id"])
    texts = [f"{row.get('title') or ''} {row.get('description') or ''}" for row in items]
    matrix = TfidfVectorizer().fit_transform(texts)
    index = {item: i for i, item in enumerate(ids)}

    def users(windows: Sequence[Sequence[Mapping]]):
        rows = [index[item["item_id"]] for window in windows for item in window]
        owners = [user for user, window in enumerate(windows) for _ in window]
        pick = csr_matrix((np.ones(len(rows)), (owners, rows)), shape=(len(windows), len(ids)))
        return normalize(pick @ matrix)  # (users, vocabulary): the L2-normalised sum of the window's item vectors

    training = users(training_windows)
    nearest = []
    for start in range(0, len(heldout_windows), 256):
        similarity = users(heldout_windows[start : start + 256]) @ training.T
        nearest += [training_summaries[int(best)] for best in np.asarray(similarity.todense()).argmax(1)]
    return nearest


def keyword_summaries(
    items: datasets.Dataset,
    heldout_windows: Sequence[Sequence[Mapping]],
    training_windows: Sequence[Sequence[Mapping]],
    training_summaries: Sequence[str],
    words: int = 5,
) -> dict[str, list[str]]:
    """
    The keyword extractor (see the docstring): the `words` history words that training profiles pick most often,
    written in the template of the training summaries; `{"keywords": ..., "keywords (best first)": ...}`, the words
    from the oldest book to the newest and best first.
    """
    texts = {row["item_id"]: f"{row.get('title') or ''} {row.get('description') or ''}" for row in items}
    lead = DEFAULT_SUMMARY_SLOT_LEAD
    template = training_summaries[0]
    opening = template[: re.search(rf"\b{re.escape(lead)}\b", template, re.IGNORECASE).end()]

    def window_words(window: Sequence[Mapping]) -> dict[str, tuple[int, str]]:
        # every content word of the window -> (its first book, oldest first; its first spelling)
        found: dict[str, tuple[int, str]] = {}
        for book, item in enumerate(reversed(window)):  # windows are most recent first
            for spelling in WORD.findall(texts[item["item_id"]]):
                word = spelling.lower()  # a name keeps its capital; a word seen lower-case anywhere is written so
                if word not in SLOT_STOPWORDS:
                    first_book, first = found.get(word, (book, spelling))
                    found[word] = (first_book, word if spelling == word else first)
        return found

    def summary(chosen: list[str]) -> str:  # "A, B and C"; a window without a content word leaves the slot empty
        return f"{opening} {' and '.join([', '.join(chosen[:-1]), chosen[-1]] if len(chosen) > 1 else chosen)}."

    held, picked = Counter(), Counter()
    for window, profile in zip(training_windows, training_summaries):
        present = set(window_words(window))
        held.update(present)
        picked.update(present & {word for slot in summary_slots(profile, lead) or [] for word in slot})
    summaries: dict[str, list[str]] = {"keywords": [], "keywords (best first)": []}
    for window in heldout_windows:
        found = window_words(window)
        best = sorted(found, key=lambda word: -(picked[word] + 1) / (held[word] + 5))[:words]
        summaries["keywords"].append(summary([found[word][1] for word in sorted(best, key=lambda w: found[w][0])]))
        summaries["keywords (best first)"].append(summary([found[word][1] for word in best]))
    return summaries


def book_setup(options: argparse.Namespace) -> Setup:
    """The book data: training users, the dev (or `--test`) users, their profiles, the nearest-neighbour baseline."""
    folder = options.data
    items_file = folder / "items.jsonl"
    all_summaries = read_summaries(folder / "summaries.jsonl")
    train = load_impressions(items_file, folder / "train.jsonl", split="train")
    if options.test is not None:
        if options.test_summaries is None:
            print("--test needs --test-summaries (the held-out users' own reference summaries)", file=sys.stderr)
            sys.exit(2)
        test = load_impressions(items_file, options.test, split="test")
        test_summaries = read_summaries(options.test_summaries)
        training_data, name = train, f"{options.test.name} users"
    else:
        users = sorted(set(train.impressions["user_id"]))
        random.Random(options.split_seed).shuffle(users)
        dev = set(users[: options.dev_users])
        rows = [row for row in train.impressions.to_list() if row["user_id"] in dev]
        rows = redraw_candidates(rows, list(train.items["item_id"]), options.dev_negatives, options.split_seed)
        test = load_impressions(items_file, datasets.Dataset.from_list(rows), split="dev")
        test_summaries = all_summaries
        training_data, name = only_users(train, set(users) - dev), f"dev users (split seed {options.split_seed})"
    run_args = demo_run_arguments(
        folder,
        dataset="impressions",
        train_data=str(folder / "train.jsonl"),
        items_data=str(items_file),
        eval_data=None,
        paper_split=False,
        summaries=str(folder / "summaries.jsonl"),
        teacher="GPT-3.5 (ONCE)",
        dataset_name="Goodreads books (ONCE)",
        license="other",
        max_history_items=8,
        item_max_tokens=64,
        session_max_tokens=80,
        summary_max_tokens=40,
    )
    run_args = dataclasses.replace(run_args, **parse_assignments(options.set))
    window = run_args.max_history_items
    training_windows = {user: list(history[:window]) for user, history in user_histories(training_data)}
    train_summaries = {user: all_summaries[user] for user in training_windows if user in all_summaries}
    heldout_windows = {user: list(history[:window]) for user, history in user_histories(test)}
    missing = sorted(user for user in heldout_windows if user not in test_summaries)
    if missing:
        print(f"no reference summary for {len(missing)} held-out users, e.g. {missing[:3]}", file=sys.stderr)
        sys.exit(2)
    heldout = sorted(heldout_windows)
    trained = sorted(train_summaries)
    nearest = tfidf_nearest_summaries(
        train.items,
        [heldout_windows[user] for user in heldout],
        [training_windows[user] for user in trained],
        [train_summaries[user] for user in trained],
    )
    keywords = keyword_summaries(
        train.items,
        [heldout_windows[user] for user in heldout],
        [training_windows[user] for user in trained],
        [train_summaries[user] for user in trained],
    )
    return Setup(
        title=f"Goodreads books: {len(heldout)} {name}, {len(trained)} training users",
        run_args=run_args,
        train=only_users(training_data, set(trained)),
        train_summaries=train_summaries,
        heldout=heldout,
        windows=[heldout_windows[user] for user in heldout],
        references=[test_summaries[user] for user in heldout],
        nearest=nearest,
        keywords=keywords,
        test=test,
    )


def movielens_setup(options: argparse.Namespace) -> Setup:
    """MovieLens 100K with the keyword teacher (see the docstring)."""
    if not (options.data / "u.data").is_file():
        print(
            f"MovieLens 100K not found: {options.data} has no u.data (pass --data <ml-100k folder>)", file=sys.stderr
        )
        sys.exit(2)
    train, _, test = split_by_time(load_movielens(options.data))
    # the accuracy benchmark's shape, with the summary loss on
    run_args = movielens_run_arguments(options.data, teacher="keyword teacher", summary_loss_weight=1.0)
    run_args = dataclasses.replace(run_args, **parse_assignments(options.set))
    window = run_args.max_history_items
    teacher = KeywordTeacher(train.items.to_list())
    windows = {user: list(history[:window]) for user, history in user_histories(train)}
    summaries = {user: text for user, history in windows.items() if (text := teacher(history)) is not None}
    users = sorted(summaries)
    random.Random(0).shuffle(users)
    cut = int(len(users) * options.heldout)
    heldout, training = sorted(users[:cut]), sorted(users[cut:])
    return Setup(
        title=f"MovieLens-100K keyword teacher: {len(heldout)} held-out users, {len(training)} training users",
        run_args=run_args,
        train=only_users(train, set(training)),
        train_summaries={user: summaries[user] for user in training},
        heldout=heldout,
        windows=[windows[user] for user in heldout],
        references=[summaries[user] for user in heldout],
        nearest=nearest_neighbour_summaries(heldout, training, windows, summaries),
        test=test,
    )


# ---------------------------------------------------------------------------------------------------- EmbSum
def only_users(data: RecommendationData, users: set[str]) -> RecommendationData:
    impressions = data.impressions.filter(lambda user: user in users, input_columns="user_id")
    return dataclasses.replace(data, impressions=impressions, split=f"{data.split}:training-users")


def train_and_summarise(
    run_args,
    train: RecommendationData,
    summaries: dict[str, str],
    heldout_windows: list[list[Mapping]],
    optimisation: Optimisation,
    budget_seconds: float,
    seed: int,
    output_dir: Path,
    generate: dict[str, dict],
    test: RecommendationData | None,
    saved: Path | None = None,
    load: bool = False,
    training_overrides: dict | None = None,
) -> tuple[dict[str, list[str]], TimeBudget, float | None, str]:
    """
    Train EmbSum under the CPU budget (or `load` it from `saved`, else save it there); its summaries of the
    held-out windows under each decoding of `generate` (name -> generation settings over the model's own) and its
    test AUC when `test` is given.
    """
    budget = optimisation.budget(budget_seconds)
    if load:
        model, processor = EmbSumModel.from_pretrained(saved), EmbSumProcessor.from_pretrained(saved)
        budget.steps, budget.cpu_seconds = json.loads((saved / "budget.json").read_text()).values()
    else:
        model, processor = train_model(
            run_args, train, summaries, optimisation, budget, seed, output_dir, training_overrides
        )
        if saved is not None:
            model.save_pretrained(saved)
            processor.save_pretrained(saved)
            (saved / "budget.json").write_text(json.dumps({"steps": budget.steps, "cpu_s": budget.cpu_seconds}))
    generated = {
        name: generate_summaries(model, processor, heldout_windows, batch_size=32, progress=True, **settings)
        for name, settings in generate.items()
    }
    auc = None
    if test is not None:
        scores = ImpressionEvaluator(test, processor).predict(model).scores
        auc = impression_metrics(scores, test.impressions["labels"], split=test.split)["auc"]
    return generated, budget, auc, repr(model.t5.generation_config.to_diff_dict())


def train_model(
    run_args, data, summaries, optimisation, budget, seed, output_dir, training_overrides=None
) -> tuple[EmbSumModel, EmbSumProcessor]:
    """EmbSum from the recipe, trained on `data` until `budget` is spent (the accuracy benchmark's settings)."""
    return train_under_budget(run_args, data, summaries, optimisation, budget, seed, output_dir, training_overrides)


# ---------------------------------------------------------------------------------------------------- main
def parse_assignments(pairs: Sequence[str]) -> dict:
    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise SystemExit(f"expected NAME=VALUE, got {pair!r}")
        try:
            values[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[name] = text
    return values


def summarise_runs(runs: list[dict]) -> dict:
    """Mean and seed-to-seed standard deviation of each metric over runs."""
    out = {}
    for name in runs[0]:
        values = [run[name] for run in runs if isinstance(run[name], (int, float)) and run[name] == run[name]]
        if values:
            out[name] = statistics.fmean(values)
            out[f"{name}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


# the options every report merged by `--merge` must share (only the seeds differ)
MERGE_AGREE = (
    "data", "budget_cpu_s", "heldout", "dev_users", "dev_negatives", "split_seed", "test", "test_summaries", "set",
    "set_training", "decodings", "batch_size", "learning_rate", "threads", "auc", "load_models",
)  # fmt: skip


def merge_reports(paths: Sequence[Path], output: Path | None) -> None:
    """
    `--merge`: one report of the seeds of several `--json` reports of the same run (seeds trained as separate
    processes), every system's mean and seed-to-seed std over all of them. A report of one seed needs no
    `baseline_runs` (its baseline rows are that seed's); reports must agree on `MERGE_AGREE` and not repeat a seed.
    """
    reports = []
    for path in paths:
        try:
            report = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            sys.exit(f"--merge: cannot read {path}: {error}")
        fields = ("options", "systems", "embsum_runs", "embsum_details")
        if not isinstance(report, dict) or not all(isinstance(report.get(field), (dict, list)) for field in fields):
            sys.exit(f"--merge: {path} is no summary_quality.py --json report (it needs {', '.join(fields)})")
        reports.append(report)
    first = reports[0]
    for path, report in zip(paths[1:], reports[1:]):
        for name in MERGE_AGREE:
            if report["options"].get(name) != first["options"].get(name):
                mine, theirs = report["options"].get(name), first["options"].get(name)
                sys.exit(f"--merge: {path} has {name}={mine!r} where {paths[0]} has {theirs!r}")
    seeds = [seed for report in reports for seed in report["options"]["seeds"].split(",")]
    if len(set(seeds)) != len(seeds):
        sys.exit(f"--merge: the reports repeat seeds ({', '.join(seeds)})")
    baselines: dict[str, list[dict]] = {}
    for path, report in zip(paths, reports):
        stored = report.get("baseline_runs")
        if stored is None:
            if len(report["options"]["seeds"].split(",")) != 1:
                sys.exit(f"--merge: {path} has several seeds and no per-seed baseline_runs (an older report)")
            stored = {
                name: [{key: value for key, value in row.items() if not key.endswith("_std")}]
                for name, row in report["systems"].items()
                if name not in report["embsum_runs"]
            }
        for name, values in stored.items():
            baselines.setdefault(name, []).extend(values)
    runs = {name: [run for report in reports for run in report["embsum_runs"][name]] for name in first["embsum_runs"]}
    rows = {name: summarise_runs(values) for name, values in {**baselines, **runs}.items()}
    print(f"\nmerged {', '.join(Path(path).name for path in paths)}; seeds {', '.join(seeds)}")
    print_table(rows)
    if output is not None:
        merged = {
            **first,
            "options": {**first["options"], "seeds": ",".join(seeds)},
            "systems": rows,
            "baseline_runs": baselines,
            "embsum_runs": runs,
            "embsum_details": [detail for report in reports for detail in report["embsum_details"]],
            "merged_from": [Path(path).name for path in paths],
        }
        output.write_text(json.dumps(merged, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"wrote {output}")


def print_table(rows: dict[str, dict]) -> None:
    print(f"\n{'system':<22}" + "".join(f"{name:>20}" for name in SHOWN))
    for system, metrics in rows.items():
        cells = []
        for name in SHOWN:
            value, std = metrics.get(name, float("nan")), metrics.get(f"{name}_std")
            cells.append(f"{value:.3f}" + (f" +-{std:.3f}" if std is not None else ""))
        print(f"{system:<22}" + "".join(f"{cell:>20}" for cell in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="the ml-100k folder, or a book folder with items.jsonl, train.jsonl and summaries.jsonl",
    )
    parser.add_argument("--budget-cpu-s", type=float, default=150.0, help="CPU seconds of training per EmbSum model")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds: one EmbSum model each")
    parser.add_argument("--heldout", type=float, default=0.2, help="MovieLens: share of users held out of training")
    parser.add_argument("--dev-users", type=int, default=500, help="book data: users held out as dev users")
    parser.add_argument("--dev-negatives", type=int, default=19, help="book data: negatives per dev impression")
    parser.add_argument("--split-seed", type=int, default=0, help="book data: seed of the dev users and negatives")
    parser.add_argument("--test", type=Path, default=None, help="book data: held-out users' impressions to score")
    parser.add_argument("--test-summaries", type=Path, default=None, help="book data: their reference summaries")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="EmbSumRunArguments overrides")
    parser.add_argument(
        "--set-training",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="EmbSumTrainingArguments overrides, e.g. summary_warmup_steps=300",
    )
    parser.add_argument(
        "--decodings",
        nargs="*",
        default=[],
        metavar="NAME:K=V,K=V",
        help="also score these decodings of the same models, e.g. beam4:num_beams=4 greedy:no_repeat_ngram_size=0",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=FROM_SCRATCH_LEARNING_RATE)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--auc", action="store_true", help="also the test (book data: dev) AUC of each EmbSum model")
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    parser.add_argument("--save-models", type=Path, default=None, help="save each seed's model to DIR/seed-N")
    parser.add_argument("--load-models", type=Path, default=None, help="score the models saved in DIR (no training)")
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=None,
        metavar="REPORT",
        help="no run: merge these --json reports of the same run on other seeds into one (mean +- std over all seeds)",
    )
    options = parser.parse_args()
    if options.merge:
        merge_reports(options.merge, options.json)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    hf_logging.set_verbosity_warning()
    torch.set_num_threads(options.threads)
    seeds = [int(seed) for seed in options.seeds.split(",")]
    books = all((options.data / name).is_file() for name in BOOK_FILES)
    setup = book_setup(options) if books else movielens_setup(options)
    run_args, heldout, references = setup.run_args, setup.heldout, setup.references
    generate = {"embsum": {}}  # the model's own generation config
    for spec in options.decodings:
        name, _, settings = spec.partition(":")
        generate[f"embsum[{name}]"] = parse_assignments([pair for pair in settings.split(",") if pair])

    constant = constant_summary(list(setup.train_summaries.values()))
    logger.info("%s; constant sentence: %r", setup.title, constant)
    # the constant schedule its README numbers were measured with
    optimisation = Optimisation(
        batch_size=options.batch_size, learning_rate=options.learning_rate, schedule="constant"
    )

    words = set(summary_vocabulary(setup.train_summaries.values()))

    def metrics(predictions: list[str], seed: int) -> dict:
        # nonword_rate: summaries with a slot word no training summary uses ("selen"): WellFormedSlots with the
        # processor's summary words writes none
        return summary_metrics(predictions, references, constant=constant, seed=seed, words=words)

    baselines = {"teacher": references, "constant": [constant] * len(heldout), "nearest": setup.nearest}
    baselines.update(setup.keywords or {})
    baseline_runs = {name: [metrics(texts, seed) for seed in seeds] for name, texts in baselines.items()}
    rows = {name: summarise_runs(name_runs) for name, name_runs in baseline_runs.items()}
    runs: dict[str, list[dict]] = {name: [] for name in generate}
    details = []
    with tempfile.TemporaryDirectory() as tmp:
        if options.load_models is None:  # saved models bring their own tokenizer
            set_seed(seeds[0])
            _, processor = build_model_and_processor(run_args, setup.train, setup.train_summaries)  # the one tokenizer
            logger.info(item_length_report(processor, setup.train.items))
            processor.tokenizer.save_pretrained(Path(tmp, "tokenizer"))
            run_args = dataclasses.replace(run_args, tokenizer=str(Path(tmp, "tokenizer")))
        for seed in seeds:
            generated, budget, auc, generation = train_and_summarise(
                run_args,
                setup.train,
                setup.train_summaries,
                setup.windows,
                optimisation,
                options.budget_cpu_s,
                seed,
                Path(tmp, f"embsum-{seed}"),
                generate,
                setup.test if options.auc else None,
                saved=folder / f"seed-{seed}" if (folder := options.load_models or options.save_models) else None,
                load=options.load_models is not None,
                training_overrides=parse_assignments(options.set_training),
            )
            for name, texts in generated.items():
                runs[name].append(metrics(texts, seed) | ({"auc": auc} if auc is not None else {}))
            top = Counter(generated["embsum"]).most_common(3)
            examples = {name: list(zip(heldout[:5], texts[:5], references[:5])) for name, texts in generated.items()}
            details.append(
                {
                    "seed": seed,
                    "steps": budget.steps,
                    "train_cpu_s": budget.cpu_seconds,
                    "generation_config": generation,
                    "most_common_summaries": top,
                    "examples": examples["embsum"],
                    "examples_by_decoding": examples,
                }
            )
            logger.info("seed %d: %d steps, %.0f CPU s; top summaries %s", seed, budget.steps, budget.cpu_seconds, top)
    rows.update({name: summarise_runs(name_runs) for name, name_runs in runs.items()})

    print(
        f"\n{setup.title}; seeds {seeds}; {options.budget_cpu_s:.0f} CPU s per EmbSum model; overrides {options.set} "
        f"{options.set_training}"
    )
    print(f"constant sentence: {constant!r}")
    print_table(rows)
    for detail in details:
        print(
            f"seed {detail['seed']}: {detail['steps']} steps, {detail['train_cpu_s']:.0f} CPU s; "
            f"top summaries {detail['most_common_summaries']}"
        )
        for user, generated, reference in detail["examples"][:2]:
            print(f"  user {user}\n    embsum:  {generated}\n    teacher: {reference}")
    if "auc" in rows["embsum"]:
        auc, std = 100 * rows["embsum"]["auc"], 100 * rows["embsum"]["auc_std"]
        print(f"EmbSum test AUC {auc:.2f} +-{std:.2f} (all test users)")
    if options.json:
        report = {
            "options": {k: str(v) for k, v in vars(options).items()},
            "run_args": dataclasses.asdict(run_args),
            "constant": constant,
            "systems": rows,
            "baseline_runs": baseline_runs,
            "embsum_runs": runs,
            "embsum_details": details,
        }
        options.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {options.json}")


if __name__ == "__main__":
    main()
