"""EmbSum's training step against a bare T5 seq2seq step over the same tokens, measured in one process.

Both steps see the same batch: B users x G sessions x L tokens of history, B x C candidates x Li tokens, and B
summaries. The bare step is what T5 alone costs on those tokens: the encoder over every session and candidate row,
the decoder teacher-forced on the summaries over each user's concatenated sessions, a backward pass through all of
it (the candidate states get a mean-square loss so that they are back-propagated too). The EmbSum step adds the
poly-attention heads, the score and the NCE loss. Prints the median of per-repeat time ratios (EmbSum / bare).

`--ragged` measures something else: a from-scratch batch (one item per session, as `embsum train` packs them
without `--backbone`) whose items have different lengths in a padded width, as real items do (token counts drawn
between `--min-item-tokens` and `--max-item-tokens`; MovieLens 100K's under the recipe's tokenizer run from 4 to 50,
median 21). It times EmbSum's step with the encoder's length groups (`modeling_embsum.ENCODE_LENGTH_GROUPS`) against
the same step with one group (every row at the batch's longest width), alternating in one process.

    python benchmarks/train_throughput.py [--shape tiny|small] [--repeats 7]
    python benchmarks/train_throughput.py --ragged --shape tiny --users 32 [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers.modeling_outputs import BaseModelOutput

import embsum_hf.modeling_embsum as modeling_embsum
from embsum_hf import EmbSumConfig, EmbSumModel
from embsum_hf.training.arguments import DEFAULT_NUM_NEGATIVES

SHAPES = {  # t5 sizes; "small" is t5-small's
    "tiny": dict(d_model=64, d_kv=16, num_heads=4, d_ff=256, num_layers=2),
    "medium": dict(d_model=256, d_kv=32, num_heads=8, d_ff=1024, num_layers=4),
    "small": dict(d_model=512, d_kv=64, num_heads=8, d_ff=2048, num_layers=6),
}


def random_batch(config: EmbSumConfig, users: int, sessions: int, candidates: int, generator: torch.Generator) -> dict:
    vocab, start = config.t5_config.vocab_size, config.item_start_token_id
    length, item_length = config.session_max_tokens, config.item_max_tokens

    def ids(*shape: int) -> torch.Tensor:
        return torch.randint(3, start, shape, generator=generator)

    session_ids = ids(users, sessions, length)
    session_ids[..., ::item_length] = start  # an item every item_max_tokens tokens
    candidate_ids = ids(users, candidates, item_length)
    candidate_ids[..., 0] = start
    labels = ids(users, config.summary_max_tokens)
    assert vocab > start
    return {
        "session_input_ids": session_ids,
        "session_attention_mask": torch.ones_like(session_ids),
        "candidate_input_ids": candidate_ids,
        "candidate_attention_mask": torch.ones_like(candidate_ids),
        "summary_labels": labels,
    }


def ragged_batch(
    config: EmbSumConfig,
    users: int,
    history: int,
    candidates: int,
    lengths: tuple[int, int],
    generator: torch.Generator,
) -> dict:
    """One-item sessions `(B, history, W)` and candidates `(B, C, W)` of `lengths[0]..lengths[1]` tokens, padded."""
    vocab, start, eos = config.t5_config.vocab_size, config.item_start_token_id, config.t5_config.eos_token_id
    low, high = lengths
    width = high + 1  # <sos> + item tokens (+ </s> closing a session)

    def rows(*shape: int, close: bool) -> tuple[torch.Tensor, torch.Tensor]:
        sizes = torch.randint(low, high + 1, shape, generator=generator).flatten().tolist()
        ids = torch.zeros(len(sizes), width, dtype=torch.long)
        for row, size in enumerate(sizes):
            ids[row, 0] = start
            ids[row, 1:size] = torch.randint(3, start, (size - 1,), generator=generator)
            if close:
                ids[row, size] = eos
        ids = ids.reshape(*shape, width)
        return ids, (ids != 0).long()

    session_ids, session_mask = rows(users, history, close=True)
    candidate_ids, candidate_mask = rows(users, candidates, close=False)
    assert vocab > start
    return {
        "session_input_ids": session_ids,
        "session_attention_mask": session_mask,
        "candidate_input_ids": candidate_ids,
        "candidate_attention_mask": candidate_mask,
        "summary_labels": torch.randint(3, start, (users, config.summary_max_tokens), generator=generator),
    }


def ragged_main(options: argparse.Namespace, model: EmbSumModel, config: EmbSumConfig) -> None:
    """EmbSum's step with the encoder's length groups against one group, on items of varied lengths."""
    candidates = DEFAULT_NUM_NEGATIVES + 1
    lengths = (options.min_item_tokens, options.max_item_tokens)
    batch = ragged_batch(config, options.users, options.history, candidates, lengths, torch.Generator().manual_seed(0))
    groups = modeling_embsum.ENCODE_LENGTH_GROUPS

    def timed(count: int) -> float:
        modeling_embsum.ENCODE_LENGTH_GROUPS = count
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        embsum_step(model, batch)
        return time.perf_counter() - start

    timed(groups), timed(1)  # warm-up
    grouped, single = [], []
    for _ in range(options.repeats):
        single.append(timed(1))
        grouped.append(timed(groups))
    modeling_embsum.ENCODE_LENGTH_GROUPS = groups
    attended = int(batch["session_attention_mask"].sum() + batch["candidate_attention_mask"].sum())
    padded = batch["session_input_ids"].numel() + batch["candidate_input_ids"].numel()
    print(
        f"shape {options.shape}, {options.users} users x {options.history} one-item sessions + {candidates} "
        f"candidates, items of {lengths[0]}-{lengths[1]} tokens: {attended} of {padded} positions attended, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"one group ({padded // (options.users * (options.history + candidates))} wide)  median "
        f"{statistics.median(single) * 1000:8.1f} ms"
    )
    print(f"{groups} length groups           median {statistics.median(grouped) * 1000:8.1f} ms")
    ratio = statistics.median(s / g for s, g in zip(single, grouped))
    print(f"median speed-up of the length groups = {ratio:.2f}x (over {options.repeats} alternating repeats)")


def embsum_step(model: EmbSumModel, batch: dict) -> None:
    model(**batch).loss.backward()


def bare_t5_step(model: EmbSumModel, batch: dict) -> None:
    t5 = model.t5
    users, sessions, length = batch["session_input_ids"].shape
    states = t5.encoder(input_ids=batch["session_input_ids"].flatten(0, 1)).last_hidden_state  # (B*G, L, d)
    memory = states.reshape(users, sessions * length, -1)  # each user's concatenated sessions
    seq2seq = t5(encoder_outputs=BaseModelOutput(last_hidden_state=memory), labels=batch["summary_labels"]).loss
    candidates = t5.encoder(input_ids=batch["candidate_input_ids"].flatten(0, 1)).last_hidden_state
    (seq2seq + candidates.pow(2).mean()).backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=list(SHAPES), default="medium")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--session-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--ragged", action="store_true", help="length groups vs one group on items of varied lengths")
    parser.add_argument("--history", type=int, default=16, help="--ragged: history items (one-item sessions) per user")
    parser.add_argument("--min-item-tokens", type=int, default=4)
    parser.add_argument("--max-item-tokens", type=int, default=43)
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)

    config = EmbSumConfig(
        t5_config=dict(vocab_size=8000, dropout_rate=0.0, **SHAPES[options.shape]),
        item_start_token_id=7999,
        session_max_tokens=options.session_tokens,
        item_max_tokens=32,
        summary_max_tokens=64,
    )
    torch.manual_seed(0)
    model = EmbSumModel(config).train()
    if options.ragged:
        return ragged_main(options, model, config)
    candidates = DEFAULT_NUM_NEGATIVES + 1
    batch = random_batch(config, options.users, options.sessions, candidates, torch.Generator().manual_seed(0))
    tokens = batch["session_input_ids"].numel() + batch["candidate_input_ids"].numel()

    def timed(step) -> float:
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        step(model, batch)
        return time.perf_counter() - start

    timed(embsum_step), timed(bare_t5_step)  # warm-up
    ratios, embsum_times, bare_times = [], [], []
    for _ in range(options.repeats):  # alternate so drifts in machine load hit both alike
        bare_times.append(timed(bare_t5_step))
        embsum_times.append(timed(embsum_step))
        ratios.append(embsum_times[-1] / bare_times[-1])
    params = sum(p.numel() for p in model.parameters())
    print(
        f"shape {options.shape} ({params / 1e6:.2f}M params), batch {options.users} users x {options.sessions} "
        f"sessions x {options.session_tokens} tokens + {candidates} candidates x {config.item_max_tokens} tokens "
        f"= {tokens} encoder tokens, summary {config.summary_max_tokens} tokens, {torch.get_num_threads()} threads"
    )
    print(f"bare T5 step   median {statistics.median(bare_times) * 1000:8.1f} ms")
    print(f"EmbSum step    median {statistics.median(embsum_times) * 1000:8.1f} ms")
    ratio = statistics.median(ratios)
    print(f"median ratio EmbSum / bare T5 = {ratio:.3f} (over {options.repeats} alternating repeats)")


if __name__ == "__main__":
    main()
