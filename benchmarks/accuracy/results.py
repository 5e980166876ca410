"""One seed's results, their rows (a model scored without its prior, with a late prior or on the cold-start test
becomes a row of its own), the mean and std over seeds (seeds in parallel processes) and the printed table."""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor

from embsum_hf.data.schema import RecommendationData
from embsum_hf.training import impression_metrics

from .budget import TimeBudget

METRICS = ("auc", "mrr", "ndcg@5", "ndcg@10")


@dataclasses.dataclass
class Result:
    metrics: dict[str, float]
    budget: TimeBudget | None = None  # None: nothing learned


def cold_metrics(scores: list[list[float]], cold_test: RecommendationData) -> dict[str, float]:
    """The metrics of scores on the cold-start test, keyed `cold_<metric>` (a row of their own in the table)."""
    metrics = impression_metrics(scores, cold_test.impressions["labels"], split=cold_test.split)
    return {f"cold_{name}": metrics[name] for name in METRICS}


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
