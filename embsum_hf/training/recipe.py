"""The end-to-end recipe behind `embsum train` and `make demo`: data -> tokenizer -> model -> joint training -> card.

`EmbSumRunArguments` holds what is not a `TrainingArguments` field; both dataclasses are filled by
`transformers.HfArgumentParser` from flags or a YAML/JSON file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers.trainer import TRAINER_STATE_NAME

from ..configuration_embsum import EmbSumConfig
from ..data import (
    load_custom,
    load_goodreads,
    load_mind,
    load_movielens,
    load_summaries,
    split_by_time,
    split_dev_test,
)
from ..data.schema import RecommendationData
from ..modeling_embsum import EmbSumModel
from ..processing_embsum import ITEM_TEMPLATES, EmbSumProcessor, add_item_start_token, train_tokenizer
from ..utils import atomic_write_text
from .arguments import EmbSumTrainingArguments
from .evaluation import summary_rouge
from .trainer import EmbSumTrainer

logger = logging.getLogger(__name__)

DATASETS = ("mind", "goodreads", "movielens", "custom")
_ITEMS_FILE = {"goodreads": "books JSON lines", "custom": "items table"}  # what `items_data` names
PAPER_NEGATIVES = {"mind": 4, "goodreads": 2}  # negatives per click in the paper's training


@dataclass
class EmbSumRunArguments:
    """Data, backbone and model-shape choices of a training run (everything that is not a TrainingArguments field)."""

    dataset: str = field(default="mind", metadata={"help": f"Data format: one of {DATASETS}."})
    train_data: str | None = field(
        default=None,
        metadata={
            "help": "MIND: the train split, a folder with news.tsv/behaviors.tsv or an official name "
            "(MINDsmall_train). Goodreads: the interactions file. MovieLens: the ml-100k folder. Custom: the engagement log. "
            "Goodreads, MovieLens and custom data are split by time into train/dev/test (each user's last impression "
            "to test, the one before to dev)."
        },
    )
    eval_data: str | None = field(default=None, metadata={"help": "MIND only: the dev split (folder or name)."})
    paper_split: bool = field(
        default=False,
        metadata={
            "help": "MIND only: split eval_data by impression into 10 percent Dev (model selection) and 90 percent "
            "Test (report)."
        },
    )
    items_data: str | None = field(
        default=None,
        metadata={"help": "Goodreads: the books JSON lines. Custom: the items table (CSV/TSV/JSON lines/parquet)."},
    )
    authors_data: str | None = field(default=None, metadata={"help": "Goodreads: the authors file (optional)."})
    id_column: str = field(default="item_id", metadata={"help": "Custom: the items table's id column."})
    text_columns: str | None = field(
        default=None, metadata={"help": "Custom: comma-separated item text columns (default: all but the id)."}
    )
    user_column: str = field(default="user_id", metadata={"help": "Custom: the log's user column."})
    item_column: str = field(default="item_id", metadata={"help": "Custom: the log's item column."})
    label_column: str | None = field(default="label", metadata={"help": "Custom: the log's 0/1 click column."})
    time_column: str = field(default="timestamp", metadata={"help": "Custom: the log's time column."})
    impression_column: str | None = field(
        default=None, metadata={"help": "Custom: rows sharing this id form one impression (default: same time)."}
    )
    save_splits: bool = field(
        default=False,
        metadata={"help": "Also save the loaded train/dev/test splits to OUTPUT_DIR/data/<split> (any command's --data)."},
    )
    summaries: str | None = field(default=None, metadata={"help": "Teacher summaries, JSON lines {user_id, summary}."})
    teacher: str | None = field(default=None, metadata={"help": "Who wrote the summaries (LLM id or 'heuristic'), for the card."})
    dataset_name: str | None = field(default=None, metadata={"help": "Dataset name for the model card, e.g. MIND-small."})
    rouge_users: int = field(
        default=100,
        metadata={
            "help": "Held-out users whose generated summaries get ROUGE, the constant-sentence baseline, the "
            "specificity gap and the distinct-summary share."
        },
    )
    backbone: str | None = field(default=None, metadata={"help": "Pretrained T5 (Hub id or folder); None trains from scratch."})
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer (Hub id or folder); None: the backbone's, or trained on the data."})
    vocab_size: int = field(default=8000, metadata={"help": "Vocabulary of a tokenizer trained on the data."})
    item_template: str | None = field(default=None, metadata={"help": "Item template name or format string; default by dataset."})
    d_model: int = field(default=512, metadata={"help": "From-scratch backbone width (t5-small: 512)."})
    num_layers: int = field(default=6, metadata={"help": "From-scratch encoder and decoder layers."})
    num_heads: int = field(default=8, metadata={"help": "From-scratch attention heads."})
    d_ff: int = field(default=2048, metadata={"help": "From-scratch feed-forward width."})
    dropout_rate: float = field(default=0.1, metadata={"help": "From-scratch dropout."})
    num_user_codes: int = 16
    num_item_codes: int = 4
    max_history_items: int = 60
    session_max_tokens: int = 512
    item_max_tokens: int = 64
    summary_max_tokens: int = 64
    summary_loss_weight: float = 1.0
    num_negatives: int | None = field(
        default=None, metadata={"help": "Negatives per click; default the paper's: 2 for Goodreads, else 4."}
    )
    summary_mode: str = "generate"
    # the summary path's settings: None keeps EmbSumConfig's default (documented there)
    summary_label_smoothing: float | None = field(
        default=None, metadata={"help": "Label smoothing of the summary loss."}
    )
    summary_prefix_weight: float | None = field(
        default=None, metadata={"help": "Summary-loss weight of the tokens every summary of a batch starts with."}
    )
    summary_memory: str | None = field(
        default=None, metadata={"help": "What the decoder reads: 'sessions' (every token) or 'items' (item starts)."}
    )
    summary_guidance: float | None = field(
        default=None, metadata={"help": "Contrast of generated summaries with the population's (1: none)."}
    )
    summary_generation: str | None = field(
        default=None,
        metadata={"help": 'Summary generation settings as JSON, e.g. \'{"num_beams": 4}\' (saved with the model).'},
    )

    def config_overrides(self) -> dict:
        names = ("num_user_codes", "num_item_codes", "max_history_items", "session_max_tokens", "item_max_tokens",
                 "summary_max_tokens", "summary_loss_weight", "summary_mode")
        negatives = self.num_negatives if self.num_negatives is not None else PAPER_NEGATIVES.get(self.dataset, 4)
        optional = {
            name: getattr(self, name)
            for name in ("summary_label_smoothing", "summary_prefix_weight", "summary_memory", "summary_guidance")
            if getattr(self, name) is not None
        }
        if self.summary_generation is not None:
            try:
                optional["summary_generation"] = json.loads(self.summary_generation)
            except json.JSONDecodeError as error:
                raise ValueError(f"summary_generation must be a JSON object: {error}") from None
        return {**{name: getattr(self, name) for name in names}, "num_negatives": negatives, **optional}


@dataclass
class Splits:
    train: RecommendationData
    dev: RecommendationData | None
    test: RecommendationData | None


def load_splits(args: EmbSumRunArguments) -> Splits:
    """Train / dev (model selection) / test (reported) splits, named in every metric they produce."""
    if args.train_data is None:
        raise ValueError("train_data is required")
    if args.dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {args.dataset!r}")
    if args.dataset == "mind":
        train = load_mind(args.train_data, "train" if Path(args.train_data, "train").is_dir() else None)
        if args.eval_data is None:
            return Splits(train, None, None)
        dev = load_mind(args.eval_data, "dev" if Path(args.eval_data, "dev").is_dir() else None)
        if args.paper_split:
            dev, test = split_dev_test(dev)
            return Splits(train, dev, test)
        return Splits(train, dev, None)
    if args.eval_data is not None or args.paper_split:
        raise ValueError(f"eval_data and paper_split are for MIND; {args.dataset} data is split by time")
    if args.dataset == "movielens":
        return Splits(*split_by_time(load_movielens(args.train_data)))
    if args.items_data is None:
        raise ValueError(f"items_data is required for {args.dataset} (the {_ITEMS_FILE[args.dataset]})")
    if args.dataset == "goodreads":
        data = load_goodreads(args.items_data, args.train_data, authors_path=args.authors_data)
    else:
        data = load_custom(
            args.items_data,
            args.train_data,
            id_column=args.id_column,
            text_columns=args.text_columns.split(",") if args.text_columns else None,
            user_column=args.user_column,
            item_column=args.item_column,
            label_column=args.label_column or None,
            time_column=args.time_column,
            impression_column=args.impression_column,
        )
    return Splits(*split_by_time(data))


def save_splits(splits: Splits, output_dir: str | Path) -> Path:
    """Save each split to `output_dir/data/<train|dev|test>`, where every command's `--data` reads it."""
    folder = Path(output_dir, "data")
    for name, split in (("train", splits.train), ("dev", splits.dev), ("test", splits.test)):
        if split is not None:
            split.save_to_disk(folder / name)
    return folder


def default_item_template(data: RecommendationData) -> str:
    """The domain's template (MIND, Goodreads, MovieLens); for other data `Field: {field}; ...` over its item columns."""
    if data.domain in ITEM_TEMPLATES:
        return data.domain
    fields = [name for name in data.items.column_names if name != "item_id"]
    return "; ".join(f"{name.replace('_', ' ').capitalize()}: {{{name}}}" for name in fields)


def build_model_and_processor(
    args: EmbSumRunArguments, train: RecommendationData, summaries: dict[str, str]
) -> tuple[EmbSumModel, EmbSumProcessor]:
    """EmbSum on the given backbone, or from scratch with a tokenizer trained on the training items and summaries."""
    template = args.item_template or default_item_template(train)
    if args.backbone is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.backbone)
        start_id = add_item_start_token(tokenizer)
        model = EmbSumModel.from_backbone(
            args.backbone, vocab_size=len(tokenizer), item_start_token_id=start_id, **args.config_overrides()
        )
    else:
        if args.tokenizer is not None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
            add_item_start_token(tokenizer)
        else:
            # the texts exactly as the processor will format them, so template words become whole tokens
            item_format = ITEM_TEMPLATES.get(template, template)
            corpus = (item_format.format(**row) for row in train.items)
            tokenizer = train_tokenizer([*corpus, *summaries.values()], vocab_size=args.vocab_size)
        config = EmbSumConfig(
            t5_config=dict(
                vocab_size=len(tokenizer),
                d_model=args.d_model,
                d_kv=args.d_model // args.num_heads,
                num_heads=args.num_heads,
                d_ff=args.d_ff,
                num_layers=args.num_layers,
                dropout_rate=args.dropout_rate,
            ),
            item_start_token_id=tokenizer.convert_tokens_to_ids("<sos>"),
            **args.config_overrides(),
        )
        model = EmbSumModel(config)
    return model, EmbSumProcessor(tokenizer, model.config, item_template=template)


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """
    The newest `checkpoint-N` in `output_dir` that was fully written. The Trainer writes `trainer_state.json` last and
    not atomically, so a crash while saving leaves a newer folder without it, which must not be resumed from.
    """
    folder = Path(output_dir)
    steps = sorted(
        (int(path.name.split("-")[1]), path)
        for path in folder.glob("checkpoint-*")
        if path.name.split("-")[1].isdigit() and path.is_dir()
    ) if folder.is_dir() else []
    complete = [path for _, path in steps if (path / TRAINER_STATE_NAME).is_file()]
    return str(complete[-1]) if complete else None


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
    if resume in ("True", "true", True):
        resume = last_complete_checkpoint(training_args.output_dir)
        if resume is None:
            raise ValueError(f"resume_from_checkpoint: no complete checkpoint in {training_args.output_dir}")
    if resume:
        # the checkpoint's own tokenizer and config: a tokenizer retrained now need not assign the same ids
        model, processor = EmbSumModel.from_pretrained(resume), EmbSumProcessor.from_pretrained(resume)
    else:
        model, processor = build_model_and_processor(args, splits.train, summaries)
    trainer = EmbSumTrainer(model, training_args, processor, train_data=splits.train, eval_data=splits.dev, summaries=summaries)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)
    results: dict = {"train_split": splits.train.split, "world_size": training_args.world_size, "run_args": asdict(args)}
    for name, split in (("dev", splits.dev), ("test", splits.test)):
        if split is not None:
            results[name] = {"split": split.split, **trainer.evaluate(split, metric_key_prefix=name)}
    reported = splits.test or splits.dev
    rouge = None
    if reported is not None and summaries and args.rouge_users > 0 and trainer.is_world_process_zero():
        rouge, examples = summary_rouge(trainer.model, processor, reported, summaries, max_users=args.rouge_users)
        results["summary_rouge"] = {"split": reported.split, **rouge}
        results["summary_examples"] = [dict(zip(("user_id", "generated", "teacher"), e)) for e in examples[:5]]
    if trainer.is_world_process_zero():
        atomic_write_text(Path(training_args.output_dir, "results.json"), json.dumps(results, indent=2, default=str) + "\n")
        trainer.create_model_card(
            dataset_name=args.dataset_name or args.dataset,
            teacher=args.teacher,
            # undefined metrics (a gap over one user, distinct-n of empty summaries) are NaN: not for the card
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
        vocab_size=2000,
        d_model=64,
        num_layers=2,
        num_heads=4,
        d_ff=256,
        dropout_rate=0.0,
        max_history_items=16,
        session_max_tokens=160,
        item_max_tokens=40,  # the synthetic items' full text, category included (about 35 tokens)
        summary_max_tokens=24,
        summary_mode="start",
        rouge_users=50,
    )
    values.update(overrides)
    return EmbSumRunArguments(**values)
