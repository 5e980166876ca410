"""Try an EmbSum recommender in the browser: a Gradio Space written by `embsum space` (embsum_hf).

Paste a reading history (one item per line, most recent first) or pick an example user, then Recommend: the
catalogue's top items with their scores, the interest summary the model writes, and for a chosen recommendation the
history items and code pairs that carried its score. "Mark as read" adds that item to the history and updates the
user through the incremental update (only the newest session is re-encoded).

Self-contained: it needs gradio, torch, transformers and safetensors, not embsum_hf. The model (its folder here or
its Hub repo) loads with `trust_remote_code`, and the model's own code (its `modeling_embsum.py`) does the arithmetic:
the score (`poly_relevance`), the incremental update (`update_user_state`) and the explanation's shares
(`score_shares`), the same functions embsum_hf.serving runs. The catalogue is an item store (`catalogue/`:
`store.json`, `ids.json`, safetensors shards, plus `items.jsonl` with the item texts) encoded offline, so nothing is
encoded at start-up. Run it locally with `python app.py` (http://127.0.0.1:7860).
"""

from __future__ import annotations

import os

# no analytics, telemetry or update checks: the only network this app uses is its own server (and the Hub, when
# the model is a Hub id that is not cached)
for _name, _value in {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}.items():
    os.environ.setdefault(_name, _value)

import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402  (a gradio dependency; its plots take DataFrames)
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import pipeline  # noqa: E402

logger = logging.getLogger("embsum_space")
HERE = Path(__file__).resolve().parent
SETTINGS = json.loads((HERE / "space_config.json").read_text())
LIMITS = SETTINGS["limits"]  # max_history_lines, max_line_chars, max_k
CHART_PAIRS = 12  # code pairs drawn (K x M can be 64 or more): the heaviest
CODE_NAMES = ("poly_relevance", "score_shares", "update_user_state", "UserState")  # what the app runs of the model
RANKING_COLUMNS = ["rank", "item", "score", "item_id"]


def refuse(message: str) -> gr.Error:
    """A clear message on the page for input the app refuses, logged as one line (no traceback: not a fault)."""
    logger.info("refused: %s", message)
    return gr.Error(message, print_exception=False)


class Catalogue:
    """The item store in `folder` (the layout of embsum_hf's EmbeddingStore) and the item texts beside it."""

    def __init__(self, folder: Path):
        manifest = json.loads((folder / "store.json").read_text())
        if manifest.get("kind") != "items" or not manifest.get("complete"):
            raise ValueError(f"{folder} is not a complete item store")
        self.ids = json.loads((folder / "ids.json").read_text())
        parts: dict[str, list[torch.Tensor]] = {"embeddings": [], "keys": []}
        if "prior" in manifest["shapes"]:  # a model with an item prior: added to every score, as embsum recommend does
            parts["prior"] = []
        for shard in manifest["shards"]:
            with safe_open(str(folder / shard), framework="pt") as handle:
                for name, tensors in parts.items():
                    tensors.append(handle.get_tensor(name).float())
        self.embeddings = torch.cat(parts["embeddings"])  # (N, M, d) CPEs
        self.keys = torch.cat(parts["keys"])  # (N, M, d) gelu(CPE W_s)
        self.prior = torch.cat(parts["prior"])[:, 0] if "prior" in parts else None  # (N,) or None
        items = [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines() if line]
        by_id = {item["item_id"]: item for item in items}
        missing = [item_id for item_id in self.ids if item_id not in by_id]
        if missing:
            raise ValueError(f"{folder}/items.jsonl lacks {len(missing)} stored items, e.g. {missing[:3]}")
        self.items = [by_id[item_id] for item_id in self.ids]
        self.fingerprint = manifest["fingerprint"]

    def __len__(self) -> int:
        return len(self.ids)


class Recommender:
    """The model, its processor and the catalogue; every method works on one user at a time."""

    def __init__(self, folder: Path = HERE):
        source = SETTINGS["model"]
        local = folder / source
        ranker = pipeline(model=str(local) if local.is_dir() else source, trust_remote_code=True)
        self.model, self.processor = ranker.model.eval(), ranker.processor
        self.code = importlib.import_module(type(self.model).__module__)  # the model's modeling_embsum.py
        missing = [name for name in CODE_NAMES if not hasattr(self.code, name)]
        if missing:  # one line at start-up, not a traceback at the first query
            raise SystemExit(
                f"{source}: the model was saved by an older embsum_hf; its code lacks {', '.join(missing)}: save or "
                "push it again with this embsum_hf, or write the Space with the model bundled (`embsum space`)"
            )
        self.catalogue = Catalogue(folder / SETTINGS["catalogue"])
        self.title_field = self.processor.item_fields[0]
        self.rows_by_title: dict[str, list[int]] = {}
        for row, item in enumerate(self.catalogue.items):
            self.rows_by_title.setdefault(self.title(item), []).append(row)

    def title(self, item: dict) -> str:
        return str(item.get(self.title_field) or item.get("item_id", "?"))

    def as_item(self, line: str) -> dict:
        """A history line: the catalogue item with that title, else a new item whose first field is the line (the
        processor's reading of a plain string, as the pipeline's)."""
        rows = self.rows_by_title.get(line)
        if rows:
            return self.catalogue.items[rows[0]]
        return self.processor.as_item(line)

    @torch.no_grad()
    def update(self, user: dict | None, new_items: list[dict]) -> dict:
        """
        Add `new_items` (most recent first) to `user` (None: a new user) and recompute its embeddings, running the
        encoder on the sessions that changed only (the model code's `update_user_state`).
        """
        state = self.code.update_user_state(
            self.model, self.processor, user["state"] if user else self.code.UserState(), new_items
        )
        items = (list(new_items) + (user["items"] if user else []))[: self.model.config.max_history_items]
        return {"items": items, "state": state}

    @torch.no_grad()
    def rank(self, user: dict, k: int) -> tuple[list[int], list[float]]:
        """The top `k` catalogue rows for `user`, never an item of its history (every line, also those older than
        the model's `max_history_items`)."""
        upe = user["state"].user_embeddings[None].float()  # (1, K, d)
        scores = self.code.poly_relevance(upe, self.catalogue.embeddings, self.catalogue.keys)[0]  # (N,)
        if self.catalogue.prior is not None:
            scores = scores + self.catalogue.prior
        seen = [row for line in user["lines"] for row in self.rows_by_title.get(line, [])]
        if seen:
            scores[torch.tensor(seen)] = float("-inf")
        top = scores.topk(min(k, len(scores) - len(set(seen))))
        return top.indices.tolist(), top.values.tolist()

    @torch.no_grad()
    def summary(self, user: dict) -> str:
        batch = self.processor.pad_users([user["state"].sessions])
        return self.model.generate_summary(**batch, processor=self.processor)[0].strip()

    @torch.no_grad()
    def explain(self, user: dict, row: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """
        Shares of the score weight: per history item (and the summary state h_sum) and per user x item code pair
        (the model code's `score_shares`, as in embsum_hf.serving.explain); both tables sum to 1.
        """
        state = user["state"]
        cpe, keys = self.catalogue.embeddings[row], self.catalogue.keys[row]  # (M, d)
        weights, similarity, row_weights = self.code.score_shares(
            state.user_embeddings, state.attention_weights, cpe, keys
        )  # (K, M), (K, M), (n + 1,)
        kept = user["items"][: len(row_weights) - 1][::-1]  # session order: oldest first
        labels = [self.title(item) for item in kept] + ["(your interest summary)"]
        history = pd.DataFrame({"history item": labels, "share": row_weights.tolist()})
        history = history.groupby("history item", as_index=False, sort=False)["share"].sum()  # repeated titles
        pairs = pd.DataFrame(
            [
                {
                    "code pair": f"user {a + 1} x item {m + 1}",
                    "share": float(weights[a, m]),
                    "similarity": float(similarity[a, m]),
                }
                for a in range(weights.shape[0])
                for m in range(weights.shape[1])
            ]
        )
        return history.sort_values("share", ascending=False), pairs.sort_values("share", ascending=False)

    @property
    def num_pairs(self) -> int:
        return self.model.config.num_user_codes * self.model.config.num_item_codes


def parse_history(text: str | None) -> list[str]:
    """History lines, most recent first; an empty or oversized history is a `gr.Error` with a clear message."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        raise refuse("The history is empty: paste the items you read, one per line, or pick an example user.")
    if len(lines) > LIMITS["max_history_lines"]:
        raise refuse(
            f"The history has {len(lines)} lines; the limit is {LIMITS['max_history_lines']} "
            f"(the model reads the latest {RECOMMENDER.model.config.max_history_items} anyway)."
        )
    for number, line in enumerate(lines, start=1):
        if len(line) > LIMITS["max_line_chars"]:
            raise refuse(f"Line {number} has {len(line)} characters; the limit is {LIMITS['max_line_chars']}.")
    return lines


def results(user: dict, k: int, progress: gr.Progress, started: float) -> list:
    """The page's outputs for `user`: status, ranking table, score chart, summary, explanation picker and charts."""
    progress(0.4, desc=f"Ranking {len(RECOMMENDER.catalogue):,} items")
    rows, scores = RECOMMENDER.rank(user, k)
    items = [RECOMMENDER.catalogue.items[row] for row in rows]
    labels = [f"{rank}. {RECOMMENDER.title(item)}" for rank, item in enumerate(items, start=1)]
    columns = [
        range(1, len(items) + 1),
        [RECOMMENDER.title(item) for item in items],
        [round(score, 4) for score in scores],
        [item["item_id"] for item in items],
    ]
    table = pd.DataFrame(dict(zip(RANKING_COLUMNS, columns)))
    # the score axis includes 0, so a small spread between close scores does not look large
    chart = gr.BarPlot(
        value=pd.DataFrame({"item": labels, "score": scores}),
        y_lim=[min(0.0, *scores), max(0.0, *scores)] if scores else None,
    )
    progress(0.6, desc="Writing the interest summary")
    summary = RECOMMENDER.summary(user)
    user = {**user, "rows": rows, "labels": labels}
    history_chart, pairs_chart, why = explanation(user, labels[0] if labels else None)
    elapsed = time.perf_counter() - started
    state = user["state"]
    lines, encoded = len(user["lines"]), state.sessions_encoded
    logger.info("query: %d history items, %d sessions encoded, %.3f s", lines, encoded, elapsed)
    status = (
        f"Ranked {len(RECOMMENDER.catalogue):,} items for a history of {lines} in {elapsed:.2f} s "
        f"({encoded} of {len(state.sessions)} sessions encoded)."
    )
    choice = gr.Dropdown(choices=labels, value=labels[0] if labels else None)
    return [status, table, chart, summary, choice, history_chart, pairs_chart, why, user]


def explanation(user: dict | None, label: str | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str]:
    if not user or label not in user.get("labels", []):
        return None, None, ""
    row = user["rows"][user["labels"].index(label)]
    history, pairs = RECOMMENDER.explain(user, row)
    top = ", ".join(f"{name} ({share:.2f})" for name, share in history.head(3).itertuples(index=False))
    pairs = pairs.head(CHART_PAIRS)
    text = f"**{label}** is recommended because of: {top}."
    if len(pairs) < RECOMMENDER.num_pairs:
        text += (
            f" The chart shows the {len(pairs)} heaviest of {RECOMMENDER.num_pairs} user x item code pairs "
            f"({pairs['share'].sum():.0%} of the score weight)."
        )
    return history, pairs, text


def recommend(history_text: str, k: float, progress=gr.Progress()) -> list:
    started = time.perf_counter()
    lines = parse_history(history_text)
    progress(0.1, desc="Encoding the history")
    user = RECOMMENDER.update(None, [RECOMMENDER.as_item(line) for line in lines])
    user["lines"] = lines
    return results(user, int(k), progress, started)


def mark_as_read(label: str | None, history_text: str, k: float, user: dict | None, progress=gr.Progress()) -> list:
    """Add the chosen recommendation to the top of the history and update the user incrementally."""
    started = time.perf_counter()
    if not user or label not in user.get("labels", []):
        raise refuse("Recommend first, then choose a recommendation to mark as read.")
    item = RECOMMENDER.catalogue.items[user["rows"][user["labels"].index(label)]]
    line = RECOMMENDER.title(item)
    lines = parse_history(history_text)
    if lines != user["lines"]:  # the box was edited since: encode the edited history from scratch
        user = RECOMMENDER.update(None, [RECOMMENDER.as_item(entry) for entry in lines])
    lines = [line, *lines][: LIMITS["max_history_lines"]]  # the oldest line drops out at the limit
    progress(0.1, desc="Updating the user")
    user = RECOMMENDER.update(user, [RECOMMENDER.as_item(line)])
    user["lines"] = lines
    return ["\n".join(lines), *results(user, int(k), progress, started)]


def build_demo() -> gr.Blocks:
    examples = {example["name"]: "\n".join(example["history"]) for example in SETTINGS["examples"]}
    with gr.Blocks(title=SETTINGS["title"], analytics_enabled=False) as demo:
        gr.Markdown(f"# {SETTINGS['title']}\n{SETTINGS['description']}")
        with gr.Row():
            with gr.Column(scale=2):
                example = gr.Dropdown(choices=list(examples), value=None, label="Example users", elem_id="example")
                history = gr.Textbox(
                    lines=8,
                    max_lines=20,
                    label="Reading history: one item per line, most recent first",
                    placeholder="Paste item titles here, one per line",
                    elem_id="history",
                )
                k = gr.Slider(1, LIMITS["max_k"], value=min(10, LIMITS["max_k"]), step=1, label="How many items")
                run = gr.Button("Recommend", variant="primary", elem_id="recommend")
                status = gr.Markdown(elem_id="status")
            with gr.Column(scale=3):
                summary = gr.Textbox(label="What the model thinks you like", interactive=False, elem_id="summary")
                # named columns before the first query (an empty Dataframe would show "1 2 3" as its headers)
                ranking = gr.Dataframe(
                    value=pd.DataFrame(columns=RANKING_COLUMNS),
                    label="Recommendations",
                    interactive=False,
                    wrap=True,
                    column_widths=["10%", "60%", "15%", "15%"],
                    elem_id="ranking",
                )
                scores = gr.BarPlot(
                    x="item",
                    y="score",
                    sort="-y",
                    x_label_angle=-30,
                    y_lim=[0, None],
                    label="Scores (the axis starts at 0)",
                    elem_id="scores-chart",
                )
        with gr.Row():
            with gr.Column():
                choice = gr.Dropdown(choices=[], label="Explain a recommendation", elem_id="choice")
                why = gr.Markdown(elem_id="why")
                read = gr.Button("Mark as read", elem_id="mark-read")
            history_chart = gr.BarPlot(
                x="history item",
                y="share",
                sort="-y",
                x_label_angle=-30,
                y_lim=[0, None],
                label="History items behind the score",
                elem_id="why-history",
            )
            pairs_chart = gr.BarPlot(
                x="code pair",
                y="share",
                sort="-y",
                x_label_angle=-30,
                y_lim=[0, None],
                label="User x item code pairs behind the score",
                elem_id="why-codes",
            )
        user = gr.State(None)
        outputs = [status, ranking, scores, summary, choice, history_chart, pairs_chart, why, user]
        example.change(lambda name: examples.get(name, ""), example, history, api_name=False)
        run.click(recommend, [history, k], outputs, api_name="recommend")
        choice.change(explanation, [user, choice], [history_chart, pairs_chart, why], api_name=False)
        read.click(mark_as_read, [choice, history, k, user], [history, *outputs], api_name="mark_as_read")
    return demo


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
_started = time.perf_counter()
RECOMMENDER = Recommender()
_elapsed = time.perf_counter() - _started
logger.info("start-up: model and %d catalogue items loaded in %.3f s", len(RECOMMENDER.catalogue), _elapsed)
demo = build_demo()

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=1).launch(ssr_mode=False, show_error=True)
