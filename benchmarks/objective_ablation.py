"""Measure EmbSum's "our choice" knobs side by side on the built-in synthetic MIND data (same data, same steps).

Variants (each trains EmbSum-tiny from scratch with the demo recipe and is evaluated on the same held-out split):
`<summary_mode>-<lambda>`: h_sum read at the end of the decoder's own greedy summary (`generate`, our default) or
from the decoder start token (`start`, the demo's), and the summary loss weight lambda (1 = our default, 0 = no
summary objective). Prints AUC / MRR / nDCG@5 / nDCG@10, ROUGE-L of the generated summaries, seconds per run, and
each variant's AUC over the demo recipe's.

    python benchmarks/objective_ablation.py [--max-steps 400] [--variants start-1 generate-1 start-0.2 start-0] \\
        [--bf16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from embsum_hf.data import make_synthetic_mind
from embsum_hf.training import EmbSumTrainingArguments
from embsum_hf.training.recipe import demo_run_arguments, train_embsum

VARIANTS = {  # name: (summary_mode, summary_loss_weight)
    "generate-1": {"summary_mode": "generate", "summary_loss_weight": 1.0},
    "start-1": {"summary_mode": "start", "summary_loss_weight": 1.0},
    "start-0.2": {"summary_mode": "start", "summary_loss_weight": 0.2},
    "start-0": {"summary_mode": "start", "summary_loss_weight": 0.0},
}
BASELINE = "start-1"  # the demo's recipe
METRICS = ("auc", "mrr", "ndcg@5", "ndcg@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument("--rouge-users", type=int, default=50, help="0 skips ROUGE")
    parser.add_argument("--output", default=None, help="write the table as JSON here")
    options = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = make_synthetic_mind(Path(tmp) / "data")
        for name in options.variants:
            run_args = demo_run_arguments(data_dir, rouge_users=options.rouge_users, **VARIANTS[name])
            training_args = EmbSumTrainingArguments(
                output_dir=str(Path(tmp) / name),
                max_steps=options.max_steps,
                per_device_train_batch_size=options.batch_size,
                learning_rate=options.learning_rate,
                warmup_steps=20,
                max_grad_norm=options.max_grad_norm,
                eval_strategy="no",
                save_strategy="no",
                logging_steps=max(options.max_steps // 6, 1),
                report_to=[],
                bf16=options.bf16,
                use_cpu=not torch.cuda.is_available(),
                disable_tqdm=True,
                seed=0,
            )
            start = time.perf_counter()
            run = train_embsum(run_args, training_args)
            seconds = time.perf_counter() - start
            results[name] = {
                **{m: run["test"][f"test_{m}"] for m in METRICS},
                "seconds_total": round(seconds, 1),
                "rougeL": run.get("summary_rouge", {}).get("rougeL"),
                "split": run["test"]["split"],
            }

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(
        f"\n{options.max_steps} steps x {options.batch_size}, lr {options.learning_rate}, "
        f"{device}, bf16={options.bf16}"
    )
    print(f"{'variant':<12}" + "".join(f"{m:>9}" for m in METRICS) + f"{'rougeL':>9}{'seconds':>9}")
    for name, row in results.items():
        rouge = "-" if row["rougeL"] is None else f"{row['rougeL']:.3f}"
        print(
            f"{name:<12}" + "".join(f"{100 * row[m]:>9.2f}" for m in METRICS) + f"{rouge:>9}{row['seconds_total']:>9}"
        )
    if BASELINE in results:
        for name, row in results.items():
            print(f"{name:<12} AUC / {BASELINE} AUC = {row['auc'] / results[BASELINE]['auc']:.3f}")
    if options.output:
        Path(options.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
