"""Training rows, collator, whole-impression evaluation and the EmbSumTrainer, in process, on tiny synthetic data."""

import dataclasses
import json
import logging
import math
from collections import Counter
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file
from transformers.utils import logging as transformers_logging

from embsum_hf import EmbSumConfig, EmbSumModel, EmbSumProcessor
from embsum_hf.data import RecommendationData, build_training_rows, load_mind, load_summaries, make_synthetic_mind
from embsum_hf.hub.card_data import model_card_data
from embsum_hf.metrics import compute_mind_metrics
from embsum_hf.training import (
    EmbSumDataCollator,
    EmbSumTrainer,
    EmbSumTrainingArguments,
    ImpressionEvaluator,
    TrainingExamples,
    tokenize_item_table,
)
from embsum_hf.training.arguments import PAPER_MODEL_LEVERS

from ..conftest import tiny_config


class WarningRecorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# a tiny from-scratch recipe shape for `EmbSumRunArguments` (the recipe trains its own 300-piece tokenizer)
RECIPE_SHAPE = dict(
    vocab_size=300, d_model=32, num_layers=1, num_heads=4, d_ff=64, dropout_rate=0.0, max_history_items=8,
    session_max_tokens=120, item_max_tokens=48, summary_max_tokens=16, summary_mode="start",
)  # fmt: skip


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return make_synthetic_mind(
        tmp_path_factory.mktemp("synthetic"),
        num_users=40,
        num_news=120,
        num_train_impressions=60,
        num_dev_impressions=20,
    )


@pytest.fixture(scope="module")
def splits(synthetic):
    return load_mind(synthetic, "train"), load_mind(synthetic, "dev"), load_summaries(synthetic / "summaries.jsonl")


@pytest.fixture(scope="module")
def data_processor(tokenizer):
    # the shared tiny tokenizer covers few synthetic words; unknown words still tokenise (to <unk> pieces)
    return EmbSumProcessor(tokenizer, tiny_config(tokenizer, summary_mode="start"), item_template="mind")


def test_negatives_are_resampled_each_epoch_and_deterministic(splits):
    train, _, _ = splits
    rows = build_training_rows(train.impressions)
    examples = TrainingExamples(rows, num_negatives=3, seed=7)
    first = [examples[i]["candidates"] for i in range(len(rows))]
    assert first == [TrainingExamples(rows, 3, seed=7)[i]["candidates"] for i in range(len(rows))]
    examples.set_epoch(1)
    second = [examples[i]["candidates"] for i in range(len(rows))]
    assert first != second
    for i, (a, b) in enumerate(zip(first, second)):
        assert a[0] == b[0] == rows[i]["positive"] and len(a) == 4
        assert set(a[1:]) <= set(rows[i]["negative_pool"])


def test_collator_puts_the_click_first_and_pads(splits, data_processor):
    train, _, summaries = splits
    rows = build_training_rows(train.impressions, summaries=summaries)
    examples = TrainingExamples(rows, num_negatives=2)
    tokens = tokenize_item_table(data_processor, train.items)
    collator = EmbSumDataCollator(data_processor, tokens)
    batch = collator([examples[i] for i in range(4)])
    assert batch["candidate_input_ids"].shape[:2] == (4, 3)
    first = examples[0]["candidates"][0]
    assert batch["candidate_input_ids"][0, 0, : len(tokens[first])].tolist() == tokens[first]
    assert (batch["summary_labels"] != -100).any(-1).all()  # every synthetic user has a summary
    with pytest.raises(KeyError, match="not in the items table"):
        collator([{"history": ["N-missing"], "candidates": [first], "summary": None}])


def test_evaluator_scores_equal_forward_logits(splits, data_processor):
    _, dev, _ = splits
    torch.manual_seed(0)
    model = EmbSumModel(data_processor.config).eval()
    evaluator = ImpressionEvaluator(dev, data_processor, item_batch_size=7, user_batch_size=3)
    predictions = evaluator.predict(model)
    lookup = dev.item_lookup()
    for row, scores in list(zip(dev.impressions, predictions.scores))[:5]:
        users = data_processor.encode_users([[{"item_id": i, **lookup[i]} for i in row["history"]]])
        items = data_processor.pad_candidates([data_processor.tokenize_items([lookup[i] for i in row["candidates"]])])
        with torch.no_grad():
            logits = model(**users, **items).logits[0]
        torch.testing.assert_close(torch.tensor(scores), logits, atol=1e-4, rtol=1e-4)
    metrics = evaluator.evaluate(model)
    assert metrics == compute_mind_metrics(predictions.scores, predictions.labels)
    assert len(evaluator.histories) <= len(dev.impressions)  # each (user, history) encoded once


def test_trainer_learns_logs_both_losses_and_saves_a_complete_folder(tmp_path, splits, data_processor):
    train, dev, summaries = splits
    torch.manual_seed(0)
    model = EmbSumModel(data_processor.config)
    args = EmbSumTrainingArguments(
        output_dir=str(tmp_path / "run"),
        max_steps=12,
        per_device_train_batch_size=8,
        learning_rate=3e-3,
        logging_steps=4,
        eval_strategy="steps",
        eval_steps=6,
        save_strategy="steps",
        save_steps=6,
        load_best_model_at_end=True,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    items = datasets.concatenate_datasets([train.items, dev.items])
    trainer = EmbSumTrainer(
        model,
        args,
        train_dataset=build_training_rows(train.impressions, summaries=summaries),
        eval_dataset=build_training_rows(dev.impressions, summaries=summaries),
        evaluator=[
            ImpressionEvaluator(dev, data_processor, item_batch_size=64),
            ImpressionEvaluator(
                dataclasses.replace(train, impressions=train.impressions.select(range(10))),
                data_processor,
                name="train",
            ),
        ],
        data_collator=EmbSumDataCollator(data_processor, tokenize_item_table(data_processor, items)),
        processing_class=data_processor,
    )
    # new layers learn 5x faster than the backbone
    rates = {group["lr"] for group in trainer.create_optimizer().param_groups}
    assert rates == {3e-3, 3e-3 * 5}
    new_params = {id(p) for n, p in model.named_parameters() if n.startswith(EmbSumModel.new_layer_prefixes)}
    for group in trainer.optimizer.param_groups:
        assert all((id(p) in new_params) == (group["lr"] == 3e-3 * 5) for p in group["params"])

    warnings = WarningRecorder()
    transformers_logging.get_logger("transformers.trainer").addHandler(warnings)
    try:
        trainer.train()
    finally:
        transformers_logging.get_logger("transformers.trainer").removeHandler(warnings)
    # loading the best checkpoint: the tied embeddings load through `t5.shared`, so nothing is reported missing
    assert trainer.state.best_model_checkpoint and not [m for m in warnings.messages if "missing keys" in m]
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert all("ctr_loss" in entry and "summary_loss" in entry for entry in logs)
    assert logs[-1]["loss"] < logs[0]["loss"]
    evals = [entry for entry in trainer.state.log_history if "eval_auc" in entry]
    assert len(evals) == 2 and trainer.state.best_metric == max(e["eval_auc"] for e in evals)
    # the evaluators' metrics sit next to the base Trainer's eval_loss, the second one under its name
    assert all({"eval_loss", "eval_runtime", "eval_train_auc", "eval_ndcg@10"} <= set(e) for e in evals)
    assert all(e["eval_train_auc"] != e["eval_auc"] for e in evals)
    checkpoint = Path(trainer.state.best_model_checkpoint)
    assert {"processor_config.json", "tokenizer.json", "model.safetensors"} <= {p.name for p in checkpoint.iterdir()}
    best = load_file(checkpoint / "model.safetensors")  # what load_best_model_at_end put back
    state = trainer.model.state_dict()
    assert all(torch.equal(state[name], value) for name, value in best.items())
    assert torch.equal(state["t5.lm_head.weight"], best["t5.shared.weight"])  # the tie survived the load
    reloaded = EmbSumModel.from_pretrained(checkpoint)
    assert EmbSumProcessor.from_pretrained(checkpoint).item_template == data_processor.item_template
    assert reloaded.config.num_user_codes == model.config.num_user_codes


def test_train_command_reads_yaml_json_and_flags(tmp_path):
    from embsum_hf.commands.train import parse

    (tmp_path / "run.yaml").write_text(
        f"train_data: data/train\nsummary_loss_weight: 0.3\noutput_dir: {tmp_path / 'out'}\nlearning_rate: 0.001\n"
        "new_layers_lr_multiplier: 4\nnum_negatives: 3\n"
    )
    run_args, training_args = parse([str(tmp_path / "run.yaml")])
    assert (run_args.train_data, run_args.summary_loss_weight) == ("data/train", 0.3)
    assert (training_args.learning_rate, training_args.new_layers_lr_multiplier) == (0.001, 4)
    assert training_args.negatives_per_click == 3  # a sampling setting of training, not of the Hub config
    assert training_args.metric_for_best_model == "auc" and training_args.remove_unused_columns is False
    run_args, training_args = parse(["--train_data", "x", "--output_dir", str(tmp_path), "--num_user_codes", "8"])
    assert run_args.num_user_codes == 8 and run_args.config_overrides()["num_user_codes"] == 8
    with pytest.raises(ValueError, match="new_layers_lr_multiplier"):
        parse(["--output_dir", str(tmp_path), "--new_layers_lr_multiplier", "0"])


def test_impression_examples_carry_all_clicks(splits, data_processor):
    from embsum_hf.training.collator import candidate_log_q

    train, _, summaries = splits
    rows = build_training_rows(train.impressions, summaries=summaries)
    examples = TrainingExamples(rows, num_negatives=2, seed=7, group_by_impression=True)
    assert len(examples) == len(set(zip(rows["user_id"], rows["impression_id"])))
    clicks = []
    for index in range(len(examples)):
        example = examples[index]
        positives = [c for c, y in zip(example["candidates"], example["labels"]) if y == 1]
        negatives = [c for c, y in zip(example["candidates"], example["labels"]) if y == 0]
        clicks += positives
        assert 1 <= len(negatives) <= 2 and len(set(negatives)) == len(negatives)
        assert not set(positives) & set(negatives)
    assert sorted(clicks) == sorted(rows["positive"])  # every click row is in exactly one example
    first = [examples[i]["candidates"] for i in range(len(examples))]
    examples.set_epoch(1)
    assert first != [examples[i]["candidates"] for i in range(len(examples))]  # negatives re-drawn per epoch

    log_q = candidate_log_q(rows)
    assert abs(sum(math.exp(v) for v in log_q.values()) - 1) < 1e-9
    collator = EmbSumDataCollator(data_processor, tokenize_item_table(data_processor, train.items), log_q)
    batch = collator([examples[i] for i in range(3)] + [TrainingExamples(rows, 2)[0]])  # a per-click row mixed in
    width = batch["candidate_input_ids"].shape[1]
    for row, example in enumerate([examples[i] for i in range(3)]):
        n = len(example["candidates"])
        assert batch["candidate_labels"][row, :n].tolist() == example["labels"]
        assert (batch["candidate_labels"][row, n:] == -100).all() and n <= width
        assert batch["candidate_log_q"][row, :n].tolist() == pytest.approx([log_q[c] for c in example["candidates"]])
    assert batch["candidate_labels"][3, :3].tolist() == [1, 0, 0]


def test_clicks_without_negatives_are_kept_only_when_asked(splits):
    train, _, _ = splits
    dropped = build_training_rows(train.impressions)
    kept = build_training_rows(train.impressions, keep_without_negatives=True)
    all_clicks = sum(sum(1 for y in labels if y == 1) for labels in train.impressions["labels"])
    assert len(kept) == all_clicks >= len(dropped)
    assert all(pool for pool in dropped["negative_pool"])
    examples = TrainingExamples(kept, num_negatives=2, group_by_impression=True)
    assert all(set(example["labels"]) <= {0, 1} for example in (examples[i] for i in range(len(examples))))


def test_a_config_saved_with_num_negatives_still_loads(tmp_path, data_processor):
    # before num_negatives moved to EmbSumTrainingArguments it was saved in config.json
    data_processor.config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "num_negatives" not in saved
    (tmp_path / "config.json").write_text(json.dumps({**saved, "num_negatives": 2}))
    config = EmbSumConfig.from_pretrained(tmp_path)
    assert config.num_user_codes == data_processor.config.num_user_codes and not hasattr(config, "num_negatives")


def test_trainer_draws_args_num_negatives(splits, data_processor, tmp_path):
    train, _, _ = splits
    args = EmbSumTrainingArguments(
        output_dir=str(tmp_path), num_negatives=2, group_by_impression=False, report_to=[], use_cpu=True
    )
    collator = EmbSumDataCollator(data_processor, tokenize_item_table(data_processor, train.items))
    trainer = EmbSumTrainer(
        EmbSumModel(data_processor.config),
        args,
        train_dataset=build_training_rows(train.impressions),
        data_collator=collator,
        processing_class=data_processor,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["candidate_input_ids"].shape[1] == 3  # the click and 2 negatives
    with pytest.raises(ValueError, match="data_collator"):
        EmbSumTrainer(EmbSumModel(data_processor.config), args, train_dataset=build_training_rows(train.impressions))


def test_in_batch_negatives_replace_the_click_loss_in_training_only(splits, data_processor, tmp_path):
    from embsum_hf.training.collator import candidate_log_q
    from embsum_hf.training.trainer import in_batch_click_loss

    train, _, summaries = splits
    rows = build_training_rows(train.impressions, summaries=summaries)
    args = EmbSumTrainingArguments(
        output_dir=str(tmp_path), in_batch_negatives=True, logq_correction=True, report_to=[], use_cpu=True
    )
    items = tokenize_item_table(data_processor, train.items)
    collator = EmbSumDataCollator(data_processor, items, candidate_log_q(rows))
    model = EmbSumModel(data_processor.config)  # dropout 0: every forward pass is the same
    trainer = EmbSumTrainer(model, args, train_dataset=rows, data_collator=collator, processing_class=data_processor)
    batch = next(iter(trainer.get_train_dataloader()))
    inputs = {name: value for name, value in batch.items() if name != "candidate_log_q"}  # no model input
    outputs = model.train()(**inputs)
    assert outputs.summary_loss is not None
    in_batch = in_batch_click_loss(model, outputs, inputs, batch["candidate_log_q"])
    expected = in_batch + model.config.summary_loss_weight * outputs.summary_loss
    torch.testing.assert_close(trainer.compute_loss(model, batch), expected)
    torch.testing.assert_close(trainer._loss_parts["ctr_loss"][-1], in_batch.detach())  # the logged click loss
    assert not torch.isclose(in_batch, outputs.ctr_loss)
    # evaluation (eval_loss) keeps the model's own loss, the paper's
    with torch.no_grad():
        torch.testing.assert_close(trainer.compute_loss(model.eval(), batch), model(**inputs).loss)


def test_summary_warmup_lets_the_click_loss_start_alone(splits, data_processor, tmp_path):
    train, _, summaries = splits
    rows = build_training_rows(train.impressions, summaries=summaries)
    args = EmbSumTrainingArguments(output_dir=str(tmp_path), summary_warmup_steps=4, report_to=[], use_cpu=True)
    collator = EmbSumDataCollator(data_processor, tokenize_item_table(data_processor, train.items))
    model = EmbSumModel(data_processor.config)  # dropout 0: every forward pass is the same
    trainer = EmbSumTrainer(model, args, train_dataset=rows, data_collator=collator, processing_class=data_processor)
    batch = next(iter(trainer.get_train_dataloader()))
    outputs = model.train()(**batch)
    assert outputs.summary_loss > 0 and model.config.summary_loss_weight > 0
    weight = model.config.summary_loss_weight
    for step, share in ((0, 0.0), (1, 0.25), (3, 0.75), (4, 1.0), (9, 1.0)):
        trainer.state.global_step = step
        expected = outputs.ctr_loss + share * weight * outputs.summary_loss
        torch.testing.assert_close(trainer.compute_loss(model, batch), expected)
    trainer.state.global_step = 0  # evaluation keeps the model's own loss
    with torch.no_grad():
        torch.testing.assert_close(trainer.compute_loss(model.eval(), batch), model(**batch).loss)
    with pytest.raises(ValueError, match="summary_warmup_steps must be >= 0"):
        EmbSumTrainingArguments(output_dir=str(tmp_path), summary_warmup_steps=-1, report_to=[], use_cpu=True)


def test_evaluators_alone_evaluate_without_eval_rows(splits, data_processor, tmp_path):
    train, dev, _ = splits
    args = EmbSumTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=1,
        eval_strategy="steps",
        eval_steps=1,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = EmbSumTrainer(
        EmbSumModel(data_processor.config),
        args,
        train_dataset=build_training_rows(train.impressions),
        evaluator=ImpressionEvaluator(dev, data_processor),
        data_collator=EmbSumDataCollator(data_processor, tokenize_item_table(data_processor, train.items)),
        processing_class=data_processor,
    )
    trainer.train()
    # levers a trainer used without `embsum train`'s recipe leaves unset train, and are recorded, as the paper's
    recorded = model_card_data(trainer.model).training_args
    assert recorded["in_batch_negatives"] is recorded["logq_correction"] is False
    assert recorded["summary_warmup_steps"] == recorded["history_clicks"] == 0
    assert args.in_batch_negatives is args.logq_correction is args.summary_warmup_steps is None  # the caller's
    assert args.history_clicks is None
    metrics = trainer.evaluate()
    assert "eval_auc" in metrics and "eval_loss" not in metrics  # no rows: no loss, the evaluator's metrics
    during = [entry for entry in trainer.state.log_history if "eval_auc" in entry]
    assert during and during[0]["eval_auc"] == metrics["eval_auc"]  # the step-1 evaluation, same model


def test_hyperparameter_search_tunes_on_dev_auc(splits, data_processor, tmp_path):
    pytest.importorskip("optuna", reason="pip install -e '.[tune]'")
    from transformers import TrainerCallback

    from embsum_hf.training import ImpressionEvaluator

    train, dev, summaries = splits
    collator = EmbSumDataCollator(data_processor, tokenize_item_table(data_processor, train.items))
    args = EmbSumTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=8,
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    seen = []

    def model_init(trial=None):
        return EmbSumModel(data_processor.config)

    class Negatives(TrainerCallback):  # each trial's num_negatives must reach the sampled rows
        def on_train_begin(self, args, state, control, **kwargs):
            seen.append((args.num_negatives, trainer.train_dataset.num_negatives))

    trainer = EmbSumTrainer(
        model_init=model_init,
        args=args,
        train_dataset=build_training_rows(train.impressions, summaries=summaries),
        evaluator=ImpressionEvaluator(dev, data_processor),
        data_collator=collator,
        processing_class=data_processor,
        callbacks=[Negatives()],
    )
    best = trainer.hyperparameter_search(n_trials=2)
    # the default space: every hyper-parameter of it, within its bounds
    assert set(best.hyperparameters) == {"learning_rate", "new_layers_lr_multiplier", "num_negatives", "weight_decay"}
    assert 1e-4 <= best.hyperparameters["learning_rate"] <= 5e-3 and 1 <= best.hyperparameters["num_negatives"] <= 8
    assert 0.0 <= best.objective <= 1.0  # the objective is the dev AUC
    assert len(seen) == 2 and all(asked == used for asked, used in seen)


def test_recipe_item_prior_reaches_config_save_and_evaluation(splits, tmp_path):
    from embsum_hf.training.recipe import FROM_SCRATCH_DROPOUT_RATE, EmbSumRunArguments, build_model_and_processor

    train, dev, _ = splits
    shape = RECIPE_SHAPE
    run_args = EmbSumRunArguments(train_data="unused", item_prior=True, **shape)
    model, processor = build_model_and_processor(run_args, train, {})
    seen = sorted({item for candidates in train.impressions["candidates"] for item in candidates})
    assert model.config.item_prior_ids == seen and model.config.session_max_items == 1  # from scratch: one-item
    plain, _ = build_model_and_processor(EmbSumRunArguments(train_data="unused", **shape), train, {})
    assert plain.item_prior is None and plain.config.item_prior_ids is None  # off by default: the paper's model
    # from scratch without dropout unless a rate is given (RECIPE_SHAPE gives 0)
    unset = {name: value for name, value in shape.items() if name != "dropout_rate"}
    for given, expected in (({}, FROM_SCRATCH_DROPOUT_RATE), ({"dropout_rate": 0.2}, 0.2)):
        built, _ = build_model_and_processor(EmbSumRunArguments(train_data="unused", **unset, **given), train, {})
        assert built.config.t5_config.dropout_rate == expected
    model.save_pretrained(tmp_path)
    assert EmbSumModel.from_pretrained(tmp_path).config.item_prior_ids == seen
    # evaluation adds each candidate's prior to the content score (0 for items never seen in training)
    evaluator = ImpressionEvaluator(dev, processor)
    content = evaluator.predict(model.eval()).scores
    with torch.no_grad():
        model.item_prior.weight[1:] = torch.arange(1, len(seen) + 1, dtype=torch.float)[:, None]
    shifted = evaluator.predict(model).scores
    rows = {item: row for row, item in enumerate(seen, start=1)}
    for before, after, candidates in zip(content, shifted, dev.impressions["candidates"]):
        assert after == pytest.approx([b + rows.get(c, 0) for b, c in zip(before, candidates)], abs=1e-3)


def test_fit_item_prior_is_the_click_loss_map_bias():
    from embsum_hf.training.item_prior import fit_item_prior

    # "A" beats "B" 9 times in 10, "C" loses to both every time, "D" is never shown; "Z" has no prior row
    rows = datasets.Dataset.from_dict(
        {
            "positive": ["A"] * 9 + ["B"] + ["A", "B"] * 5 + ["Z"],
            "negative_pool": [["B"]] * 9 + [["A"]] + [["C"]] * 10 + [["A", "C"]],
        }
    )
    weights = fit_item_prior(rows, ["A", "B", "C", "D"], prior_std=10.0)
    assert weights.shape == (5,) and weights[0] == 0 and weights[4] == 0  # no-prior row, never-shown item
    assert weights[1] > weights[2] > weights[3]
    # with a weak Gaussian prior the A-vs-B margin approaches the log-odds of its 9:1 record, pulled by the C rows
    assert 1.0 < float(weights[1] - weights[2]) < math.log(9) + 0.5
    tight = fit_item_prior(rows, ["A", "B", "C", "D"], prior_std=0.1)
    assert tight.abs().max() < weights.abs().max() / 3  # a tight prior keeps every bias near 0
    with pytest.raises(ValueError, match="prior_std"):
        fit_item_prior(rows, ["A"], prior_std=0.0)
    empty = datasets.Dataset.from_dict({"positive": ["A"], "negative_pool": [[]]})
    assert fit_item_prior(empty, ["A", "B"]).eq(0).all()  # nothing to learn from: the prior stays 0


def test_trainer_fits_a_fresh_item_prior_and_keeps_a_trained_one(splits, tmp_path):
    from embsum_hf.training.item_prior import fit_item_prior
    from embsum_hf.training.recipe import EmbSumRunArguments, build_model_and_processor

    train, _, _ = splits
    shape = RECIPE_SHAPE
    run_args = EmbSumRunArguments(train_data="unused", item_prior=True, **shape)
    rows = build_training_rows(train.impressions)

    def trained(fit: bool, learning_rate: float = 0.0, model=None):
        if model is None:
            model, _ = build_model_and_processor(run_args, train, {})
        _, processor = build_model_and_processor(run_args, train, {})
        args = EmbSumTrainingArguments(
            output_dir=str(tmp_path),
            max_steps=1,
            learning_rate=learning_rate,
            fit_item_prior=fit,
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            save_strategy="no",
        )
        collator = EmbSumDataCollator(processor, tokenize_item_table(processor, train.items))
        EmbSumTrainer(model, args, train_dataset=rows, data_collator=collator, processing_class=processor).train()
        return model

    fitted = trained(fit=True)  # learning rate 0: what the prior holds is the fit alone
    expected = fit_item_prior(rows, fitted.config.item_prior_ids)
    torch.testing.assert_close(fitted.item_prior.weight[:, 0].detach(), expected)
    assert expected.abs().max() > 0.1  # the synthetic clicks prefer some items: the fit is not all zeros
    assert trained(fit=False).item_prior.weight.eq(0).all()  # fit_item_prior=False: a fresh prior stays 0
    with torch.no_grad():
        fitted.item_prior.weight.mul_(2.0)  # a trained prior (non-zero) is kept as it is
    kept = fitted.item_prior.weight.detach().clone()
    torch.testing.assert_close(trained(fit=True, model=fitted).item_prior.weight.detach(), kept)


def test_catalogue_negatives_are_uniform_unread_deterministic_and_redrawn(splits):
    from embsum_hf.data.schema import impressions_dataset

    train, _, _ = splits
    # one more impression in which every candidate was clicked: its clicks get the catalogue's negatives alone
    first = train.impressions[0]
    extra = dict(first, impression_id="all-clicked", candidates=first["candidates"][:2], labels=[1, 1])
    rows = build_training_rows(impressions_dataset([*train.impressions, extra]), keep_without_negatives=True)
    catalogue = list(train.items["item_id"])

    def examples_of(grouped: bool) -> TrainingExamples:
        return TrainingExamples(
            rows, num_negatives=2, seed=3, group_by_impression=grouped, catalogue=catalogue, catalogue_negatives=5
        )

    examples, again = examples_of(True), examples_of(True)
    drawn = [examples[i] for i in range(len(examples))]
    assert drawn == [again[i] for i in range(len(again))]  # deterministic in seed, epoch and example
    examples.set_epoch(1)
    assert [examples[i]["candidates"] for i in range(len(examples))] != [e["candidates"] for e in drawn]
    for example in drawn:
        clicks = [c for c, y in zip(example["candidates"], example["labels"]) if y == 1]
        negatives = [c for c, y in zip(example["candidates"], example["labels"]) if y == 0]
        assert len(negatives) == len(set(negatives)) >= 5  # the catalogue's 5 (+ the impression's own, if any)
        assert not set(negatives) & {*example["history"], *clicks}  # never the user's own reads
    assert [e["labels"] for e in drawn if e["candidates"][:2] == extra["candidates"]] == [[1, 1] + [0] * 5]
    per_click = examples_of(False)  # one example per click: the click first, then its negatives
    kept = [per_click[i] for i, row in enumerate(rows["impression_id"]) if row == "all-clicked"]
    assert [e["candidates"][0] for e in kept] == extra["candidates"]
    for example in kept:
        assert len(example["candidates"]) == len(set(example["candidates"])) == 6
        assert not set(example["candidates"][1:]) & {*example["history"], *extra["candidates"]}
    # the item prior's fit reads every row's own non-clicks plus one draw of the catalogue's
    fit = examples.prior_fit_rows()
    assert fit == examples_of(True).prior_fit_rows() and fit["positive"] == rows["positive"]
    for row, pool in zip(rows, fit["negative_pool"]):
        assert pool[: len(row["negative_pool"])] == row["negative_pool"]
        draw = pool[len(row["negative_pool"]) :]
        assert len(draw) == len(set(draw)) == 5
        assert not set(draw) & {*row["history"], row["positive"], *row["negative_pool"]}
    with pytest.raises(ValueError, match="catalogue"):
        TrainingExamples(rows, num_negatives=2, catalogue_negatives=5)


def test_item_prior_history_draws_count_every_read(splits, tmp_path):
    from embsum_hf.data.arguments import Splits
    from embsum_hf.training.item_prior import fit_item_prior
    from embsum_hf.training.recipe import EmbSumRunArguments, build_model_and_processor, build_trainer

    train, _, _ = splits
    model, processor = build_model_and_processor(
        EmbSumRunArguments(train_data="unused", item_prior=True, **RECIPE_SHAPE), train, {}
    )
    history_items = {item for history in train.impressions["history"] for item in history}
    assert history_items <= set(model.config.item_prior_ids)  # history reads are clicks of the fit: they need a row
    args = EmbSumTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=1,
        learning_rate=0.0,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        item_prior_history_draws=3,
        item_prior_std=5.0,
    )
    trainer = build_trainer(model, processor, args, Splits(train, None, None))
    examples = trainer.train_dataset
    fit_rows = examples.prior_fit_rows(history_draws=3)
    assert fit_rows == examples.prior_fit_rows(history_draws=3)  # deterministic in the seed
    rows = examples.rows
    reads: dict[str, set[str]] = {}
    for user, history, positive in zip(rows["user_id"], rows["history"], rows["positive"]):
        reads.setdefault(user, set()).update([*history, positive])
    # every click row, then every (user, history item) once that is not one of the user's clicks
    clicked = {(u, p) for u, p in zip(rows["user_id"], rows["positive"])}
    history_reads = {(u, i) for u, items in reads.items() for i in items} - clicked
    assert len(fit_rows["positive"]) == len(rows) + len(history_reads)
    for pool in fit_rows["negative_pool"][len(rows) :]:
        assert len(pool) == len(set(pool)) == 3  # the catalogue draws of a history read
    assert all(item not in pool for item, pool in zip(fit_rows["positive"], fit_rows["negative_pool"]))
    trainer.train()
    prior = model.item_prior.weight[:, 0].detach()  # learning rate 0: the prior is the fit on every read alone
    torch.testing.assert_close(prior, fit_item_prior(fit_rows, model.config.item_prior_ids, prior_std=5.0))
    counts = Counter(fit_rows["positive"])
    row_of = {item: row for row, item in enumerate(model.config.item_prior_ids, start=1)}
    most, least = max(counts.values()), min(counts.values())
    assert most > least

    def mean_prior(n: int) -> float:
        return float(torch.stack([prior[row_of[i]] for i, c in counts.items() if c == n]).mean())

    assert mean_prior(most) > mean_prior(least)  # the more reads, the higher the prior
    with pytest.raises(ValueError, match="item_prior_std"):
        EmbSumTrainingArguments(output_dir="unused", item_prior_std=0.0)


def test_history_clicks_add_each_users_recent_reads_to_the_trainers_rows(splits, data_processor, tmp_path):
    from embsum_hf.data.arguments import Splits
    from embsum_hf.training.recipe import build_trainer

    train, _, _ = splits
    model = EmbSumModel(tiny_config(data_processor.tokenizer))

    def trainer_rows(history_clicks: int) -> datasets.Dataset:
        args = EmbSumTrainingArguments(
            output_dir=str(tmp_path), max_steps=1, report_to=[], use_cpu=True, disable_tqdm=True,
            save_strategy="no", history_clicks=history_clicks,
        )  # fmt: skip
        return build_trainer(model, data_processor, args, Splits(train, None, None)).train_dataset.rows

    plain, more = trainer_rows(0), trainer_rows(2)
    assert more.select(range(len(plain))).to_list() == plain.to_list()  # the click rows first, unchanged
    added = more.select(range(len(plain), len(more)))
    # once per user and history: a synthetic MIND user's impressions share one history
    first: dict[tuple[str, tuple], str] = {}
    for user, impression, history in zip(plain["user_id"], plain["impression_id"], plain["history"]):
        first.setdefault((user, tuple(history)), impression)
    assert len(first) < len(set(zip(plain["user_id"], plain["impression_id"])))  # some histories repeat
    histories = {(user, impression): list(history) for (user, history), impression in first.items()}
    expected = sum(min(2, len(history) - 1) for history in histories.values() if len(history) > 1)
    assert len(added) == expected > 0
    items = set(train.items["item_id"])
    for row in added:
        impression, _, position = row["impression_id"].rpartition("/read-")
        history = histories[(row["user_id"], impression)]
        assert row["positive"] == history[int(position)] and row["history"] == history[int(position) + 1 :]
        assert set(row["negative_pool"]) <= items - set(history)
    with pytest.raises(ValueError, match="history_clicks"):
        EmbSumTrainingArguments(output_dir="unused", history_clicks=-1)


def test_choose_prior_weight_keeps_the_prior_out_when_it_does_not_help():
    from embsum_hf.training.item_prior import choose_prior_weight

    labels = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    right = [[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0]]  # ranks every click first
    wrong = [[-1.0, 1.0, 0.0], [0.0, -1.0, 1.0], [1.0, 0.0, -1.0]]  # ranks every click last
    flat = [[0.0] * 3] * 3
    assert choose_prior_weight(right, wrong, labels)[0] == 0.0  # a prior that hurts gets weight 0
    weight, aucs = choose_prior_weight(flat, right, labels)
    assert weight > 0 and aucs[weight] == 1.0 and aucs[0.0] == 0.5  # a content model that knows nothing: the prior
    small = [[0.1, 0.0, 0.0], [0.0, 0.0, 0.1], [0.1, 0.0, 0.0]]  # right on the first user only
    weight, aucs = choose_prior_weight(small, right, labels, weights=(0.0, 1.0, 2.0))
    assert weight == 1.0 and aucs == {0.0: 0.5, 1.0: 1.0, 2.0: 1.0}  # ties: the smaller weight


def test_late_item_prior_trains_the_content_model_alone_and_joins_with_the_dev_chosen_weight(splits, tmp_path):
    import copy

    from embsum_hf.data.arguments import Splits
    from embsum_hf.training.item_prior import ItemPriorFitCallback, choose_prior_weight, fit_item_prior
    from embsum_hf.training.recipe import EmbSumRunArguments, build_model_and_processor, build_trainer

    train, dev, _ = splits
    model, processor = build_model_and_processor(
        EmbSumRunArguments(train_data="unused", item_prior=True, **RECIPE_SHAPE), train, {}
    )
    args = EmbSumTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=3,
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        eval_strategy="no",
        item_prior_fusion="late",
        item_prior_history_draws=2,
    )
    trainer = build_trainer(model, processor, args, Splits(train, dev, None))
    assert not model.item_prior.weight.requires_grad  # the content model trains alone
    fit = next(c for c in trainer.callback_handler.callbacks if isinstance(c, ItemPriorFitCallback))
    trainer.train()
    evaluator = trainer.evaluators[0]
    content_model = copy.deepcopy(model)
    with torch.no_grad():
        content_model.item_prior.weight.zero_()
    content = evaluator.predict(content_model)
    weights = fit_item_prior(fit.rows, model.config.item_prior_ids)
    prior_scores = [weights[model.item_prior_index(row)].tolist() for row in dev.impressions["candidates"]]
    weight, aucs = choose_prior_weight(content.scores, prior_scores, content.labels)
    assert fit.weight == weight
    torch.testing.assert_close(model.item_prior.weight[:, 0].detach(), weight * weights)
    # the saved model ranks the dev split by content + weight * prior: the AUC the choice promised
    assert evaluator.evaluate(model)["auc"] == pytest.approx(aucs[weight], abs=1e-6)
    with pytest.raises(ValueError, match="dev split"):
        build_trainer(model, processor, args, Splits(train, None, None))


def test_lsa_token_embeddings_put_tokens_of_the_same_items_close():
    from embsum_hf.training.text_init import lsa_token_embeddings

    # two topics (of different weight): tokens 5-8 occur together, tokens 9-12 together; 3 occurs nowhere
    topic_a, topic_b = [[5, 6, 7], [5, 6, 8], [6, 7, 8]], [[9, 10, 11], [9, 10, 12], [10, 11, 12]]
    documents = topic_a * 4 + topic_b * 3
    vectors, seen = lsa_token_embeddings(documents, 16, 2, generator=torch.Generator().manual_seed(0))
    assert seen.nonzero().ravel().tolist() == list(range(5, 13)) and vectors[~seen].eq(0).all()
    cosine = torch.nn.functional.cosine_similarity(vectors[5:13, None], vectors[None, 5:13], dim=-1)  # (8, 8)
    topic = torch.arange(8) // 4
    same = cosine[(topic[:, None] == topic[None]) & ~torch.eye(8, dtype=torch.bool)]
    other = cosine[topic[:, None] != topic[None]]
    assert same.min() > 0.99 and other.abs().max() < 0.05  # rank 2: one direction per topic
    assert vectors[seen].std().item() == pytest.approx(1.0, abs=1e-4)  # T5's embedding scale
    again, _ = lsa_token_embeddings(documents, 16, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(vectors, again)


def test_recipe_text_embedding_init_starts_from_the_items_lsa(splits):
    from embsum_hf.training.recipe import EmbSumRunArguments, build_model_and_processor
    from embsum_hf.training.text_init import lsa_token_embeddings

    train, _, _ = splits
    shape = RECIPE_SHAPE
    torch.manual_seed(0)
    plain, processor = build_model_and_processor(EmbSumRunArguments(train_data="unused", **shape), train, {})
    torch.manual_seed(0)
    run_args = EmbSumRunArguments(train_data="unused", text_embedding_init=True, **shape)
    initialised, _ = build_model_and_processor(run_args, train, {})
    weight = initialised.get_input_embeddings().weight.detach()
    vectors, seen = lsa_token_embeddings(
        processor.tokenize_items(train.items.to_list()), *weight.shape, generator=torch.Generator().manual_seed(0)
    )
    assert seen.any() and (~seen).any()
    # the items' tokens start from their LSA vectors, the others at random as without it
    torch.testing.assert_close(weight[seen], vectors[seen])
    torch.testing.assert_close(weight[~seen], plain.get_input_embeddings().weight.detach()[~seen])


def _reads_against_unread(train: RecommendationData, num_unread: int) -> RecommendationData:
    """30 users who read among 10 of `train`'s items, each impression's non-clicks drawn from `num_unread` other
    items nobody reads (what a test that ranks a read among uniformly drawn unread items trains on); the items table
    holds those items only."""
    items = list(train.items["item_id"])
    read, unread = items[:10], items[10 : 10 + num_unread]
    rows = [
        {
            "impression_id": str(k),
            "user_id": f"u{k}",
            "time": "",
            "history": [read[(k + 1) % 10], read[(k + 2) % 10]],
            "candidates": [read[k % 10], *(unread[(4 * k + j) % len(unread)] for j in range(4))],
            "labels": [1, 0, 0, 0, 0],
        }
        for k in range(30)
    ]
    catalogue = train.items.select(range(10 + num_unread))
    return RecommendationData.from_rows(catalogue, rows, "custom", f"reads among {10 + num_unread}", {})


def test_recipe_chooses_the_sparse_catalogue_levers_from_the_training_data(splits, tmp_path, caplog):
    from embsum_hf.training.recipe import (
        SPARSE_CATALOGUE_CLICKS_PER_ITEM,
        SPARSE_CATALOGUE_POPULARITY_AUC,
        EmbSumRunArguments,
        choose_data_levers,
        clicks_per_item,
        read_counts,
        read_popularity_auc,
    )

    train, _, _ = splits
    # reads: every history item and every click (not the unclicked candidates), in Arrow
    expected: Counter = Counter()
    for row in train.impressions:
        expected.update(row["history"])
        expected.update(item for item, label in zip(row["candidates"], row["labels"]) if label == 1)
    assert read_counts(train) == expected and len(expected) > 1
    sparse, dense = _reads_against_unread(train, 100), _reads_against_unread(train, 4)
    # a click is not counted for itself: its item's other reads rank it
    assert read_popularity_auc(sparse) == read_popularity_auc(dense) == 1.0
    assert read_popularity_auc(train) < SPARSE_CATALOGUE_POPULARITY_AUC  # MIND-style: the non-clicks were shown
    assert clicks_per_item(sparse) == 30 / 110 and clicks_per_item(dense) == 30 / 14 > SPARSE_CATALOGUE_CLICKS_PER_ITEM

    def choose(data, **given):
        run_keys = {"text_embedding_init", "backbone", *PAPER_MODEL_LEVERS}
        run_args = EmbSumRunArguments(train_data="unused", **{k: v for k, v in given.items() if k in run_keys})
        training_args = EmbSumTrainingArguments(
            output_dir=str(tmp_path),
            report_to=[],
            use_cpu=True,
            **{k: v for k, v in given.items() if k not in run_keys},
        )
        with caplog.at_level(logging.INFO, logger="embsum_hf.training.recipe"):
            levers = choose_data_levers(run_args, training_args, data)
        # the choice is written into the arguments the model and the trainer are built from
        assert levers == {
            "text_embedding_init": run_args.text_embedding_init,
            "in_batch_negatives": training_args.in_batch_negatives,
            "logq_correction": training_args.logq_correction,
            "summary_warmup_steps": training_args.summary_warmup_steps,
            "history_clicks": training_args.history_clicks,
            "summary_copy": run_args.summary_copy,
            "summary_loss_weight": run_args.summary_loss_weight,
            "summary_history_boost": run_args.summary_history_boost,
            "summary_session_positions": run_args.summary_session_positions,
        }
        # and the model is built with it
        config = EmbSumConfig(**run_args.config_overrides())
        assert all(getattr(config, name) == levers[name] for name in PAPER_MODEL_LEVERS)
        return levers

    paper = {"text_embedding_init": False, "in_batch_negatives": False, "logq_correction": False}
    paper.update(summary_warmup_steps=0, history_clicks=0)
    paper.update(
        summary_copy=False, summary_loss_weight=1.0, summary_history_boost=16.0, summary_session_positions=False
    )
    sparse_levers = dict.fromkeys(("text_embedding_init", "in_batch_negatives", "logq_correction"), True)
    sparse_levers.update(summary_warmup_steps=300, history_clicks=1)
    # the summary recipe: the learned copy mechanism, λ 2, no history boost, the decoder reading the sessions' order
    sparse_levers.update(summary_copy=True, summary_loss_weight=2.0, summary_history_boost=0.0)
    sparse_levers.update(summary_session_positions=True)
    assert choose(sparse) == sparse_levers
    assert "0.27 training clicks per item" in caplog.text and "at AUC 1.000" in caplog.text
    assert "a sparse catalogue" in caplog.text
    assert choose(train) == paper  # the paper's recipe: the non-clicks were shown
    caplog.clear()
    assert choose(dense) == paper  # each item clicked often: the paper's recipe, without the AUC's pass
    assert "2.14 training clicks per item" in caplog.text and "AUC" not in caplog.text
    assert read_popularity_auc(sparse, max_impressions=5) == 1.0  # a sample of the impressions
    # a lever given is kept; the others are still chosen
    given = dict(in_batch_negatives=False, logq_correction=False, summary_warmup_steps=0, history_clicks=2)
    given.update(summary_copy=False, summary_loss_weight=0.5)
    chosen = {"text_embedding_init": True, **given, "summary_history_boost": 0.0, "summary_session_positions": True}
    assert choose(sparse, **given) == chosen
    # a pretrained backbone keeps the paper's recipe (the LSA start is for token embeddings trained from scratch)
    assert choose(sparse, backbone="t5-small") == paper
