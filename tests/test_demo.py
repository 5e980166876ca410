"""`make demo`'s script, shortened to a few steps, as a real process: the files and the report it promises."""

import json
import logging
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from embsum_hf import EmbSumModel

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]


def test_demo_reports_writes_and_serves(tmp_path):
    result = subprocess.run(
        [sys.executable, "examples/demo.py", "--output-dir", str(tmp_path), "--max-steps", "4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    names = ("auc", "mrr", "ndcg@5", "ndcg@10")
    for system in (metrics, metrics["random"], metrics["popularity"], metrics["dev"]):
        assert all(0.0 <= system[name] <= 1.0 for name in names)  # EmbSum at the top level, baselines by name
    assert metrics["split"] == "dev:test(90%)" and metrics["model_dir"] == str(tmp_path / "model")
    assert EmbSumModel.from_pretrained(tmp_path / "model").config.summary_mode == "start"
    # the synthetic news are no sparse catalogue (shown non-clicks, 7 clicks per item): the paper's recipe, chosen
    levers = json.loads((tmp_path / "model" / "results.json").read_text())["data_levers"]
    assert levers == {
        "text_embedding_init": False,
        "in_batch_negatives": False,
        "logq_correction": False,
        "summary_warmup_steps": 0,
        "history_clicks": 0,
        "summary_copy": False,
        "summary_loss_weight": 1.0,
        "summary_history_boost": 16.0,
        "summary_session_positions": False,
    }

    out = result.stdout
    assert "Held-out impressions: dev:test(90%) (540 impressions)" in out and "Summary ROUGE-L over 50 users" in out
    ranked = out.split("Top 5 of 1500 stored items for ", 1)[1].splitlines()
    assert len([line for line in ranked[1:6] if line.startswith("  ")]) == 5 and ranked[6].startswith("Recommended")
    assert (tmp_path / "stores" / "items" / "store.json").is_file() and (tmp_path / "stores" / "users").is_dir()

    # step 6: the Space, started with the command the demo prints, timed on the demo model and its 1,500 items
    command = out.split("Try it in a browser:\n", 1)[1].splitlines()[0].split()
    assert command == [sys.executable, str(tmp_path / "space" / "app.py")]
    measure_space(tmp_path / "space", tmp_path / "space_run")


def measure_space(space: Path, scratch: Path) -> None:
    """Start-up and query latency of the demo's Space (the README quotes them), logged and written to the test
    artifacts: the process's start to its first page, the app's own model + catalogue load, and /recommend round
    trips through gradio_client for an example user (the first, then the median of three more)."""
    from gradio_client import Client

    from tests.hub.test_space import ARTIFACTS, start_app, stop_app

    scratch.mkdir()
    process, url, startup = start_app(space, scratch)
    try:
        client = Client(url, verbose=False)
        history = "\n".join(json.loads((space / "space_config.json").read_text())["examples"][0]["history"])
        rounds = []
        for _ in range(4):
            started = time.perf_counter()
            status, table, *_ = client.predict(history, 10, api_name="/recommend")
            rounds.append(time.perf_counter() - started)
        assert status.startswith("Ranked 1,500 items") and len(table["data"]) == 10
    finally:
        stop_app(process)
    log = (scratch / "app.log").read_text()
    report = {
        "process_start_to_first_page_s": round(startup, 3),
        "model_and_catalogue_load_s": float(re.search(r"start-up: .* loaded in ([\d.]+) s", log).group(1)),
        "first_query_round_trip_s": round(rounds[0], 3),
        "median_query_round_trip_s": round(statistics.median(rounds[1:]), 3),
        "app_query_s": [float(value) for value in re.findall(r"query: .*, ([\d.]+) s", log)],
        "threads": os.environ.get("OMP_NUM_THREADS"),
    }
    logger.info("demo Space latency: %s", report)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "space_latency.json").write_text(json.dumps(report, indent=2) + "\n")
    assert report["median_query_round_trip_s"] < 10  # a sanity bound; the README quotes the measured numbers
