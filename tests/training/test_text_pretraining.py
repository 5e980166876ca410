"""Text infilling on the catalogue's own text before the joint objective: the corruption by hand, a model that
learns it, and the trainer that runs it once, inside the run."""

from __future__ import annotations

import random

import pytest
import torch

from embsum_hf import EmbSumModel, EmbSumProcessor
from embsum_hf.data import build_training_rows, load_mind, make_synthetic_mind
from embsum_hf.training import EmbSumDataCollator, EmbSumTrainer, EmbSumTrainingArguments, tokenize_item_table
from embsum_hf.training.text_pretraining import TextPretrainingCallback, infill_batch, infill_example, pretrain_on_text

from ..conftest import tiny_config


def test_infill_example_replaces_separate_spans_by_one_mask_each():
    tokens = list(range(100, 140))  # 40 tokens: 15% in spans of 3 -> 2 spans
    corrupted = infill_example(tokens, 2, random.Random(0), noise_density=0.15, mean_span=3)
    assert corrupted.count(2) == 2 and len(corrupted) == 40 - 2 * 3 + 2
    kept = [token for token in corrupted if token != 2]
    assert kept == sorted(kept) and set(kept) <= set(tokens)  # the rest in order
    # each mask stands for 3 consecutive missing tokens; masks never touch
    at = [i for i, token in enumerate(corrupted) if token == 2]
    assert all(b - a > 1 for a, b in zip(at, at[1:]))
    for i in at:
        before = corrupted[i - 1] if i else 99
        assert corrupted[i + 1] - before == 4 if i + 1 < len(corrupted) else True
    assert corrupted == infill_example(tokens, 2, random.Random(0), 0.15, 3)  # seeded
    assert infill_example([7], 2, random.Random(0), 0.15, 3) == [2]  # at least one span
    batch = infill_batch(
        [[5, 6, 7, 8, 9, 1], [7, 1]], mask_token_id=2, pad_token_id=0, eos_token_id=1, rng=random.Random(1)
    )
    assert batch["labels"].tolist() == [[5, 6, 7, 8, 9, 1], [7, 1, -100, -100, -100, -100]]
    assert batch["input_ids"][1].tolist()[:2] == [2, 1] and batch["attention_mask"][1].tolist()[:3] == [1, 1, 0]
    assert 2 in batch["input_ids"][0].tolist() and batch["input_ids"][0].tolist()[-1] == 1  # `</s>` kept, last


def test_pretraining_learns_the_items_text_and_leaves_the_ranking_layers(tokenizer, items):
    processor = EmbSumProcessor(tokenizer, tiny_config(tokenizer), item_template="mind")
    rows = processor.tokenize_items(items)
    torch.manual_seed(0)
    model = EmbSumModel(processor.config)
    poly = model.user_poly.codes.detach().clone()
    embeddings = model.t5.shared.weight.detach().clone()
    losses = pretrain_on_text(
        model, rows, 60, mask_token_id=tokenizer.unk_token_id, batch_size=8, disable_progress=True
    )
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10, losses  # it learns to write the texts back
    assert not torch.equal(model.t5.shared.weight, embeddings) and torch.equal(model.user_poly.codes, poly)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        pretrain_on_text(model, rows, -1, mask_token_id=2)


def test_the_trainer_pretrains_once_inside_the_run(tmp_path, tokenizer):
    data = make_synthetic_mind(
        tmp_path / "data", num_users=20, num_news=40, num_train_impressions=20, num_dev_impressions=4
    )
    train = load_mind(data, "train")
    processor = EmbSumProcessor(tokenizer, tiny_config(tokenizer, summary_mode="start"), item_template="mind")
    collator = EmbSumDataCollator(processor, tokenize_item_table(processor, train.items))

    def trainer(steps: int, processing_class=processor, **extra) -> EmbSumTrainer:
        args = EmbSumTrainingArguments(
            output_dir=str(tmp_path / "out"),
            max_steps=2,
            text_pretraining_steps=steps,
            per_device_train_batch_size=4,
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            save_strategy="no",
            **extra,
        )
        torch.manual_seed(0)
        return EmbSumTrainer(
            EmbSumModel(processor.config),
            args,
            train_dataset=build_training_rows(train.impressions),
            data_collator=collator,
            processing_class=processing_class,
        )

    run = trainer(5)
    callback = next(c for c in run.callback_handler.callbacks if isinstance(c, TextPretrainingCallback))
    assert len(callback.rows) == len(train.items) and callback.mask_token_id == tokenizer.unk_token_id
    run.train()
    assert len(callback.losses) == 5 and run.state.global_step == 2
    # the pretraining changes the model the joint objective starts from
    plain = trainer(0)
    assert not any(isinstance(c, TextPretrainingCallback) for c in plain.callback_handler.callbacks)
    plain.train()
    assert not torch.equal(plain.model.t5.shared.weight, run.model.t5.shared.weight)
    # a resumed run (past its first step) does not pretrain again
    callback.losses = []
    callback.on_train_begin(run.args, run.state, run.control, model=run.model)
    assert callback.losses == []
    with pytest.raises(ValueError, match="text_pretraining_steps needs processing_class"):
        trainer(5, processing_class=None)
    with pytest.raises(ValueError, match="text_pretraining_steps must be >= 0"):
        EmbSumTrainingArguments(output_dir=str(tmp_path), text_pretraining_steps=-1)
