"""The scale and GPU-throughput benchmarks as real processes, at their smallest: the JSON fields they promise."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}


def test_gpu_throughput_quick_on_cpu_writes_step_times_ratio_and_encode_throughput(tmp_path):
    out = tmp_path / "gpu.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_throughput.py", "--device", "cpu", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert payload["device_type"] == "cpu" and payload["ran_on_gpu"] is False and payload["peak_tflops"] is None
    rows = {(row["dtype"], row["compile"]): row for row in payload["results"]}
    assert set(rows) == {("bf16", False), ("bf16", True), ("fp32", False), ("fp32", True)}
    for row in rows.values():
        assert row["embsum_step_ms"] > 0 and row["bare_t5_step_ms"] > 0 and row["encode_items_per_s"] > 0
        assert row["ratio_embsum_to_bare"] > 0 and row["embsum_mfu"] is None  # no peak known for a CPU
        # EmbSum adds the poly-attention heads and the score to the bare T5 pass over the same tokens
        assert row["embsum_step_gflop"] > row["bare_t5_step_gflop"] > 0
    assert rows[("fp32", True)]["compile_backend"] == "eager"  # --quick on CPU: the compiled path, not inductor
    assert "ratio" in result.stdout and f"wrote {out}" in result.stdout


def test_gpu_throughput_mfu_uses_the_cards_peak():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from gpu_throughput import peak_for
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    assert peak_for("NVIDIA H100 80GB HBM3")["bf16"] == 989.4
    assert peak_for("NVIDIA H100 PCIe")["bf16"] == 756.0  # the more specific name wins
    assert peak_for("NVIDIA L40S")["bf16"] == 362.0 and peak_for("NVIDIA L4")["bf16"] == 121.0
    assert peak_for("NVIDIA A100-SXM4-80GB")["tf32"] == 156.0 and peak_for("Some GPU") is None


def test_scale_smallest_ladder_writes_mind_data_and_measures_each_stage(tmp_path):
    out = tmp_path / "scale.json"
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/scale.py",
            "--sizes",
            "1/8192,1/4096",
            "--stages",
            "prepare,rows,histories",
            "--json",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert payload["sizes"] == ["1/8192", "1/4096"]
    small, large = payload["results"]
    assert large["counts"]["users"] == 244 and large["counts"]["impressions"] > large["counts"]["users"]
    for result_ in (small, large):
        assert list(result_["stages"]) == ["prepare", "rows", "histories"]
        for stage in result_["stages"].values():
            assert stage["wall_s"] > 0 and stage["cpu_s"] > 0 and stage["peak_rss_mib"] > 50
    assert set(payload["exponents"]["rows"]) >= {"wall_s_all", "cpu_s_all", "peak_rss_mib_all"}
    rows_log = (tmp_path / "work" / "size-1-4096" / "rows.log").read_text()
    assert f"embsum_hf from {REPO}" in rows_log  # the stages ran this checkout's package

    # a ladder run in pieces (one process per size) merges into the same table and exponents
    pieces = []
    for name, result_ in (("large", large), ("small", small)):  # in any order: merged by size
        pieces.append(tmp_path / f"{name}.json")
        pieces[-1].write_text(json.dumps({**payload, "sizes": [result_["size"]], "results": [result_]}))
    merged_path = tmp_path / "merged.json"
    merged = subprocess.run(
        [sys.executable, "benchmarks/scale.py", "--report", *map(str, pieces), "--json", str(merged_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )
    assert merged.returncode == 0, merged.stderr[-3000:]
    again = json.loads(merged_path.read_text())
    assert again["sizes"] == ["1/8192", "1/4096"] and again["exponents"] == payload["exponents"]
    assert "| rows |" in merged.stdout and again["merged_from"] == ["large.json", "small.json"]
