"""Backend (a) end to end with a real (tiny, random) Llama and a tokenizer trained here, loaded from a folder."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from embsum_hf.teacher import SummaryRequest, SummaryStore, TransformersBackend, summarize_users

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }} <|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "You are a recommendation assistant that describes users' interests.",
    "Here are the news articles a user read most recently, most recent first:",
    "Title: Lakers win the finals; Abstract: The Lakers beat the Heat in six games; Category: sports",
    "Title: Markets rally on rate cut; Abstract: Stocks rose after the central bank cut rates; Category: finance",
    "Summarize the user's interests in exactly three sentences.",
    "The user likes sports and finance news about basketball, markets and the economy.",
]
USERS = [
    ("U1", [{"title": "Lakers win the finals", "abstract": "The Lakers beat the Heat", "category": "sports"}]),
    ("U2", [{"title": "Markets rally on rate cut", "abstract": "Stocks rose", "category": "finance"}] * 3),
    ("U3", [{"title": "Lakers win", "category": "sports"}, {"title": "Markets rally", "category": "finance"}]),
]


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_llm")
    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=specials))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_generates_and_fills_store(tiny_llm, tmp_path):
    backend = TransformersBackend(str(tiny_llm), batch_size=2, max_new_tokens=6, device="cpu")
    assert backend.tokenizer.padding_side == "left"
    assert backend.name == f"transformers:{tiny_llm}"
    rendered = backend.render(SummaryRequest.build(*USERS[0], "news"))
    assert rendered.startswith("<|system|> You are a recommendation assistant")
    assert rendered.endswith("<|assistant|>")

    with SummaryStore(tmp_path / "summaries.jsonl") as store:
        stats = summarize_users(USERS, backend, store, domain="mind", batch_size=3, progress=False)
        assert (stats.done, stats.skipped, stats.failed) == (3, 0, 0)
        summaries = store.as_dict()
        assert set(summaries) == {"U1", "U2", "U3"}
        assert all(record.backend == backend.name for record in store)
        # the prompt was cut off: the output holds generated words only, not the prompt's
        assert all("Summarize" not in summary and "<|assistant|>" not in summary for summary in summaries.values())

    # left padding: the batched output equals generating each prompt alone (greedy)
    requests = [SummaryRequest.build(user_id, history, "news") for user_id, history in USERS]
    alone = [backend.generate([request])[0] for request in requests]
    assert backend.generate(requests) == alone == [summaries[user_id] for user_id, _ in USERS]
