"""One prepared script for a GPU machine: EmbSum's training step against a bare T5 step, MFU, encode throughput.

For each precision (bf16 autocast over fp32 weights, as `embsum train --bf16 true` trains; and fp32) and with
`torch.compile` off and on, in one process:

  step         a t5-small-shape EmbSum training step (forward, backward, AdamW) against a bare
               `transformers.T5ForConditionalGeneration` of the same shape on the same tokens (the encoder over every
               session and candidate row, the decoder teacher-forced on the summaries over each user's concatenated
               sessions, a mean-square loss on the candidate states so they are back-propagated too; AdamW). Reports
               both median step times, their ratio (the issue's goal: EmbSum within 1.3x in bf16), and each step's
               model FLOPs utilisation: the FLOPs of one step as `torch.utils.flop_counter` counts them on the
               uncompiled step, divided by the median step time and by the card's peak (`PEAK_TFLOPS`, dense, no
               sparsity; bf16 for bf16, TF32 for fp32 when TF32 matmuls are on, else FP32).
  encode-items `EmbSumModel.encode_item` + `item_score_keys` (what `embsum encode-items` runs per batch) over batches
               of `--item-batch` MIND-size items, in items per second.

Timing: CUDA-synchronised `time.perf_counter`, warm-up steps first (compilation happens there), the median of
`--repeats`, EmbSum and bare steps alternating. The card is `torch.cuda.get_device_name()`; `--peak-tflops`
overrides the table (a card not in it gets no MFU without it).

    python benchmarks/gpu_throughput.py --json benchmarks/results/gpu_throughput_<card>.json
    python benchmarks/gpu_throughput.py --device cpu --quick --json out.json   # the smoke run (tiny shape, ~1 min)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import T5Config, T5ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shapes and batch of train_throughput.py
from train_throughput import SHAPES, random_batch  # noqa: E402

from embsum_hf import EmbSumConfig, EmbSumModel  # noqa: E402
from embsum_hf.training.arguments import DEFAULT_NUM_NEGATIVES  # noqa: E402

logger = logging.getLogger("gpu_throughput")

# Dense peak TFLOPS (no 2:4 sparsity) from the vendors' data sheets, by a part of the name `torch.cuda` reports; the
# first match wins, so more specific names come first ("L40S" before "L4", "H100 PCIe" before "H100").
PEAK_TFLOPS = {
    "H200": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2},
    "H100 NVL": {"bf16": 835.0, "tf32": 417.5, "fp32": 60.0},
    "H100": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "A100": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L40S": {"bf16": 362.0, "tf32": 183.0, "fp32": 91.6},
    "L4": {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3},
    "A10G": {"bf16": 70.0, "tf32": 35.0, "fp32": 31.2},
    "A10": {"bf16": 125.0, "tf32": 62.5, "fp32": 31.2},
}
QUICK = dict(shape="tiny", vocab=1000, users=2, sessions=1, session_tokens=64, item_batch=64, repeats=2, warmup=1)
FULL = dict(shape="small", vocab=32128, users=16, sessions=2, session_tokens=256, item_batch=512, repeats=10, warmup=3)


def peak_for(device_name: str) -> dict[str, float] | None:
    for key, peak in PEAK_TFLOPS.items():
        if key.lower() in device_name.lower():
            return peak
    return None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: str):
    if dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bare_loss(t5: T5ForConditionalGeneration, batch: dict) -> torch.Tensor:
    """A bare T5's loss on EmbSum's tokens: sessions -> concatenated memory -> summary NLL, + the candidate rows."""
    users, sessions, length = batch["session_input_ids"].shape
    states = t5.encoder(input_ids=batch["session_input_ids"].flatten(0, 1)).last_hidden_state  # (B*G, L, d)
    memory = states.reshape(users, sessions * length, -1)
    loss = t5(encoder_outputs=BaseModelOutput(last_hidden_state=memory), labels=batch["summary_labels"]).loss
    candidates = t5.encoder(input_ids=batch["candidate_input_ids"].flatten(0, 1)).last_hidden_state
    return loss + candidates.float().pow(2).mean()


def embsum_loss(model: EmbSumModel, batch: dict) -> torch.Tensor:
    return model(**batch).loss


def make_step(module: torch.nn.Module, loss_fn, device: torch.device, dtype: str, backend: str | None):
    """A training step (forward under `dtype`, backward, AdamW) of `module`; the loss `torch.compile`d with
    `backend` unless it is None."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    forward = loss_fn if backend is None else torch.compile(loss_fn, backend=backend)

    def step(batch: dict) -> None:
        with autocast(device, dtype):
            loss = forward(module, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def step_flops(module: torch.nn.Module, loss_fn, batch: dict, device: torch.device, dtype: str) -> int:
    """Forward + backward FLOPs of one step, as `torch.utils.flop_counter` counts them (matmuls, attention)."""
    with FlopCounterMode(display=False) as counter:
        with autocast(device, dtype):
            loss = loss_fn(module, batch)
        loss.backward()
    module.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def timed(fn, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def measure(options: argparse.Namespace, device: torch.device, dtype: str, backend: str | None, peak) -> dict:
    shape = SHAPES[options.shape]
    config = EmbSumConfig(
        t5_config=dict(vocab_size=options.vocab, dropout_rate=0.0, **shape),
        item_start_token_id=options.vocab - 1,
        session_max_tokens=options.session_tokens,
        item_max_tokens=32,
        summary_max_tokens=64,
    )
    torch.manual_seed(0)
    model = EmbSumModel(config).to(device).train()
    bare = T5ForConditionalGeneration(T5Config(**model.t5.config.to_dict())).to(device).train()
    candidates = DEFAULT_NUM_NEGATIVES + 1
    batch = random_batch(config, options.users, options.sessions, candidates, torch.Generator().manual_seed(0))
    batch = {name: value.to(device) for name, value in batch.items()}
    flops = {
        "embsum": step_flops(model, embsum_loss, batch, device, dtype),
        "bare_t5": step_flops(bare, bare_loss, batch, device, dtype),
    }
    steps = {
        "embsum": make_step(model, embsum_loss, device, dtype, backend),
        "bare_t5": make_step(bare, bare_loss, device, dtype, backend),
    }
    for _ in range(options.warmup):
        for step in steps.values():
            step(batch)
    times: dict[str, list[float]] = {"embsum": [], "bare_t5": []}
    for _ in range(options.repeats):  # alternating: drifts in clock or load hit both alike
        for name, step in steps.items():
            times[name].append(timed(lambda step=step: step(batch), device))
    result = {"dtype": dtype, "compile": backend is not None, "compile_backend": backend}
    precision = dtype if dtype == "bf16" else ("tf32" if torch.backends.cuda.matmul.allow_tf32 else "fp32")
    for name in steps:
        seconds = statistics.median(times[name])
        result[f"{name}_step_ms"] = round(seconds * 1000, 3)
        result[f"{name}_tflops"] = round(flops[name] / seconds / 1e12, 4)
        result[f"{name}_mfu"] = round(flops[name] / seconds / 1e12 / peak[precision], 4) if peak else None
        result[f"{name}_step_gflop"] = round(flops[name] / 1e9, 3)
    result["mfu_peak"] = precision
    result["ratio_embsum_to_bare"] = round(statistics.median(e / b for e, b in zip(*times.values())), 3)
    result["encode_items_per_s"] = encode_throughput(model, config, options, device, dtype, backend)
    logger.info("%s", result)
    return result


def encode_throughput(model: EmbSumModel, config: EmbSumConfig, options, device, dtype: str, backend) -> float:
    """Items per second through `encode_item` + `item_score_keys` (an `embsum encode-items` batch), no gradients."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(
        3, config.item_start_token_id, (options.item_batch, config.item_max_tokens), generator=generator
    )
    ids[:, 0] = config.item_start_token_id
    ids, mask = ids.to(device), torch.ones_like(ids, device=device)
    model.eval()

    def encode(module: EmbSumModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return module.item_score_keys(module.encode_item(item_input_ids=ids, item_attention_mask=mask))

    run = encode if backend is None else torch.compile(encode, backend=backend)
    with torch.inference_mode(), autocast(device, dtype):
        for _ in range(options.warmup):
            run(model, ids, mask)
        seconds = statistics.median(timed(lambda: run(model, ids, mask), device) for _ in range(options.repeats))
    model.train()
    return round(options.item_batch / seconds, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK}")
    parser.add_argument("--shape", choices=list(SHAPES), default=None, help="model shape (default: small, t5-small)")
    parser.add_argument("--dtypes", default="bf16,fp32", help="comma-separated: bf16, fp32")
    parser.add_argument("--compile", default="off,on", help="comma-separated: off, on (torch.compile)")
    parser.add_argument(
        "--compile-backend",
        default=None,
        help="torch.compile backend (default inductor; --device cpu --quick: eager, which checks the compiled path "
        "in seconds where inductor's C++ build takes minutes on a small CPU)",
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="the card's peak for every precision")
    parser.add_argument("--json", default=None, help="write the results here")
    for name in ("vocab", "users", "sessions", "session_tokens", "item_batch", "repeats", "warmup"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name, value in (QUICK if options.quick else FULL).items():
        if getattr(options, name) is None:
            setattr(options, name, value)
    device = torch.device(options.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: pass --device cpu (with --quick for a smoke run)")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    if options.peak_tflops is not None:
        peak = dict.fromkeys(("bf16", "tf32", "fp32"), options.peak_tflops)
    else:
        peak = peak_for(name) if device.type == "cuda" else None
    if peak is None:
        logger.warning("no peak FLOPs known for %r: MFU is left out (pass --peak-tflops)", name)
    dtypes = options.dtypes.split(",")
    backend = options.compile_backend or ("eager" if options.quick and device.type == "cpu" else "inductor")
    compiles = [{"off": None, "on": backend}[value] for value in options.compile.split(",")]
    results = [measure(options, device, dtype, compiled, peak) for dtype in dtypes for compiled in compiles]
    payload = {
        "benchmark": "gpu_throughput",
        "device": name,
        "device_type": device.type,
        "torch": torch.__version__,
        "peak_tflops": peak,
        "shape": options.shape,
        "vocab_size": options.vocab,
        "ran_on_gpu": device.type == "cuda",
        "batch": {
            "users": options.users,
            "sessions": options.sessions,
            "session_tokens": options.session_tokens,
            "candidates": DEFAULT_NUM_NEGATIVES + 1,
            "item_tokens": 32,
            "summary_tokens": 64,
            "item_batch": options.item_batch,
        },
        "repeats": options.repeats,
        "results": results,
    }
    for row in results:
        print(
            f"{row['dtype']:>4} compile {'on ' if row['compile'] else 'off'}: EmbSum {row['embsum_step_ms']:9.2f} ms, "
            f"bare T5 {row['bare_t5_step_ms']:9.2f} ms, ratio {row['ratio_embsum_to_bare']:.3f}, "
            f"MFU {row['embsum_mfu']}, encode-items {row['encode_items_per_s']:.0f} items/s"
        )
    if options.json:
        Path(options.json).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {options.json}")


if __name__ == "__main__":
    main()
