"""`make demo`: EmbSum end to end on the built-in synthetic MIND-format data, in a few minutes on 2 CPU cores.

1. generate the synthetic news/behaviors/summaries (deterministic);
2. train a tiny EmbSum from scratch, with a tokenizer trained on the data, jointly on clicks and summaries,
   selecting the best checkpoint on 10% of the held-out impressions (the paper's Dev) and reporting on the other 90%;
3. print AUC / MRR / nDCG@5 / nDCG@10 beside a random and a popularity baseline, and one user's generated summary
   beside the true one;
4. write `metrics.json` and the trained model folder (model, processor, card) under `--output-dir`;
5. serve from pre-computed embeddings: encode the held-out items and users into stores, rank every stored item for
   that user with their history excluded (no transformer in the ranking path), and explain the top item;
6. write a Gradio Space for the model and that item store (`embsum_hf.hub.write_space`) and print the command that
   starts it in a browser.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from transformers.utils import logging as hf_logging

from embsum_hf import EmbSumModel, EmbSumProcessor
from embsum_hf.data import RecommendationData, make_synthetic_mind, user_histories
from embsum_hf.hub.space import example_users, write_space
from embsum_hf.serving import encode_items, encode_users, explain_recommendation, recommend
from embsum_hf.training import EmbSumTrainingArguments, baseline_scores, impression_metrics
from embsum_hf.training.recipe import FROM_SCRATCH_LEARNING_RATE, demo_run_arguments, load_splits, train_embsum
from embsum_hf.utils import atomic_write_text

METRICS = ("auc", "mrr", "ndcg@5", "ndcg@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="outputs/demo")
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--text-embedding-init", action="store_true", help="start the token embeddings from the items' LSA"
    )
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    hf_logging.set_verbosity_warning()

    output = Path(options.output_dir)
    data_dir = make_synthetic_mind(output / "data", seed=options.seed)
    # unset unless asked: the recipe chooses it from the data (`choose_data_levers`: off on these news)
    run_args = demo_run_arguments(data_dir, text_embedding_init=True if options.text_embedding_init else None)
    training_args = EmbSumTrainingArguments(
        output_dir=str(output / "model"),
        max_steps=options.max_steps,
        per_device_train_batch_size=32,
        learning_rate=FROM_SCRATCH_LEARNING_RATE,
        warmup_steps=20,
        logging_steps=25,
        eval_strategy="steps",
        eval_steps=options.max_steps // 2,
        save_strategy="steps",
        save_steps=options.max_steps // 2,
        save_total_limit=1,
        load_best_model_at_end=True,
        seed=options.seed,
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
    )
    splits = load_splits(run_args)
    results = train_embsum(run_args, training_args, splits)

    # the same held-out impressions, scored by the baselines
    train, test = splits.train, splits.test
    labels = test.impressions["labels"]
    table = {"embsum": {k: results["test"][f"test_{k}"] for k in METRICS}}
    for kind in ("random", "popularity"):
        scores = impression_metrics(baseline_scores(test, train, kind), labels)
        table[kind] = {k: v for k, v in scores.items() if k in METRICS}

    print(
        f"\nHeld-out impressions: {results['test']['split']} ({results['test']['test_num_impressions']} impressions)"
    )
    print(f"{'system':<12}" + "".join(f"{name:>10}" for name in METRICS))
    for system, metrics in table.items():
        print(f"{system:<12}" + "".join(f"{100 * metrics[name]:>10.2f}" for name in METRICS))
    if results.get("summary_examples"):
        example = results["summary_examples"][0]
        print(f"\nUser {example['user_id']}\n  generated: {example['generated']}\n  true:      {example['teacher']}")
        rouge = results["summary_rouge"]
        print(
            f"Summary ROUGE-L over {rouge['num_summaries']} users: {rouge['rougeL']:.3f} "
            f"(one constant sentence: {rouge['constant_rougeL']:.3f}); specificity gap {rouge['specificity_gap']:.3f} "
            f"(about 0: the same summary for everyone); {100 * rouge['distinct_summaries']:.0f}% distinct summaries"
        )

    report = {
        **table["embsum"],
        "split": results["test"]["split"],
        "random": table["random"],
        "popularity": table["popularity"],
        "dev": {k: results["dev"][f"dev_{k}"] for k in METRICS},
        "summary_rouge": results.get("summary_rouge"),
        "summary_example": results.get("summary_examples", [None])[0],
        "model_dir": training_args.output_dir,
    }
    atomic_write_text(output / "metrics.json", json.dumps(report, indent=2) + "\n")
    print(f"\nWrote {output / 'metrics.json'} and the model to {training_args.output_dir}")
    serve(Path(training_args.output_dir), test, output / "stores", report["summary_example"])


def serve(model_dir: Path, data: RecommendationData, stores: Path, example: dict | None) -> None:
    """Step 5: stores written offline, then ranking and an explanation for one user."""
    model, processor = EmbSumModel.from_pretrained(model_dir), EmbSumProcessor.from_pretrained(model_dir)
    histories = dict(user_histories(data))
    items = encode_items(model, processor, data.items, stores / "items", progress=False)
    users = encode_users(model, processor, histories.items(), stores / "users", progress=False)
    user_id = example["user_id"] if example and example["user_id"] in histories else users.ids[0]
    seen = [item["item_id"] for item in histories[user_id]]
    top = recommend(users, items, k=5, user_ids=[user_id], exclude={user_id: seen})
    lookup = data.item_lookup()
    print(f"\nTop 5 of {len(items)} stored items for {user_id} ({len(seen)} seen items excluded), from {stores}:")
    for item_id, score in zip(top.item_ids[0], top.scores[0].tolist()):
        print(f"  {score:8.2f}  [{lookup[item_id]['category']}] {lookup[item_id]['title']}")
    best = top.item_ids[0][0]
    print(explain_recommendation(model, processor, histories[user_id], {"item_id": best, **lookup[best]}).text())

    # step 6: the same model and item store as a Gradio Space (nothing re-encoded)
    space = write_space(
        model,
        processor,
        data.items,
        stores.parent / "space",
        item_store=stores / "items",
        examples=example_users(histories.items(), processor.item_fields[0]),
        title="EmbSum demo: synthetic news",
    )
    print(f"\nWrote a Gradio Space for this model and its {len(items)} items to {space}. Try it in a browser:")
    print(f"  {sys.executable} {space / 'app.py'}")


if __name__ == "__main__":
    main()
