"""`compute_mind_metrics` (vectorised, all four metrics) against per-impression `roc_auc_score` (AUC alone).

Both run on the same random impressions in one process; prints the median time ratio over the repeats and checks
that the two AUCs agree.

    python benchmarks/metrics_speed.py [--impressions 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from embsum_hf.metrics import compute_mind_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impressions", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()

    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 40, size=options.impressions)  # MIND impressions hold about 5 to 40 candidates
    scores = [rng.normal(size=n).tolist() for n in lengths]
    labels = [[1] + [0] * (n - 1) for n in lengths]
    for row in labels:
        rng.shuffle(row)

    def sklearn_auc() -> float:
        return float(np.mean([roc_auc_score(y, s) for y, s in zip(labels, scores)]))

    ratios, ours, theirs = [], [], []
    for _ in range(options.repeats):  # alternate so load drifts hit both alike
        start = time.perf_counter()
        reference = sklearn_auc()
        theirs.append(time.perf_counter() - start)
        start = time.perf_counter()
        metrics = compute_mind_metrics(scores, labels)
        ours.append(time.perf_counter() - start)
        ratios.append(theirs[-1] / ours[-1])
    assert abs(metrics["auc"] - reference) < 1e-9, (metrics["auc"], reference)
    print(f"{options.impressions} impressions, {int(lengths.sum())} candidates")
    print(f"roc_auc_score per impression (AUC only): median {statistics.median(theirs):.2f} s")
    print(f"compute_mind_metrics (AUC, MRR, nDCG@5, nDCG@10): median {statistics.median(ours):.3f} s")
    print(f"median speed-up: {statistics.median(ratios):.1f}x (AUCs equal to 1e-9)")


if __name__ == "__main__":
    main()
