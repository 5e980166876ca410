"""How every stage of the pipeline grows with the data, up to MINDlarge's size: wall time, CPU time and peak RSS.

For each size (a fraction of MINDlarge: about 1,000,000 users, 161,013 news and 2,232,748 training impressions at
1/1) the benchmark writes MIND-format synthetic data as a stream (`news.tsv`, `behaviors.tsv`; history lengths and
impression sizes drawn as in MIND: history median 19 / mean 33, impression median 24 / mean 37, about 1.5 clicks
per impression, Zipf-like news popularity), then runs each stage in a child process of its own and reads that
child's resource usage (`os.wait4`: wall time, user + system CPU time, peak RSS):

  prepare        `embsum prepare`: read the TSVs, save the split (datasets folder)
  rows           `build_training_rows` over the saved split (the Trainer's rows)
  histories      every user's history as `embsum encode-users` reads it (`user_histories`), without the model
  train          `embsum train --max_steps 100`, 4 impressions a step (loads the TSVs, builds its rows and item
                 table, trains; --quick: 10 steps)
  encode-items   `embsum encode-items` over every news item
  encode-users   `embsum encode-users` over every user
  recommend      `embsum recommend --faiss --k 10` for every user

The model is the tiny shape of `make demo` (d_model 64, 2 + 2 layers, 4 heads, d_ff 256) with a 2,000-piece
tokenizer trained once per size on a 20,000-item sample of the news (the `setup` step, also measured, which saves
the untrained model the encode stages run on: their cost does not depend on the weights). The growth
exponent of a stage is the least-squares slope of log(wall time) (and of log(CPU time), log(peak RSS)) against
log(size) over the sizes run; the JSON also gives it between the two largest sizes.

Usage:
  python benchmarks/scale.py --quick                      # a small ladder, a smoke run (3.6 CPU-minutes)
  python benchmarks/scale.py --sizes 1/64,1/32,1/16,1/8 --json out.json
  python benchmarks/scale.py --json out.json               # the full ladder: 1/8, 1/4, 1/2, 1/1
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

logger = logging.getLogger("scale")

# MINDlarge (Wu et al., ACL 2020): users, news, training impressions
FULL = {"users": 1_000_000, "news": 161_013, "impressions": 2_232_748}
FULL_LADDER = "1/8,1/4,1/2,1/1"
QUICK_LADDER = "1/4096,1/1024"
STAGES = ("prepare", "rows", "histories", "train", "encode-items", "encode-users", "recommend")
NEEDS_SETUP = {"train", "encode-items", "encode-users", "recommend"}
TINY = dict(d_model=64, num_layers=2, num_heads=4, d_ff=256)
SHAPE = dict(
    **TINY, dropout_rate=0.0, max_history_items=16, session_max_tokens=160, item_max_tokens=40, summary_mode="start"
)  # the demo's recipe (`demo_run_arguments`)
TOKENIZER_SAMPLE = 20_000
MIN_NEWS = 2_000
TRAIN_STEPS, QUICK_TRAIN_STEPS, TRAIN_BATCH = 100, 10, 4  # batch: impressions (each with its clicks, 4 negatives each)
VOCAB_SIZE = 2000
CATEGORIES = [
    "news", "sports", "finance", "lifestyle", "travel", "video", "foodanddrink", "weather", "autos", "health",
    "entertainment", "tv", "music", "movies", "kids", "middleeast", "northamerica", "games",
]  # fmt: skip
_SYLLABLES = (
    "ba be bi bo bu ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu ra re ri ro ru ta te ti".split()
)


def lognormal(rng: np.random.Generator, median: float, mean: float, size: int, low: int, high: int) -> np.ndarray:
    """Integers drawn from the log-normal with this median and mean, clipped to [low, high]."""
    sigma = math.sqrt(2 * math.log(mean / median))
    return np.clip(np.rint(rng.lognormal(math.log(median), sigma, size)), low, high).astype(np.int64)


def write_mind(folder: Path, fraction: float, seed: int = 0) -> dict[str, int]:
    """
    Write `news.tsv` and `behaviors.tsv` of a MIND-format training split at `fraction` of MINDlarge's size, a chunk
    of users at a time (memory does not grow with the size). Returns the counts written.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    # at least MIN_NEWS: with fewer, histories (up to 400 distinct items, as in MIND) could not be drawn
    num_news = max(MIN_NEWS, round(FULL["news"] * fraction))
    num_users = max(20, round(FULL["users"] * fraction))
    words = [a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in _SYLLABLES[:12]]  # 10,800 words
    word_weights = 1 / np.arange(1, len(words) + 1) ** 1.05
    word_weights /= word_weights.sum()
    with open(folder / "news.tsv", "w", encoding="utf-8") as news:
        for start in range(0, num_news, 10_000):
            count = min(10_000, num_news - start)
            title_lengths = rng.integers(6, 16, count)
            abstract_lengths = np.where(rng.random(count) < 0.05, 0, rng.integers(10, 60, count))
            drawn = iter(rng.choice(len(words), int(title_lengths.sum() + abstract_lengths.sum()), p=word_weights))
            for offset in range(count):
                title = " ".join(words[next(drawn)] for _ in range(title_lengths[offset])).capitalize()
                abstract = " ".join(words[next(drawn)] for _ in range(abstract_lengths[offset]))
                category = CATEGORIES[(start + offset) % len(CATEGORIES)]
                subcategory = f"{category}{(start + offset) % 15}"
                url = f"https://example.invalid/{start + offset}"
                news.write(f"N{start + offset}\t{category}\t{subcategory}\t{title}\t{abstract}\t{url}\t[]\t[]\n")
    popularity = 1 / (np.arange(num_news) + 10) ** 0.9
    popularity /= popularity.sum()
    order = rng.permutation(num_news)  # popularity rank -> news index
    begin = datetime(2019, 11, 9)
    impressions = histories = candidates = clicks = 0
    with open(folder / "behaviors.tsv", "w", encoding="utf-8") as behaviors:
        for start in range(0, num_users, 20_000):
            count = min(20_000, num_users - start)
            history_lengths = np.where(rng.random(count) < 0.03, 0, lognormal(rng, 19, 33, count, 1, 400))
            per_user = rng.geometric(FULL["users"] / FULL["impressions"], count)  # at least 1, mean 2.23
            sizes = lognormal(rng, 24, 37, int(per_user.sum()), 2, 300)
            draws = int(2 * history_lengths.sum() + sizes.sum())
            pool = iter(order[rng.choice(num_news, draws, p=popularity)].tolist())
            size_iter = iter(sizes.tolist())
            seconds = iter(rng.integers(0, 6 * 86400, int(per_user.sum())).tolist())
            extra_clicks = iter(rng.poisson(0.5, int(per_user.sum())).tolist())
            for offset in range(count):
                user = f"U{start + offset}"
                # distinct items, as in MIND (drawn twice as many, repeats dropped)
                drawn = dict.fromkeys(next(pool) for _ in range(2 * history_lengths[offset]))
                history = list(drawn)[: history_lengths[offset]]
                histories += len(history)
                history = " ".join(f"N{item}" for item in history)
                for _ in range(per_user[offset]):
                    shown = list(dict.fromkeys(next(pool) for _ in range(next(size_iter))))
                    clicked = min(len(shown) - 1, 1 + next(extra_clicks)) if len(shown) > 1 else 1
                    tokens = " ".join(f"N{item}-{int(i < clicked)}" for i, item in enumerate(shown))
                    when = (begin + timedelta(seconds=next(seconds))).strftime("%m/%d/%Y %I:%M:%S %p")
                    impressions += 1
                    candidates += len(shown)
                    clicks += clicked
                    behaviors.write(f"{impressions}\t{user}\t{when}\t{history}\t{tokens}\n")
    return {
        "news": num_news,
        "users": num_users,
        "impressions": impressions,
        "history_items": histories,
        "candidates": candidates,
        "clicks": clicks,
    }


def parse_sizes(text: str) -> list[Fraction]:
    sizes = []
    for part in text.split(","):
        try:
            size = Fraction(part.strip())
        except (ValueError, ZeroDivisionError):
            raise SystemExit(f"--sizes: {part!r} is not a fraction such as 1/8 or 0.125") from None
        if not 0 < size <= 4:
            raise SystemExit(f"--sizes: {part!r} must be in (0, 4]")
        sizes.append(size)
    return sorted(set(sizes))


def run_stage(name: str, command: list[str], log: Path, env: dict[str, str]) -> dict:
    """Run `command` as a child; its wall time, CPU time (user + system, its children included) and peak RSS."""
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        # cwd: the log's folder, so that `python -m` imports the package on PYTHONPATH, not one in the caller's cwd
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own usage, not every child's so far
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise RuntimeError(f"stage {name} exited with {process.returncode}; last lines of {log}:\n" + "\n".join(tail))
    # ru_maxrss is in KiB on Linux, in bytes on macOS
    rss = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(rss, 1),
    }


def child_setup(data: Path, work: Path) -> None:
    """Setup step (fixed cost): a 2,000-piece tokenizer trained on the first `TOKENIZER_SAMPLE` news items, and the
    tiny model built on it as `embsum train` builds it, untrained (the encode and recommend stages run on it: their
    cost does not depend on the weights)."""
    from embsum_hf import train_tokenizer
    from embsum_hf.data.schema import RecommendationData, impressions_dataset, items_dataset
    from embsum_hf.hub import save_repo
    from embsum_hf.processing_embsum import ITEM_TEMPLATES
    from embsum_hf.training.recipe import EmbSumRunArguments, build_model_and_processor

    texts = []
    with open(data / "news.tsv", encoding="utf-8") as news:
        for line, _ in zip(news, range(TOKENIZER_SAMPLE)):
            fields = line.rstrip("\n").split("\t")
            texts.append(ITEM_TEMPLATES["mind"].format(title=fields[3], abstract=fields[4], category=fields[1]))
    train_tokenizer(texts, vocab_size=VOCAB_SIZE).save_pretrained(work / "tokenizer")
    empty = RecommendationData(items_dataset({"item_id": []}), impressions_dataset([]), "mind", "none")
    args = EmbSumRunArguments(dataset="mind", tokenizer=str(work / "tokenizer"), **SHAPE)
    save_repo(*build_model_and_processor(args, empty, {}), work / "model")


def child_rows(saved: Path) -> None:
    """The `rows` stage: the Trainer's training rows of the saved split."""
    from embsum_hf.data import build_training_rows
    from embsum_hf.data.schema import RecommendationData

    rows = build_training_rows(RecommendationData.load_from_disk(saved).impressions)
    print(f"{len(rows)} training rows; embsum_hf from {Path(build_training_rows.__code__.co_filename).parents[1]}")


def child_histories(saved: Path) -> None:
    """The `histories` stage: every user's history as `embsum encode-users` reads it (`user_histories`), alone."""
    from embsum_hf.data import load_data, user_histories

    users = entries = 0
    for _, history in user_histories(load_data(saved)):
        users, entries = users + 1, entries + len(history)
    print(f"{users} users, {entries} history items")


def stage_commands(work: Path, python: str, train_steps: int) -> dict[str, list[str]]:
    cli = [python, "-m", "embsum_hf.cli"]
    here = [python, str(Path(__file__).resolve())]
    saved = work / "prepared" / "data" / "train"
    shape = [str(part) for key, value in SHAPE.items() for part in (f"--{key}", value)]
    train = (
        f"--dataset mind --train_data {work / 'mind'} --tokenizer {work / 'tokenizer'} "
        f"--output_dir {work / 'trained'} "
        f"--max_steps {train_steps} --per_device_train_batch_size {TRAIN_BATCH} --save_strategy no "
        "--eval_strategy no --report_to none --rouge_users 0 --disable_tqdm true --logging_steps 50 --seed 0"
    ).split() + shape
    stores = work / "stores"
    return {
        "setup": here + ["--child-setup", str(work / "mind"), str(work)],
        "prepare": cli
        + ["prepare", "--dataset", "mind", "--train_data", str(work / "mind"), "--output_dir", str(work / "prepared")],
        "rows": here + ["--child-rows", str(saved)],
        "histories": here + ["--child-histories", str(saved)],
        "train": cli + ["train", *train],
        "encode-items": cli
        + [
            "encode-items",
            "--model",
            str(work / "model"),
            "--data",
            str(saved),
            "--output",
            str(stores / "items"),
            "--no-progress",
        ],
        "encode-users": cli
        + [
            "encode-users",
            "--model",
            str(work / "model"),
            "--data",
            str(saved),
            "--output",
            str(stores / "users"),
            "--no-progress",
        ],
        "recommend": cli
        + [
            "recommend",
            "--users",
            str(stores / "users"),
            "--items",
            str(stores / "items"),
            "--output",
            str(work / "recommendations"),
            "--k",
            "10",
            "--faiss",
            "--no-progress",
        ],
    }


def run_size(size: Fraction, root: Path, bar: tqdm, stages: list[str], train_steps: int) -> dict:
    """Every stage at one size; its data, model and stores are deleted afterwards (the stage logs are kept)."""
    work = root / f"size-{size.numerator}-{size.denominator}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # a PYTHONPATH given first (e.g. another checkout's embsum_hf, to measure it), then this repository's
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(Path(__file__).resolve().parents[1])]))
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=path)
    result: dict = {"size": str(size), "fraction": float(size)}
    bar.set_postfix_str(f"{size}: generate")
    start, cpu = time.perf_counter(), time.process_time()
    result["counts"] = write_mind(work / "mind", float(size))
    result["generate"] = {
        "wall_s": round(time.perf_counter() - start, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
    }
    result["tsv_mib"] = round(sum(f.stat().st_size for f in (work / "mind").iterdir()) / 2**20, 1)
    logger.info("%s: wrote %s (%.1f MiB)", size, result["counts"], result["tsv_mib"])
    measured: dict = {}
    commands = stage_commands(work, sys.executable, train_steps)
    chosen = (["setup"] if NEEDS_SETUP & set(stages) else []) + [name for name in STAGES if name in stages]
    for name in chosen:
        if name in ("rows", "histories", "encode-items", "encode-users") and "prepare" not in measured:
            raise SystemExit(f"--stages: {name} reads the prepared split: add prepare")
        if name == "recommend" and not {"encode-items", "encode-users"} <= set(measured):
            raise SystemExit("--stages: recommend reads the stores: add encode-items and encode-users")
        bar.set_postfix_str(f"{size}: {name}")
        measured[name] = run_stage(name, commands[name], work / f"{name}.log", env)
        logger.info("%s %-12s %s", size, name, measured[name])
        bar.update(1)
    result["stages"] = measured
    stores = [f for f in (work / "stores").rglob("*") if f.is_file()]
    result["store_mib"] = round(sum(f.stat().st_size for f in stores) / 2**20, 1)
    for name in ("mind", "prepared", "model", "trained", "stores", "recommendations", "tokenizer"):
        shutil.rmtree(work / name, ignore_errors=True)
    return result


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) against log(x); None with fewer than two sizes."""
    if len(xs) < 2:
        return None
    lx, ly = np.log(xs), np.log(np.maximum(ys, 1e-9))
    return round(float(np.polyfit(lx, ly, 1)[0]), 3)


def exponents(results: list[dict]) -> dict:
    """Per stage: the growth exponent of wall time, CPU time and peak RSS over all sizes and over the last two."""
    fractions = [r["fraction"] for r in results]
    out = {}
    for stage in results[0]["stages"]:
        series = {m: [r["stages"][stage][m] for r in results] for m in ("wall_s", "cpu_s", "peak_rss_mib")}
        out[stage] = {
            f"{metric}_{span}": slope(
                fractions[-2:] if span == "last2" else fractions, values[-2:] if span == "last2" else values
            )
            for metric, values in series.items()
            for span in ("all", "last2")
        }
    return out


def table(results: list[dict], growth: dict) -> str:
    """A Markdown table: one row per stage, wall s / CPU s / peak RSS MiB per size, then the exponents."""
    head = "| stage | " + " | ".join(f"{r['size']} (wall s / CPU s / RSS MiB)" for r in results)
    head += " | exponent: wall | CPU | RSS |"
    lines = [head, "|---" * (len(results) + 4) + "|"]
    for stage in results[0]["stages"]:
        cells = [
            f"{s['wall_s']:.1f} / {s['cpu_s']:.1f} / {s['peak_rss_mib']:.0f}"
            for s in (r["stages"][stage] for r in results)
        ]
        g = growth[stage]
        exps = " | ".join(str(g[f"{m}_all"]) for m in ("wall_s", "cpu_s", "peak_rss_mib"))
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {exps} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", default=None, help=f"fractions of MINDlarge, comma-separated (default {FULL_LADDER})"
    )
    parser.add_argument("--quick", action="store_true", help=f"the ladder {QUICK_LADDER}, a smoke run")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument(
        "--workdir", default=None, help="keep each size's stage logs here (default: a temporary folder, deleted)"
    )
    parser.add_argument(
        "--stages", default=",".join(STAGES), help="comma-separated subset of the stages (default all)"
    )
    parser.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help=f"train stage steps (default {TRAIN_STEPS}; --quick {QUICK_TRAIN_STEPS})",
    )
    parser.add_argument(
        "--report",
        nargs="+",
        default=None,
        help="print the table of JSONs written by --json (several: one ladder run in pieces, e.g. one process per "
        "size, merged by size; with --json, the merged JSON is written there), and exit",
    )
    parser.add_argument("--child-setup", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-rows", help=argparse.SUPPRESS)
    parser.add_argument("--child-histories", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.report:
        return report(args.report, args.json)
    if args.child_setup:
        return child_setup(*map(Path, args.child_setup))
    if args.child_rows:
        return child_rows(Path(args.child_rows))
    if args.child_histories:
        return child_histories(Path(args.child_histories))
    sizes = parse_sizes(args.sizes or (QUICK_LADDER if args.quick else FULL_LADDER))
    stages = [name.strip() for name in args.stages.split(",")]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise SystemExit(f"--stages: unknown {unknown}; choose from {STAGES}")
    train_steps = args.train_steps or (QUICK_TRAIN_STEPS if args.quick else TRAIN_STEPS)
    results = []
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        root = args.workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="embsum-scale-"))
        total = len(sizes) * (len(stages) + bool(NEEDS_SETUP & set(stages)))
        with tqdm(total=total, desc="scale", unit="stage") as bar:
            for size in sizes:
                results.append(run_size(size, Path(root), bar, stages, train_steps))
                if args.json:  # after every size: a long ladder that dies keeps what it measured
                    _write(args.json, sizes, results, started, train_steps)
    growth = exponents(results)
    print(table(results, growth))
    if args.json:
        _write(args.json, sizes, results, started, train_steps)
        print(f"wrote {args.json}")


def report(paths: list[str], output: str | None) -> None:
    """Print the table of one or more `--json` files, their sizes merged (a size measured twice: the later file's)."""
    runs = [json.loads(Path(path).read_text(encoding="utf-8")) for path in paths]
    by_size = {result["size"]: result for run in runs for result in run["results"]}
    results = sorted(by_size.values(), key=lambda result: result["fraction"])
    growth = exponents(results) if len(results) > 1 else {}
    print(table(results, growth))
    if output:
        merged = {**runs[-1], "sizes": [r["size"] for r in results], "results": results, "exponents": growth}
        merged["total_wall_s"] = round(sum(run["total_wall_s"] for run in runs), 1)
        merged["merged_from"] = [Path(path).name for path in paths]
        Path(output).write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {output}")


def _write(path: str, sizes: list[Fraction], results: list[dict], started: float, train_steps: int) -> None:
    payload = {
        "benchmark": "scale",
        "sizes": [str(s) for s in sizes],
        "mindlarge": FULL,
        "model": {**SHAPE, "vocab_size": VOCAB_SIZE, "tokenizer_sample": TOKENIZER_SAMPLE},
        "train": {"steps": train_steps, "impressions_per_step": TRAIN_BATCH},
        "embsum_hf": str(Path(importlib.util.find_spec("embsum_hf").origin).parent),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        },
        "total_wall_s": round(time.perf_counter() - started, 1),
        "results": results,
        "exponents": exponents(results) if len(results) > 1 else {},
    }
    Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
