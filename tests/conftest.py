"""Shared tiny fixtures: a real tokenizer trained on synthetic news text, a tiny EmbSum and its processor.

Building them once per session keeps the suite fast on 2 cores (importing T5 alone costs seconds).
"""

from __future__ import annotations

import os
import random
import threading
from socketserver import BaseServer

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from embsum_hf import EmbSumConfig, EmbSumModel, EmbSumProcessor, train_tokenizer  # noqa: E402

TOPICS = {
    "sports": "football match goal league coach striker season final cup stadium",
    "space": "rocket orbit launch nasa moon mars satellite astronaut telescope galaxy",
    "politics": "election vote senate president campaign policy parliament minister law debate",
    "food": "recipe chef dinner pasta bread flavor kitchen restaurant dessert spice",
}


def make_item(index: int, topic: str | None = None) -> dict:
    """A MIND-style news item whose words come from one topic."""
    rng = random.Random(index)
    topic = topic or sorted(TOPICS)[index % len(TOPICS)]
    words = TOPICS[topic].split()
    return {
        "item_id": f"N{index}",
        "title": " ".join(rng.sample(words, 3)),
        "abstract": " ".join(rng.sample(words, 5)),
        "category": topic,
        "subcategory": topic,
    }


def tiny_config(tokenizer, **overrides) -> EmbSumConfig:
    t5 = dict(vocab_size=len(tokenizer), d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2, dropout_rate=0.0)
    t5.update(overrides.pop("t5", {}))
    values = dict(
        t5_config=t5,
        item_start_token_id=tokenizer.convert_tokens_to_ids("<sos>"),
        num_user_codes=4,
        num_item_codes=2,
        max_history_items=12,
        session_max_tokens=40,
        item_max_tokens=16,
        summary_max_tokens=10,
    )
    values.update(overrides)
    return EmbSumConfig(**values)


@pytest.fixture(scope="session")
def tokenizer():
    corpus = []
    for topic, words in TOPICS.items():
        corpus += [f"News Title: {words}; News Abstract: {words}; News Category: {topic}"] * 5
        corpus += [f"The user is interested in {topic} and {words}."] * 5
    return train_tokenizer(corpus, vocab_size=200)


@pytest.fixture(scope="session")
def config(tokenizer) -> EmbSumConfig:
    return tiny_config(tokenizer)


@pytest.fixture(scope="session")
def processor(tokenizer, config) -> EmbSumProcessor:
    return EmbSumProcessor(tokenizer, config, item_template="mind")


@pytest.fixture()
def model(config) -> EmbSumModel:
    torch.manual_seed(0)
    return EmbSumModel(config).eval()


@pytest.fixture(scope="session")
def items() -> list[dict]:
    return [make_item(i) for i in range(40)]


@pytest.fixture
def serve():
    """`serve(server)` runs a real HTTP server (bound to 127.0.0.1) in a thread until the test ends; returns it."""
    servers: list[BaseServer] = []

    def start(server: BaseServer) -> BaseServer:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
