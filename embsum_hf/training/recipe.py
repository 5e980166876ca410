"""The end-to-end recipe behind `embsum train` and `make demo`: data -> tokenizer -> model -> joint training -> card.

`EmbSumRunArguments` (data, model shape and run options) holds what is not a `TrainingArguments` field; both
dataclasses are filled by `transformers.HfArgumentParser` from flags or a YAML/JSON file.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import pyarrow.compute as pc
import torch
from transformers.trainer import TRAINER_STATE_NAME

from ..configuration_embsum import EmbSumConfig
from ..data.arguments import DataArguments, Splits, load_splits, save_splits
from ..data.rows import build_training_rows, history_click_rows, load_summaries
from ..data.schema import RecommendationData
from ..data.sources import SOURCES, get_source
from ..modeling_embsum import EmbSumModel, WellFormedSlots
from ..processing_embsum import ITEM_TEMPLATES, EmbSumProcessor, add_item_start_token
from ..utils import atomic_write_text, check_safetensors
from .arguments import (
    PAPER_MODEL_LEVERS,
    PAPER_TRAINING_LEVERS,
    TRI_STATE_FLAG,
    EmbSumTrainingArguments,
    ModelArguments,
)
from .collator import EmbSumDataCollator, candidate_log_q, tokenize_item_table
from .evaluation import ImpressionEvaluator, impression_metrics, summary_rouge
from .item_prior import ItemPriorFitCallback
from .text_init import lsa_token_embeddings
from .tokenizer import train_tokenizer
from .trainer import EmbSumTrainer

logger = logging.getLogger(__name__)

# A model trained from scratch encodes every history item alone unless `session_max_items` says otherwise: each
# distinct item is then encoded once per batch (shared between histories and candidates), which trains about 1.5x
# more steps per CPU-second than the paper's packed sessions at equal accuracy (README, accuracy ablation). A
# pretrained backbone keeps the paper's packing.
FROM_SCRATCH_SESSION_MAX_ITEMS = 1
# `embsum train` without a backbone and without --learning_rate trains at this rate, not TrainingArguments' 5e-5 (a
# fine-tuning rate: a T5 trained from scratch barely moves at it). Every from-scratch number in the README (the demo,
# the MovieLens and summary benchmarks) was measured at this rate.
FROM_SCRATCH_LEARNING_RATE = 2e-3
# A backbone trained from scratch without a `dropout_rate` of its own (`build_model_and_processor`, so `embsum train`
# and `make demo`) trains without dropout, not T5's 0.1 (a pretrained backbone keeps its own). Within a CPU budget
# dropout costs steps and accuracy: books, 3 seeds, 82.31 +- 0.37 -> 84.30 +- 0.20 dev AUC with it off
# (docs/accuracy-books.md); MovieLens, 3 seeds, 0.7 AUC (docs/benchmarks.md).
FROM_SCRATCH_DROPOUT_RATE = 0.0


@dataclass
class EmbSumRunArguments(ModelArguments, DataArguments):
    """
    Data ([`DataArguments`]), model shape ([`ModelArguments`]) and the rest of a training run that is not a
    TrainingArguments field.
    """

    save_splits: bool = field(
        default=False,
        metadata={
            "help": "Also save the loaded train/dev/test splits to OUTPUT_DIR/data/<split> (any command's --data)."
        },
    )
    summaries: str | None = field(default=None, metadata={"help": "Teacher summaries, JSON lines {user_id, summary}."})
    teacher: str | None = field(
        default=None, metadata={"help": "Who wrote the summaries (LLM id or 'heuristic'), for the card."}
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Dataset name for the model card, e.g. MIND-small."}
    )
    license: str | None = field(
        default=None,
        metadata={
            "help": "Hub license id of the trained weights for the model card; default: from the data's terms "
            "(MIND, Goodreads, MovieLens: non-commercial / research terms -> 'other'), 'unknown' for custom data."
        },
    )
    rouge_users: int = field(
        default=100,
        metadata={
            "help": "Held-out users whose generated summaries get ROUGE, the constant-sentence baseline, the "
            "specificity gap and the distinct-summary share."
        },
    )
    backbone: str | None = field(
        default=None, metadata={"help": "Pretrained T5 (Hub id or folder); None trains from scratch."}
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "Tokenizer (Hub id or folder); None: the backbone's, or trained on the data."}
    )
    vocab_size: int = field(default=8000, metadata={"help": "Vocabulary of a tokenizer trained on the data."})
    item_template: str | None = field(
        default=None, metadata={"help": "Item template name or format string; default by dataset."}
    )
    summary_generation: str | None = field(
        default=None,
        metadata={
            "help": "Generation settings of the summaries as JSON, e.g. '{\"num_beams\": 4}' (saved with the model)."
        },
    )
    text_embedding_init: bool | None = field(
        default=None,
        metadata={
            "help": "From scratch only: start the token embeddings from an LSA of the training items' text "
            "(`lsa_token_embeddings`: tokens that share items start close) instead of at random. Default (unset): "
            "chosen from the training data (`choose_data_levers`: on for a sparse catalogue, where it is worth +6 "
            "AUC on books), off with a backbone."
        }
        | TRI_STATE_FLAG,
    )
    item_prior: bool = field(
        default=False,
        metadata={
            "help": "Optional, off by default: learn a per-item bias for every item of the training impressions "
            "(zero for items never seen in training). Helps catalogues that repeat; the content model stays the "
            "paper's."
        },
    )

    def __post_init__(self):
        # the model's fields are the config's to check (`ModelArguments`); these are the run's own
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be a positive integer, got {self.vocab_size}")
        if not self.rouge_users >= 0:
            raise ValueError(f"rouge_users must be >= 0, got {self.rouge_users}")
        super().__post_init__()

    def config_overrides(self) -> dict:
        """The `EmbSumConfig` keyword arguments of this run (`ModelArguments`' fields, the summaries' generation)."""
        overrides = super().config_overrides()
        if self.summary_generation is not None:
            try:
                overrides["summary_generation"] = json.loads(self.summary_generation)
            except json.JSONDecodeError as error:
                raise ValueError(f"summary_generation must be a JSON object: {error}") from None
        return overrides


# The levers `embsum train` from scratch chooses from the training data when they are left unset, and the two bars
# of a sparse catalogue, where it turns them on. Popularity ranks the training impressions at least this well when
# their non-clicks are items the users seldom read, as in a log whose negatives were drawn uniformly from the
# catalogue (books 0.77, MovieLens "reads" 0.84; MovieLens ratings 0.66 and the demo's synthetic news 0.50, whose
# non-clicks were rated or shown too); and the training clicks per item of the items table are this few (books 0.93;
# MovieLens "reads" 10.7, where the levers cost 0.8 AUC; the demo's synthetic news 7.1). docs/accuracy-books.md.
# lever -> its value on a sparse catalogue; elsewhere each is the paper's (`PAPER_LEVERS`). The summary warm-up
# (the click objective alone first, λ reached after 300 steps) rescues the slow-starting seed of λ 1 (73.38 -> 78.42
# AUC; books, 3 seeds: 79.28 +- 0.83) and keeps the summaries (ROUGE-L 0.628; λ 0.2, which rescues it too: 0.471).
# Each user's most recent history read as one more click (`history_clicks` 1) lets the content model learn from the
# reads the histories hold (books, 3 seeds: 79.28 +- 0.83 -> 81.86 +- 0.10 AUC, popularity 78.60; 2 or 8 per user:
# no better; every read leaves a teacher summary on one row in six, and the summaries fall). The summary recipe (the
# learned copy mechanism, λ 2, no history boost) writes summaries that read the history (books, 3 seeds: ROUGE-L 0.651
# against 0.627, and AUC 82.31 +- 0.37 against 81.86 +- 0.10; docs/summaries.md); on MovieLens at 150 CPU-s the copy
# does not learn to copy yet and the summaries collapse, so a dense catalogue keeps the paper's boost. With the
# sessions' order for the decoder (the teacher tends to list interests in reading order) the summaries' specificity
# gap rises from 0.114 to 0.169 +- 0.011 and ROUGE-L from 0.655 to 0.710 (books, 3 seeds; docs/summaries.md)
SPARSE_CATALOGUE_LEVERS: dict[str, bool | int | float] = {
    "text_embedding_init": True,
    "in_batch_negatives": True,
    "logq_correction": True,
    "summary_warmup_steps": 300,
    "history_clicks": 1,
    "summary_copy": True,
    "summary_loss_weight": 2.0,
    "summary_history_boost": 0.0,
    "summary_session_positions": True,
}
PAPER_LEVERS: dict[str, bool | int | float] = {
    "text_embedding_init": False,
    **PAPER_TRAINING_LEVERS,
    **PAPER_MODEL_LEVERS,
}
SPARSE_CATALOGUE_POPULARITY_AUC = 0.75
SPARSE_CATALOGUE_CLICKS_PER_ITEM = 2.0
SPARSE_CATALOGUE_SCORED_IMPRESSIONS = 100_000  # a sample enough for the AUC, so the check stays seconds at any size


def clicks_per_item(train: RecommendationData) -> float:
    """Training clicks per item of the items table (counted in Arrow: no row is read into Python)."""
    labels = pc.list_flatten(train.impressions.with_format("arrow")["labels"])
    return (pc.sum(pc.equal(labels, 1)).as_py() or 0) / max(len(train.items), 1)


def read_counts(train: RecommendationData) -> Counter:
    """Reads of each item among the training users: their history items and clicks (counted in Arrow)."""
    table = train.impressions.with_format("arrow")[:]
    candidates, labels = pc.list_flatten(table["candidates"]), pc.list_flatten(table["labels"])
    reads: Counter = Counter()
    for items in (pc.list_flatten(table["history"]), pc.filter(candidates, pc.equal(labels, 1))):
        counted = pc.value_counts(items)
        reads.update(dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist())))
    return reads


def read_popularity_auc(
    train: RecommendationData, max_impressions: int = SPARSE_CATALOGUE_SCORED_IMPRESSIONS
) -> float:
    """
    AUC of popularity on the training impressions themselves (the first `max_impressions` with a click and a
    non-click): each candidate scored by its [`read_counts`], less the impression's own click, so a click is not
    counted for itself.
    """
    reads = read_counts(train)
    scores, kept = [], []
    for row in train.impressions.select_columns(["candidates", "labels"]):
        if 1 in row["labels"] and 0 in row["labels"]:
            scores.append([reads[item] - (label == 1) for item, label in zip(row["candidates"], row["labels"])])
            kept.append(list(row["labels"]))
            if len(kept) == max_impressions:
                break
    return impression_metrics(scores, kept)["auc"] if kept else 0.5


def choose_data_levers(
    args: EmbSumRunArguments, training_args: EmbSumTrainingArguments, train: RecommendationData
) -> dict[str, bool | int | float]:
    """
    Fill in the levers of `SPARSE_CATALOGUE_LEVERS` left unset (None) in `args` / `training_args`: their sparse values
    when the model trains from scratch on a sparse catalogue, `read_popularity_auc(train)` at least
    `SPARSE_CATALOGUE_POPULARITY_AUC` and `clicks_per_item(train)` below `SPARSE_CATALOGUE_CLICKS_PER_ITEM` (the LSA
    start, the catalogue-wide softmax of in-batch negatives with logQ, the summary warm-up, the history clicks, and the
    summary recipe: the copy mechanism, λ 2, no history boost), the paper's (`PAPER_LEVERS`) otherwise. A lever given
    explicitly is kept. Logs the choice and returns every lever's value.
    """

    def value(name: str):
        return getattr(args, name) if hasattr(args, name) else getattr(training_args, name)

    unset = [name for name in SPARSE_CATALOGUE_LEVERS if value(name) is None]
    if unset:
        sparse = False
        reason = "a pretrained backbone: the paper's recipe"
        if args.backbone is None:
            clicks = clicks_per_item(train)
            reason = f"{clicks:.2f} training clicks per item (sparse: < {SPARSE_CATALOGUE_CLICKS_PER_ITEM:g})"
            if clicks < SPARSE_CATALOGUE_CLICKS_PER_ITEM:  # only then is the popularity AUC worth computing
                auc = read_popularity_auc(train)
                sparse = auc >= SPARSE_CATALOGUE_POPULARITY_AUC
                reason += f", popularity ranks the training impressions at AUC {auc:.3f} (sparse: >= "
                reason += f"{SPARSE_CATALOGUE_POPULARITY_AUC})"
            reason += f": {'a sparse catalogue' if sparse else 'the paper recipe'}"
        chosen = SPARSE_CATALOGUE_LEVERS if sparse else PAPER_LEVERS
        for name in unset:
            setattr(args if hasattr(args, name) else training_args, name, chosen[name])
        logger.info("recipe: %s -> %s", reason, ", ".join(f"{name}={chosen[name]}" for name in unset))
    return {name: value(name) for name in SPARSE_CATALOGUE_LEVERS}


def default_item_template(data: RecommendationData) -> str:
    """The source's template (MIND, Goodreads, MovieLens); for other data `Field: {field}; ...` over its columns."""
    source = SOURCES.get(data.domain)
    if source is not None and source.item_template is not None:
        return source.item_template
    fields = [name for name in data.items.column_names if name != "item_id"]
    return "; ".join(f"{name.replace('_', ' ').capitalize()}: {{{name}}}" for name in fields)


def build_model_and_processor(
    args: EmbSumRunArguments, train: RecommendationData, summaries: dict[str, str]
) -> tuple[EmbSumModel, EmbSumProcessor]:
    """EmbSum on the given backbone, or from scratch with a tokenizer trained on the training items and summaries."""
    template = args.item_template or default_item_template(train)
    overrides = args.config_overrides()
    if args.item_prior:
        # every item of the training impressions: candidates, and history items (`item_prior_history_draws` fits
        # the prior on every read)
        seen = {item for candidates in train.impressions["candidates"] for item in candidates}
        seen.update(item for history in train.impressions["history"] for item in history)
        overrides["item_prior_ids"] = sorted(seen)
    if args.backbone is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.backbone)
        start_id = add_item_start_token(tokenizer)
        model = EmbSumModel.from_backbone(
            args.backbone, vocab_size=len(tokenizer), item_start_token_id=start_id, **overrides
        )
    else:
        if (
            args.session_max_items is None
        ):  # from scratch: every history item alone (see FROM_SCRATCH_SESSION_MAX_ITEMS)
            overrides["session_max_items"] = FROM_SCRATCH_SESSION_MAX_ITEMS
        if args.tokenizer is not None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
            add_item_start_token(tokenizer)
        else:
            # the texts exactly as the processor will format them, so template words become whole tokens
            item_format = ITEM_TEMPLATES.get(template, template)
            corpus = (item_format.format(**row) for row in train.items)
            try:
                tokenizer = train_tokenizer([*corpus, *summaries.values()], vocab_size=args.vocab_size)
            except Exception as error:  # the tokenizers library raises a bare Exception, e.g. for a tiny vocabulary
                raise ValueError(f"vocab_size {args.vocab_size}: cannot train the tokenizer ({error})") from None
        config = EmbSumConfig(
            t5_config={"vocab_size": len(tokenizer), "dropout_rate": FROM_SCRATCH_DROPOUT_RATE, **args.t5_overrides()},
            item_start_token_id=tokenizer.convert_tokens_to_ids("<sos>"),
            **overrides,
        )
        model = EmbSumModel(config)
        if args.text_embedding_init:
            processor = EmbSumProcessor(tokenizer, model.config, item_template=template)
            embeddings = model.get_input_embeddings().weight
            vectors, seen = lsa_token_embeddings(
                processor.tokenize_items(train.items.to_list()),
                *embeddings.shape,
                generator=torch.Generator().manual_seed(0),  # the same text, the same start, whatever the seed
            )
            with torch.no_grad():
                embeddings[seen] = vectors[seen].to(embeddings.dtype)
    words = summary_vocabulary(summaries.values()) if summaries else None
    return model, EmbSumProcessor(tokenizer, model.config, item_template=template, summary_words=words)


def summary_vocabulary(summaries: Iterable[str]) -> list[str]:
    """The words of `summaries` (as [`WellFormedSlots`] splits them: lower-cased runs of ASCII letters and digits):
    the words a trained model's summaries keep to (`EmbSumProcessor.summary_words`)."""
    return sorted({word for text in summaries for word in WellFormedSlots.split_words(text.lower())})


def checkpoint_problem(path: str | Path) -> str | None:
    """
    Why `path` is not a checkpoint a run can resume from, or None when it is whole, judged by content: a folder whose
    `trainer_state.json` (written last, and not atomically) parses as a JSON object, whose weights are there, not
    empty and readable, and whose optimizer, scheduler and RNG files (where saved) are not empty.
    """
    path = Path(path)
    if not path.is_dir():
        return "no such checkpoint folder"
    try:
        state = json.loads((path / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {TRAINER_STATE_NAME}"
    except (OSError, ValueError) as error:
        return f"{TRAINER_STATE_NAME} is unreadable ({error})"
    if not isinstance(state, dict) or "global_step" not in state:
        return f"{TRAINER_STATE_NAME} holds no trainer state"
    weights = [path / name for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")]
    if not any(file.is_file() and file.stat().st_size > 0 for file in weights):
        return "no model weights (model.safetensors missing or empty)"
    try:
        check_safetensors(path)
    except OSError as error:  # a truncated or foreign weights file, named
        return str(error)
    for file in [path / "optimizer.pt", path / "scheduler.pt", *path.glob("rng_state*.pth")]:
        if file.exists() and file.stat().st_size == 0:
            return f"{file.name} is empty"
    return None


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """
    The newest `checkpoint-N` in `output_dir` that was fully written (see [`checkpoint_problem`]). The Trainer writes
    `trainer_state.json` last and not atomically, so a crash while saving leaves a newer folder without it or with it
    torn (e.g. 0 bytes); such a folder is skipped, with a warning naming it and why.
    """
    folder = Path(output_dir)
    steps = (
        sorted(
            (int(path.name.split("-")[1]), path)
            for path in folder.glob("checkpoint-*")
            if path.name.split("-")[1].isdigit() and path.is_dir()
        )
        if folder.is_dir()
        else []
    )
    for _, path in reversed(steps):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        logger.warning("skipping torn checkpoint %s: %s", path, problem)
    return None


def _evaluation_batch_sizes(training_args: EmbSumTrainingArguments) -> dict[str, int]:
    return dict(item_batch_size=training_args.eval_item_batch_size, user_batch_size=training_args.eval_user_batch_size)


def build_trainer(
    model: EmbSumModel,
    processor: EmbSumProcessor,
    training_args: EmbSumTrainingArguments,
    splits: Splits,
    summaries: dict[str, str] | None = None,
    **kwargs,
) -> EmbSumTrainer:
    """
    The [`EmbSumTrainer`] of a run: training rows of `splits.train` (teacher `summaries` as targets), dev rows for
    `eval_loss` and an [`ImpressionEvaluator`] over the dev impressions, and a collator over the items of both.
    `kwargs` go to the trainer (e.g. `callbacks`).
    """
    # with in-batch negatives, clicks of impressions without a non-click still get negatives (the batch's)
    keep = training_args.in_batch_negatives and training_args.group_by_impression
    rows = build_training_rows(
        splits.train.impressions,
        summaries=summaries,
        keep_without_negatives=keep or training_args.catalogue_negatives > 0,
    )
    items = splits.train.items
    if training_args.history_clicks:
        more = history_click_rows(
            rows, list(items["item_id"]), per_user=training_args.history_clicks, seed=training_args.seed
        )
        rows = datasets.concatenate_datasets([rows, more])
    eval_rows = evaluator = None
    if splits.dev is not None:
        eval_rows = build_training_rows(splits.dev.impressions, summaries=summaries)
        evaluator = ImpressionEvaluator(splits.dev, processor, **_evaluation_batch_sizes(training_args))
        if splits.dev.items._fingerprint != items._fingerprint:  # MIND: each split has its own news.tsv
            items = datasets.concatenate_datasets([items, splits.dev.items])
    return EmbSumTrainer(
        model,
        training_args,
        train_dataset=rows,
        eval_dataset=eval_rows,
        evaluator=evaluator,
        data_collator=EmbSumDataCollator(
            processor,
            tokenize_item_table(processor, items),
            item_log_q=candidate_log_q(rows) if training_args.logq_correction else None,
        ),
        processing_class=processor,
        **kwargs,
    )


def train_embsum(
    args: EmbSumRunArguments, training_args: EmbSumTrainingArguments, splits: Splits | None = None
) -> dict:
    """
    Load the data (or take `splits` from [`load_splits`]), build the model, train it jointly, keep the best dev
    checkpoint, and save model + processor + `results.json` to `training_args.output_dir`. Resumes from the last
    complete checkpoint there when `training_args.resume_from_checkpoint` is `True` (or from the given path).
    Returns the results written.
    """
    torch.manual_seed(training_args.seed)
    splits = splits or load_splits(args)
    if args.save_splits and training_args.process_index == 0:
        save_splits(splits, training_args.output_dir)
    summaries = load_summaries(args.summaries) if args.summaries else {}
    resume = training_args.resume_from_checkpoint
    resume = None if resume in ("False", "false", False) else resume
    if resume in ("True", "true", True):
        resume = last_complete_checkpoint(training_args.output_dir)
        if resume is None:
            raise ValueError(f"resume_from_checkpoint: no complete checkpoint in {training_args.output_dir}")
    elif resume and (problem := checkpoint_problem(resume)) is not None:
        raise ValueError(f"resume_from_checkpoint {resume}: {problem}")
    levers = choose_data_levers(args, training_args, splits.train)
    if resume:
        # the checkpoint's own tokenizer and config: a tokenizer retrained now need not assign the same ids
        model, processor = EmbSumModel.from_pretrained(resume), EmbSumProcessor.from_pretrained(resume)
    else:
        model, processor = build_model_and_processor(args, splits.train, summaries)
    if training_args.num_negatives is None:
        training_args.num_negatives = get_source(args.dataset).paper_negatives
    trainer = build_trainer(model, processor, training_args, splits, summaries)
    # the card's facts, rendered at every save (a resumed model already holds those of its checkpoint's card)
    card = trainer.model_card_data
    card.dataset_name = args.dataset_name or args.dataset
    card.data_domain = splits.train.domain
    card.teacher = args.teacher
    card.license = args.license
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)
    results: dict = {
        "train_split": splits.train.split,
        "world_size": training_args.world_size,
        "run_args": asdict(args),
        "data_levers": levers,
    }
    fits = [c for c in trainer.callback_handler.callbacks if isinstance(c, ItemPriorFitCallback)]
    fusion = [fit.weight for fit in fits if fit.weight is not None]
    if fusion:  # item_prior_fusion="late": the weight the dev split chose for the prior
        results["item_prior_weight"] = fusion[0]
    reported_metrics = None
    if splits.dev is not None:
        results["dev"] = {"split": splits.dev.split, **trainer.evaluate(metric_key_prefix="dev")}
        reported_metrics = trainer.last_evaluation[1]
    if splits.test is not None:
        evaluator = ImpressionEvaluator(splits.test, processor, **_evaluation_batch_sizes(training_args))
        reported_metrics = evaluator.evaluate(trainer.accelerator.unwrap_model(trainer.model), trainer.accelerator)
        results["test"] = {"split": splits.test.split, **{f"test_{k}": v for k, v in reported_metrics.items()}}
    reported = splits.test or splits.dev
    rouge = None
    if reported is not None and summaries and args.rouge_users > 0 and trainer.is_world_process_zero():
        rouge, examples = summary_rouge(trainer.model, processor, reported, summaries, max_users=args.rouge_users)
        results["summary_rouge"] = {"split": reported.split, **rouge}
        results["summary_examples"] = [dict(zip(("user_id", "generated", "teacher"), e)) for e in examples[:5]]
    if trainer.is_world_process_zero():
        text = json.dumps(results, indent=2, default=str) + "\n"
        atomic_write_text(Path(training_args.output_dir, "results.json"), text)
        # undefined metrics (a gap over one user, distinct-n of empty summaries) are NaN: not for the card
        trainer.create_model_card(
            metrics=reported_metrics,
            dataset_split=reported.split if reported is not None else None,
            summary_rouge={name: value for name, value in rouge.items() if value == value} if rouge else None,
        )
    # the other ranks wait for rank 0's ROUGE pass and files: a rank that exits alone aborts its gloo/NCCL threads
    trainer.accelerator.wait_for_everyone()
    return results


def demo_run_arguments(data_dir: str | Path, **overrides) -> EmbSumRunArguments:
    """
    The tiny from-scratch recipe of `make demo` (d_model 64, 2 + 2 layers, a 2k tokenizer trained on the data) on
    the output of `make_synthetic_mind`: train on `train/`, select on 10% of `dev/`, report on the other 90%.
    Items keep their whole text (category included) within `item_max_tokens`: cut to 24 tokens, the click loss sat
    at chance for hundreds of steps. `summary_mode="start"` keeps evaluation free of generation.
    """
    data_dir = Path(data_dir)
    values = dict(
        dataset="mind",
        train_data=str(data_dir / "train"),
        eval_data=str(data_dir / "dev"),
        paper_split=True,
        summaries=str(data_dir / "summaries.jsonl"),
        teacher="synthetic ground-truth summaries",
        dataset_name="synthetic-MIND (embsum_hf demo)",
        license="apache-2.0",  # data generated by embsum_hf, not MIND's
        vocab_size=2000,
        d_model=64,
        num_layers=2,
        num_heads=4,
        d_ff=256,
        max_history_items=16,
        session_max_tokens=160,
        item_max_tokens=40,  # the synthetic items' full text, category included (about 35 tokens)
        summary_max_tokens=24,
        summary_mode="start",
        rouge_users=50,
    )
    values.update(overrides)
    return EmbSumRunArguments(**values)
