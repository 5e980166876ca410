"""`make demo`'s script, shortened to a few steps, as a real process: the files and the report it promises."""

import json
import os
import subprocess
import sys
from pathlib import Path

from embsum_hf import EmbSumModel

REPO = Path(__file__).resolve().parents[1]


def test_demo_reports_writes_and_serves(tmp_path):
    result = subprocess.run(
        [sys.executable, "examples/demo.py", "--output-dir", str(tmp_path), "--max-steps", "4"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    names = ("auc", "mrr", "ndcg@5", "ndcg@10")
    for system in (metrics, metrics["random"], metrics["popularity"], metrics["dev"]):
        assert all(0.0 <= system[name] <= 1.0 for name in names)  # EmbSum at the top level, baselines by name
    assert metrics["split"] == "dev:test(90%)" and metrics["model_dir"] == str(tmp_path / "model")
    assert EmbSumModel.from_pretrained(tmp_path / "model").config.summary_mode == "start"

    out = result.stdout
    assert "Held-out impressions: dev:test(90%) (540 impressions)" in out and "Summary ROUGE-L over 50 users" in out
    ranked = out.split("Top 5 of 1500 stored items for ", 1)[1].splitlines()
    assert len([line for line in ranked[1:6] if line.startswith("  ")]) == 5 and ranked[6].startswith("Recommended")
    assert (tmp_path / "stores" / "items" / "store.json").is_file() and (tmp_path / "stores" / "users").is_dir()
