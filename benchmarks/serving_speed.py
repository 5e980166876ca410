"""Serving speed of EmbSum, as median ratios against a baseline timed in the same process.

  (a) ranking N stored items for one user  vs  cross-encoding the same N user-item pairs (UNBERT-style: one T5
      encoder pass over [history + candidate] per pair; a batch of pairs is timed and the cost extrapolated per pair)
  (b) ranking (exact poly_relevance top-10)  vs  a bare matmul over the same tensors (the floor)
  (f) ranking many users at once: blocks of users (the default)  vs  all users in one block; and vs the floor
  (g) the `embsum recommend` job (stores on disk -> JSONL parts)  vs  ranking the same tensors in memory
  (c) `encode_item`  vs  a bare T5 encoder pass on the same tokens
  (d) incremental user update (one new item)  vs  re-encoding the whole user
  (e) bytes per stored item in float32 / float16 / bfloat16 (the store format on disk)

Backbone: the t5-small shape (d 512, 6 + 6 layers), random init (speed only). FAISS recall and speed: see
`benchmarks/faiss_recall.py`. Timings use `time.perf_counter`, one warm-up run and the median of `--repeats` runs.
Usage: `python benchmarks/serving_speed.py [--quick]`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

from embsum_hf import EmbSumConfig, EmbSumModel, EmbSumProcessor, train_tokenizer  # noqa: E402
from embsum_hf.serving import EmbeddingStore, UserState, recommend_all, top_k_scores, update_user  # noqa: E402
from embsum_hf.serving.store import ShardedStoreWriter  # noqa: E402

WORDS = (
    "election vote senate rocket orbit launch football match goal recipe chef dinner market stocks bank storm rain "
    "flood movie actor award music concert album school teacher student health doctor vaccine travel flight hotel"
).split()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(fn: Callable[[], object], baseline: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """
    Median seconds of `fn` and of `baseline`, and the median of the per-repeat ratios `fn / baseline`. The two run
    alternately after one warm-up each, so load from other processes hits both alike.
    """
    fn(), baseline()
    pairs = [(timed(fn), timed(baseline)) for _ in range(repeats)]
    ours, theirs = zip(*pairs, strict=True)
    return statistics.median(ours), statistics.median(theirs), statistics.median(a / b for a, b in pairs)


def make_item(index: int, rng: random.Random) -> dict:
    """A MIND-style item of about 50 tokens (title 10 words, abstract 28 words)."""
    title, abstract = (" ".join(rng.choice(WORDS) for _ in range(n)) for n in (10, 28))
    return {"item_id": f"N{index}", "title": title, "abstract": abstract, "category": rng.choice(WORDS)}


def build() -> tuple[EmbSumModel, EmbSumProcessor]:
    """A t5-small-shaped EmbSum with a tokenizer trained on the synthetic news words (random init)."""
    rng = random.Random(0)
    tokenizer = train_tokenizer([" ".join(rng.choice(WORDS) for _ in range(40)) for _ in range(200)], vocab_size=300)
    config = EmbSumConfig(item_start_token_id=tokenizer.convert_tokens_to_ids("<sos>"), summary_mode="start")
    torch.manual_seed(0)
    model = EmbSumModel(config).eval()
    return model, EmbSumProcessor(tokenizer, config, item_template="mind")


def random_embeddings(model: EmbSumModel, num_users: int, num_items: int, seed: int):
    """Stand-ins for stored tensors of the model's shape: UPEs `(users, K, d)`, CPEs and keys `(items, M, d)`."""
    d, K, M = model.config.hidden_size, model.config.num_user_codes, model.config.num_item_codes
    generator = torch.Generator().manual_seed(seed)
    upe = torch.randn(num_users, K, d, generator=generator)
    cpe = torch.randn(num_items, M, d, generator=generator)
    keys = torch.nn.functional.gelu(torch.randn(num_items, M, d, generator=generator))
    return upe, cpe, keys


def bench_ranking(model: EmbSumModel, quick: bool, repeats: int) -> None:
    """(a) ranking vs cross-encoding and (b) ranking vs the bare matmul floor, on the same stored tensors."""
    d, K, M = model.config.hidden_size, model.config.num_user_codes, model.config.num_item_codes
    num_items = 20_000 if quick else 100_000
    generator = torch.Generator().manual_seed(0)
    upe = torch.randn(1, K, d, generator=generator)  # one user's request
    cpe = torch.randn(num_items, M, d, generator=generator)
    keys = torch.nn.functional.gelu(torch.randn(num_items, M, d, generator=generator))

    def rank():
        return top_k_scores(upe, cpe, keys, 10)

    pairs, history_tokens, candidate_tokens = (4 if quick else 8), 448, 64
    pair_ids = torch.randint(3, 300, (pairs, history_tokens + candidate_tokens), generator=generator)
    with torch.inference_mode():
        rank_time, cross_time, ratio = compare(
            rank, lambda: model.t5.encoder(input_ids=pair_ids, attention_mask=torch.ones_like(pair_ids)), repeats
        )
    per_pair = cross_time / pairs
    print(f"\n(a) rank {num_items} stored items for 1 user (exact top-10): {rank_time * 1e3:.1f} ms")
    print(
        f"    cross-encoder: {pairs} pairs of {history_tokens}+{candidate_tokens} tokens in {cross_time:.2f} s -> "
        f"{per_pair * 1e3:.0f} ms/pair, extrapolated x{num_items}: {per_pair * num_items:.0f} s"
    )
    print(f"    median speed-up of ranking over cross-encoding: {num_items / pairs / ratio:,.0f}x")

    flat_users, flat_items, flat_keys = upe.reshape(-1, d), cpe.reshape(-1, d), keys.reshape(-1, d)
    # the faster of the two equivalent layouts is the floor
    layouts = {"cpe @ upe.T": lambda: flat_items @ flat_users.T, "upe @ cpe.T": lambda: flat_users @ flat_items.T}
    name = min(layouts, key=lambda key: statistics.median(timed(layouts[key]) for _ in range(3)))
    _, floor, ratio = compare(rank, layouts[name], repeats)
    print(
        f"\n(b) bare matmul floor {name}, ({num_items}*{M}, {d}) x ({d}, 1*{K}): {floor * 1e3:.1f} ms; "
        f"median ranking / floor = {ratio:.2f}x"
    )
    _, two, ratio = compare(rank, lambda: (flat_items @ flat_users.T, flat_keys @ flat_users.T), repeats)
    print(
        f"    the score needs two such products (UPE.CPE and UPE.keys): {two * 1e3:.1f} ms; "
        f"median ranking / two-product floor = {ratio:.2f}x"
    )


def bench_many_users(model: EmbSumModel, quick: bool, repeats: int) -> None:
    """(f) ranking a batch of users: blocks of users (the default) vs all users in one block, and vs the floor."""
    d, K, M = model.config.hidden_size, model.config.num_user_codes, model.config.num_item_codes
    num_users, num_items = (256, 1024) if quick else (512, 2048)
    upe, cpe, keys = random_embeddings(model, num_users, num_items, seed=3)

    def blocked():
        return top_k_scores(upe, cpe, keys, 10)

    def one_block():  # every user in one block, chunks of 256K score elements (few items each)
        chunk = max(1, (1 << 18) // (num_users * K * M))
        return top_k_scores(upe, cpe, keys, 10, user_batch_size=num_users, chunk_size=chunk)

    ours, theirs, ratio = compare(blocked, one_block, repeats)
    print(
        f"\n(f) rank {num_items} items for {num_users} users at once: user blocks {ours * 1e3:.0f} ms, all users in "
        f"one block {theirs * 1e3:.0f} ms; median speed-up of blocks {1 / ratio:.2f}x"
    )
    flat_users, flat_items = upe.reshape(-1, d), cpe.reshape(-1, d)
    _, floor, ratio = compare(blocked, lambda: flat_users @ flat_items.T, repeats)
    print(
        f"    bare matmul ({num_users}*{K}, {d}) x ({d}, {num_items}*{M}): {floor * 1e3:.0f} ms; "
        f"median ranking / floor = {ratio:.2f}x (the score needs two such products)"
    )


def bench_batch_job(model: EmbSumModel, quick: bool, repeats: int) -> None:
    """(g) the `embsum recommend` job (stores on disk -> JSONL parts) vs ranking the same tensors in memory."""
    num_users, num_items = (128, 1024) if quick else (256, 4096)
    upe, cpe, keys = random_embeddings(model, num_users, num_items, seed=4)
    with tempfile.TemporaryDirectory() as folder:
        stores = {}
        for kind, values in (("users", {"embeddings": upe}), ("items", {"embeddings": cpe, "keys": keys})):
            ids = [f"{kind[0].upper()}{i}" for i in range(len(values["embeddings"]))]
            shapes = {name: tuple(value.shape[1:]) for name, value in values.items()}
            writer = ShardedStoreWriter(f"{folder}/{kind}", kind, ids, "benchmark", "float32", shapes, 64)
            for index in range(writer.num_shards):
                start, stop = writer.shard_range(index)
                writer.write(index, {name: value[start:stop] for name, value in values.items()}, f"{kind}{index}")
            writer.finalize()
            stores[kind] = EmbeddingStore.load(f"{folder}/{kind}")
        runs = itertools.count()

        def job():  # a fresh output folder each time: nothing to resume
            return recommend_all(stores["users"], stores["items"], f"{folder}/recs{next(runs)}", 10, progress=False)

        ours, theirs, ratio = compare(job, lambda: top_k_scores(upe, cpe, keys, 10), repeats)
    print(
        f"\n(g) embsum recommend job, {num_users} users x {num_items} items (user shards of 64, JSONL out): "
        f"{ours * 1e3:.0f} ms; in-memory top_k_scores {theirs * 1e3:.0f} ms; median ratio {ratio:.2f}x"
    )


def bench_item_encoding(model: EmbSumModel, processor: EmbSumProcessor, quick: bool, repeats: int) -> None:
    """(c) `encode_item` vs the bare T5 encoder on the same tokens."""
    rng = random.Random(1)
    items = [make_item(i, rng) for i in range(16 if quick else 64)]
    batch = processor.encode_items(items)  # (n, Li)
    with torch.inference_mode():
        item_time, bare_time, ratio = compare(
            lambda: model.encode_item(**batch),
            lambda: model.t5.encoder(input_ids=batch["item_input_ids"], attention_mask=batch["item_attention_mask"]),
            repeats,
        )
    tokens = int(batch["item_attention_mask"].sum())
    print(
        f"\n(c) encode_item on {len(items)} items ({tokens} tokens, padded to {batch['item_input_ids'].shape[1]}): "
        f"{item_time * 1e3:.0f} ms; bare T5 encoder {bare_time * 1e3:.0f} ms; median ratio {ratio:.3f}x"
    )


def bench_user_update(model: EmbSumModel, processor: EmbSumProcessor, mode: str, repeats: int) -> None:
    """(d) one new engagement: `update_user` vs `encode_user` on the whole new history."""
    rng = random.Random(2)
    model.config.summary_mode = mode
    history = [make_item(i, rng) for i in range(model.config.max_history_items - 1)]
    new_item = make_item(len(history), rng)
    state, _ = update_user(model, processor, UserState(), history)
    users = processor.encode_users([[new_item, *history]])
    with torch.inference_mode():
        incremental_time, full_time, ratio = compare(
            lambda: update_user(model, processor, state, [new_item]), lambda: model.encode_user(**users), repeats
        )
    sessions, length = users["session_input_ids"].shape[1:]
    print(
        f"\n(d) summary_mode={mode!r}: user with {len(history) + 1} items = {sessions} sessions (<= {length} tokens); "
        f"full re-encode {full_time * 1e3:.0f} ms, incremental {incremental_time * 1e3:.0f} ms, "
        f"median speed-up {1 / ratio:.2f}x"
    )


def bench_store_bytes(model: EmbSumModel, count: int = 1000) -> None:
    """(e) bytes per stored item on disk, per storage dtype."""
    M, d = model.config.num_item_codes, model.config.hidden_size
    values = torch.randn(count, M, d)
    shapes = {"embeddings": (M, d), "keys": (M, d)}
    ids = [f"N{i}" for i in range(count)]
    print(f"\n(e) bytes per stored item (M {M} x d {d}, embeddings + keys, {count} items incl. file headers):")
    with tempfile.TemporaryDirectory() as folder:
        for dtype in ("float32", "float16", "bfloat16"):
            writer = ShardedStoreWriter(f"{folder}/{dtype}", "items", ids, "benchmark", dtype, shapes, count)
            writer.write(0, {"embeddings": values, "keys": values.clone()}, "benchmark")
            writer.finalize()
            print(f"    {dtype:9s} {EmbeddingStore.load(f'{folder}/{dtype}').disk_bytes() / count:8.0f} bytes/item")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (at least 5)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine, 2-thread OpenMP under load slows small ops ~30x)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = max(5, args.repeats)
    model, processor = build()
    config = model.config
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; backbone t5-small shape "
        f"(d {config.hidden_size}), K {config.num_user_codes}, M {config.num_item_codes}"
    )
    bench_ranking(model, args.quick, repeats)
    bench_many_users(model, args.quick, repeats)
    bench_batch_job(model, args.quick, repeats)
    bench_item_encoding(model, processor, args.quick, repeats)
    for mode in ("start",) if args.quick else ("start", "generate"):
        bench_user_update(model, processor, mode, repeats)
    bench_store_bytes(model)


if __name__ == "__main__":
    main()
