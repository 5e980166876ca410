"""Self-supervised pretraining on the catalogue's own text, before the joint objective (from scratch)."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import torch
from transformers import TrainerCallback

from ..utils import tqdm

logger = logging.getLogger(__name__)

DEFAULT_NOISE_DENSITY = 0.15  # T5's share of corrupted tokens
DEFAULT_MEAN_SPAN = 3  # T5's mean span length


def infill_example(
    token_ids: Sequence[int], mask_token_id: int, rng: random.Random, noise_density: float, mean_span: int
) -> list[int]:
    """
    `token_ids` with spans of `mean_span` tokens replaced by one `mask_token_id` each, about `noise_density` of the
    tokens in all (at least one span): BART's text infilling with T5's corruption rate. The spans start at seeded
    (`rng`) positions and do not touch each other.
    """
    n = len(token_ids)
    if n == 0:
        return [mask_token_id]
    span = max(1, min(mean_span, n))
    spans = max(1, round(n * noise_density / span))
    grid = range(0, n - span + 1, span)  # span-aligned starts: spans never touch
    starts = sorted(rng.sample(grid, min(spans, len(grid))))
    corrupted, at = [], 0
    for start in starts:
        corrupted += [*token_ids[at:start], mask_token_id]
        at = start + span
    return corrupted + list(token_ids[at:])


def infill_batch(
    rows: Sequence[Sequence[int]],
    mask_token_id: int,
    pad_token_id: int,
    eos_token_id: int,
    rng: random.Random,
    noise_density: float = DEFAULT_NOISE_DENSITY,
    mean_span: int = DEFAULT_MEAN_SPAN,
) -> dict[str, torch.Tensor]:
    """
    A T5 batch of the infilling objective: `input_ids` / `attention_mask` `(B, S)` the corrupted rows
    ([`infill_example`]; a closing `</s>` is kept), `labels` `(B, T)` the rows themselves ending in `</s>` (-100
    after it).
    """
    bodies = [list(row[:-1]) if row and row[-1] == eos_token_id else list(row) for row in rows]  # `</s>` stays
    inputs = [[*infill_example(body, mask_token_id, rng, noise_density, mean_span), eos_token_id] for body in bodies]
    targets = [[*body, eos_token_id] for body in bodies]
    width, length = max(map(len, inputs)), max(map(len, targets))
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), length), -100, dtype=torch.long)
    for i, (source, target) in enumerate(zip(inputs, targets)):
        input_ids[i, : len(source)] = torch.tensor(source)
        attention_mask[i, : len(source)] = 1
        labels[i, : len(target)] = torch.tensor(target)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def pretrain_on_text(
    model,
    rows: Sequence[Sequence[int]],
    steps: int,
    *,
    mask_token_id: int,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    seed: int = 0,
    noise_density: float = DEFAULT_NOISE_DENSITY,
    mean_span: int = DEFAULT_MEAN_SPAN,
    disable_progress: bool = False,
) -> list[float]:
    """
    Trains `model.t5` (an [`EmbSumModel`]'s encoder-decoder) for `steps` AdamW steps on text infilling over `rows`
    (token ids, e.g. the items' as the processor tokenises them): batches drawn from a seeded shuffle, the decoder
    writing each row back from its corrupted copy ([`infill_batch`]). Shares the encoder, the decoder and the tied
    embeddings with the joint objective that follows. Returns the loss of every step.
    """
    if steps < 0:
        raise ValueError(f"text pretraining steps must be >= 0, got {steps}")
    rows = [row for row in rows if len(row)]
    if steps and not rows:
        raise ValueError("text pretraining needs at least one non-empty text")
    t5 = model.t5
    config = t5.config
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(t5.parameters(), lr=learning_rate)
    device = next(t5.parameters()).device
    was_training = t5.training
    t5.train()
    losses: list[float] = []
    order: list[int] = []
    for _ in tqdm(range(steps), desc="Text pretraining", disable=disable_progress):
        if len(order) < batch_size:
            fresh = list(range(len(rows)))
            rng.shuffle(fresh)
            order += fresh
        picked, order = order[:batch_size], order[batch_size:]
        batch = infill_batch(
            [rows[i] for i in picked],
            mask_token_id,
            config.pad_token_id,
            config.eos_token_id,
            rng,
            noise_density,
            mean_span,
        )
        loss = t5(**{name: tensor.to(device) for name, tensor in batch.items()}).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(t5.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    t5.train(was_training)
    if losses:
        logger.info(
            "text pretraining: %d steps over %d texts, loss %.3f -> %.3f", steps, len(rows), losses[0], losses[-1]
        )
    return losses


class TextPretrainingCallback(TrainerCallback):
    """
    [`pretrain_on_text`] at the start of training, on a run's first step only (a resumed run's model has had it):
    the rows are the collator's item token ids, the batch size, learning rate and seed the training arguments'
    (`EmbSumTrainingArguments.text_pretraining_steps`). Its CPU time is part of the run's.
    """

    def __init__(self, rows: Sequence[Sequence[int]], steps: int, mask_token_id: int):
        self.rows, self.steps, self.mask_token_id = rows, steps, mask_token_id
        self.losses: list[float] = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.steps == 0 or state.global_step > 0:
            return
        self.losses = pretrain_on_text(
            model,
            self.rows,
            self.steps,
            mask_token_id=self.mask_token_id,
            batch_size=args.per_device_train_batch_size,
            learning_rate=args.learning_rate,
            seed=args.seed,
            disable_progress=args.disable_tqdm,
        )
