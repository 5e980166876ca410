"""CPU time of the largest request the endpoint handler admits, on the demo-size model (`make demo`'s shape).

The handler's per-request budget (EMBSUM_MAX_REQUEST_ITEMS history + candidate items, EMBSUM_MAX_REQUEST_CHARS
characters, at their defaults) is filled in the costliest ways it allows: every item a candidate (each is encoded,
while only the latest `max_history_items` of a history are read), every field at the per-field character limit or
the text spread over all items, with the summary and the explanations asked for. Each request is validated and
answered by the real handler code path (`PayloadValidator` + the `embsum-recommendation` pipeline); the figure is
`time.process_time` (CPU seconds of this process, all threads), median of `--repeats` runs after one warm-up.

Usage: `OMP_NUM_THREADS=1 python benchmarks/handler_budget.py [--repeats 3]`
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import time

import torch

from embsum_hf import EmbSumConfig, EmbSumModel, EmbSumProcessor, train_tokenizer
from embsum_hf.hub.push import TEMPLATES
from embsum_hf.pipeline_embsum import EmbSumRecommendationPipeline
from embsum_hf.training.recipe import demo_run_arguments

WORDS = "election vote rocket orbit football goal recipe chef market stocks storm movie music school doctor".split()


def demo_model() -> tuple[EmbSumModel, EmbSumProcessor]:
    """Random weights in the exact shape `make demo` trains (speed only)."""
    args = demo_run_arguments("unused")
    rng = random.Random(0)
    corpus = [" ".join(rng.choices(WORDS, k=20)) for _ in range(2000)]
    tokenizer = train_tokenizer(corpus, vocab_size=args.vocab_size)
    t5 = dict(
        vocab_size=len(tokenizer),
        d_model=args.d_model,
        d_kv=args.d_model // args.num_heads,
        num_heads=args.num_heads,
        d_ff=args.d_ff,
        num_layers=args.num_layers,
        dropout_rate=0.0,
    )
    config = EmbSumConfig(
        t5_config=t5, item_start_token_id=tokenizer.convert_tokens_to_ids("<sos>"), **args.config_overrides()
    )
    torch.manual_seed(0)
    model = EmbSumModel(config).eval()
    return model, EmbSumProcessor(tokenizer, config, item_template="mind")


def words(rng: random.Random, chars: int) -> str:
    text = ""
    while len(text) < chars:
        text += rng.choice(WORDS) + " "
    return text[:chars]


def requests(validator) -> dict[str, dict]:
    """The costliest shapes the default budget admits."""
    rng = random.Random(0)
    items, chars = validator.max_request_items, validator.max_request_chars
    per_user = validator.max_candidates
    users = items // per_user
    spread = {"title": words(rng, chars // items - 30), "abstract": "", "category": "news"}
    # items holding a whole field each; the rest short (field names count too: about 25 characters per item)
    long_fields = (chars - 25 * items) // validator.max_field_chars
    heavy = [{"title": words(rng, validator.max_field_chars - 10), "abstract": "", "category": "x"}] * long_fields
    light = [{"title": "t", "abstract": "", "category": "x"}] * (per_user - len(heavy))
    parameters = {"return_summary": True, "return_explanations": True}
    many = validator.max_batch_users  # the most users: one summary generated and one history encoded per user
    return {
        f"{many} users x 16 history + {items // many - 16} candidates": {
            "inputs": [{"history": [spread] * 16, "candidates": [spread] * (items // many - 16)}] * many,
            "parameters": parameters,
        },
        f"{users} users x {per_user} candidates, text spread evenly": {
            "inputs": [{"history": [spread] * 16, "candidates": [spread] * (per_user - 16)}] * users,
            "parameters": parameters,
        },
        f"{users} users, {long_fields} fields of {validator.max_field_chars} chars": {
            "inputs": [{"history": [], "candidates": heavy + light}]
            + [{"history": [], "candidates": [{"title": "t", "abstract": "", "category": "x"}] * per_user}]
            * (users - 1),
            "parameters": parameters,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("embsum_endpoint_handler", TEMPLATES / "handler.py")
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)

    model, processor = demo_model()
    pipe = EmbSumRecommendationPipeline(model=model, processor=processor, device="cpu")
    validator = handler.PayloadValidator.from_env(processor)
    print(
        f"budget: {validator.max_request_items} items, {validator.max_request_chars} characters per request; "
        f"torch threads {torch.get_num_threads()}"
    )
    for name, payload in requests(validator).items():

        def answer():
            inputs, parameters = validator(payload)
            return pipe(inputs, **parameters)

        answer()  # warm-up
        seconds = []
        for _ in range(args.repeats):
            start = time.process_time()
            answer()
            seconds.append(time.process_time() - start)
        print(f"{name}: {statistics.median(seconds):.2f} CPU-s (median of {args.repeats})")


if __name__ == "__main__":
    main()
