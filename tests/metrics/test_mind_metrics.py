"""The MIND metrics against the official formulas, the evaluate module and the leaderboard file format."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from embsum_hf.metrics import (
    candidate_ranks,
    compute_mind_metrics,
    read_prediction_file,
    rouge_scores,
    write_prediction_file,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def reference_metrics(predictions, references):
    """The official scorer's formulas, one impression at a time, in plain Python (stable descending order)."""
    per_metric = {"auc": [], "mrr": [], "ndcg@5": [], "ndcg@10": []}
    skipped = 0
    for scores, labels in zip(predictions, references):
        if len(set(labels)) < 2:
            skipped += 1
            continue
        order = sorted(range(len(scores)), key=lambda i: -scores[i])  # Python's sort is stable
        ranked = [labels[i] for i in order]
        per_metric["auc"].append(roc_auc_score(labels, scores))
        per_metric["mrr"].append(sum(y / (r + 1) for r, y in enumerate(ranked)) / sum(labels))
        for k in (5, 10):
            dcg = sum((2**y - 1) / math.log2(r + 2) for r, y in enumerate(ranked[:k]))
            ideal = sum((2**y - 1) / math.log2(r + 2) for r, y in enumerate(sorted(labels, reverse=True)[:k]))
            per_metric[f"ndcg@{k}"].append(dcg / ideal)
    result = {name: float(np.mean(values)) for name, values in per_metric.items()}
    return result | {"num_impressions": len(per_metric["auc"]), "num_skipped_one_class": skipped}


def random_impressions(seed, n, ties=False):
    rng = np.random.default_rng(seed)
    predictions, references = [], []
    for _ in range(n):
        size = int(rng.integers(1, 25))
        scores = rng.random(size)
        if ties:
            scores = np.round(scores * 4) / 4  # few distinct values: many ties
        predictions.append(scores.tolist())
        references.append((rng.random(size) < 0.3).astype(int).tolist())
    return predictions, references


def assert_metrics_close(actual, expected, tol=1e-9):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, abs=tol), name


def test_hand_computed_four_candidates():
    # scores 0.9, 0.1, 0.5, 0.3 with clicks on candidates 2 and 3 (1-based): descending order puts the clicks at
    # ranks 2 (score 0.5) and 4 (score 0.1).
    # AUC: of the 2 x 2 (click, non-click) pairs only (0.5 > 0.3) is ordered right -> 1/4.
    # MRR: (1/2 + 1/4) / 2 = 0.375.
    # nDCG@5 = nDCG@10 = (1/log2(3) + 1/log2(5)) / (1/log2(2) + 1/log2(3)) = 1.061606312 / 1.630929754.
    result = compute_mind_metrics([[0.9, 0.1, 0.5, 0.3]], [[0, 1, 1, 0]])
    assert result["auc"] == pytest.approx(0.25, abs=1e-12)
    assert result["mrr"] == pytest.approx(0.375, abs=1e-12)
    assert result["ndcg@5"] == pytest.approx(0.6509209298, abs=1e-9)
    assert result["ndcg@10"] == pytest.approx(0.6509209298, abs=1e-9)
    assert result["num_impressions"] == 1 and result["num_skipped_one_class"] == 0


def test_hand_computed_cutoff_and_average():
    # impression A: 7 candidates, the only click ranked 6th -> MRR 1/6, nDCG@5 0, nDCG@10 1/log2(7), AUC 1/6
    # impression B: perfect ranking of 1 click among 2 -> all metrics 1
    a_scores = [0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    a_labels = [0, 0, 0, 0, 0, 1, 0]
    result = compute_mind_metrics([a_scores, [2.0, 1.0]], [a_labels, [1, 0]])
    assert result["auc"] == pytest.approx((1 / 6 + 1) / 2)
    assert result["mrr"] == pytest.approx((1 / 6 + 1) / 2)
    assert result["ndcg@5"] == pytest.approx((0 + 1) / 2)
    assert result["ndcg@10"] == pytest.approx((1 / math.log2(7) + 1) / 2)


@pytest.mark.parametrize("ties", [False, True])
def test_equals_straightforward_implementation(ties):
    predictions, references = random_impressions(seed=int(ties), n=400, ties=ties)
    assert_metrics_close(compute_mind_metrics(predictions, references), reference_metrics(predictions, references))


def test_ties_keep_original_order():
    # all scores equal: the click in position 3 is ranked 3rd (stable), AUC counts every tie one half
    result = compute_mind_metrics([[0.5, 0.5, 0.5, 0.5]], [[0, 0, 1, 0]])
    assert result["mrr"] == pytest.approx(1 / 3)
    assert result["auc"] == pytest.approx(0.5)
    assert candidate_ranks([[0.5, 0.5, 0.9, 0.5]]) == [[2, 3, 1, 4]]


def test_random_scores_give_auc_one_half():
    # 3 clicks among 10 candidates, scores at random: per-impression AUC has standard deviation ~0.21, so the mean
    # over 20,000 impressions is 0.5 +- 0.0015
    rng = np.random.default_rng(7)
    predictions = rng.random((20_000, 10)).tolist()
    references = [[1, 1, 1] + [0] * 7] * 20_000
    result = compute_mind_metrics(predictions, references)
    assert result["auc"] == pytest.approx(0.5, abs=0.006)
    # expected reciprocal rank of a click placed at random among 10 is H_10 / 10
    assert result["mrr"] == pytest.approx(sum(1 / r for r in range(1, 11)) / 10, abs=0.006)


def test_one_class_impressions_skipped_and_counted():
    both = ([[0.3, 0.9]], [[0, 1]])
    result = compute_mind_metrics(both[0] + [[0.1, 0.2], [0.4], []], both[1] + [[0, 0], [1], []])
    assert_metrics_close(result, compute_mind_metrics(*both) | {"num_skipped_one_class": 3})
    assert result["num_impressions"] == 1 and result["auc"] == 1.0
    nothing = compute_mind_metrics([[0.1, 0.2]], [[1, 1]])
    assert math.isnan(nothing["auc"]) and nothing["num_impressions"] == 0


def test_validation_names_the_impression():
    with pytest.raises(ValueError, match="impression 1: 3 predictions but 2 references"):
        compute_mind_metrics([[0.1, 0.2], [0.1, 0.2, 0.3]], [[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="impression 1: a label other than 0/1"):
        compute_mind_metrics([[0.1, 0.2], [0.1, 0.2]], [[0, 1], [-1, -1]])
    with pytest.raises(ValueError, match="impression 0: a NaN score"):
        compute_mind_metrics([[float("nan"), 0.2]], [[0, 1]])
    with pytest.raises(ValueError, match="2 impressions of predictions but 1"):
        compute_mind_metrics([[0.1], [0.2]], [[1]])


def test_prediction_file_round_trip(tmp_path):
    path = tmp_path / "out" / "prediction.txt"
    predictions = [[0.1, 0.9, 0.5], [3.0], [0.2, 0.2, 0.7, -1.0]]
    write_prediction_file(path, [1, 2, "3"], predictions)
    assert path.read_text() == "1 [3,1,2]\n2 [1]\n3 [2,3,1,4]\n"
    ids, ranks = read_prediction_file(path)
    assert ids == ["1", "2", "3"]
    assert ranks == candidate_ranks(predictions)
    assert all(sorted(r) == list(range(1, len(r) + 1)) for r in ranks)
    assert [p.name for p in path.parent.iterdir()] == ["prediction.txt"]  # no temporary file left behind


def test_prediction_file_rejects_bad_ids(tmp_path):
    with pytest.raises(ValueError, match="whitespace"):
        write_prediction_file(tmp_path / "p.txt", ["a b"], [[0.1]])
    assert not (tmp_path / "p.txt").exists()


def test_evaluate_module_loads_offline(tmp_path):
    """In a fresh process with no network and an empty HF_HOME the local module loads and matches."""
    predictions, references = random_impressions(seed=3, n=50)
    script = (
        "import json, sys\n"
        "from embsum_hf.metrics import compute_mind_metrics, load_mind_metric\n"
        "p, r = json.loads(sys.stdin.read())\n"
        "metric = load_mind_metric()\n"
        "print(json.dumps([metric.compute(predictions=p, references=r), compute_mind_metrics(p, r)]))\n"
    )
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "PYTHONPATH": str(REPO_ROOT),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    completed = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps([predictions, references]),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    from_evaluate, direct = json.loads(completed.stdout.strip().splitlines()[-1])
    assert_metrics_close(from_evaluate, direct, tol=1e-12)
    assert_metrics_close(direct, reference_metrics(predictions, references))


def test_rouge_scores():
    # "the cat sat" vs "the cat ran": unigram overlap 2 of 3 each way -> F 2/3; bigram overlap 1 of 2 -> 1/2
    result = rouge_scores(["the cat sat", "a b c"], ["the cat ran", "a b c"])
    assert result["rouge1"] == pytest.approx((2 / 3 + 1) / 2)
    assert result["rouge2"] == pytest.approx((1 / 2 + 1) / 2)
    assert result["rougeL"] == pytest.approx((2 / 3 + 1) / 2)
    assert result["num_summaries"] == 2
    with pytest.raises(ValueError):
        rouge_scores(["a"], [])
