"""NRMS (Wu et al., 2019), small (d 64, 4 heads), trained on EmbSum's training rows, negatives, tokenizer and CPU
budget: word embeddings -> multi-head self-attention -> additive attention = item vector; history item vectors ->
multi-head self-attention -> additive attention = user vector (plus one learned slot, so an empty history has a
vector too, as EmbSum's h_sum does); score = dot product."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import get_constant_schedule_with_warmup, set_seed

from embsum_hf.data import build_training_rows
from embsum_hf.data.schema import RecommendationData
from embsum_hf.processing_embsum import EmbSumProcessor
from embsum_hf.training import TrainingExamples, impression_metrics, tokenize_item_table
from embsum_hf.training.arguments import DEFAULT_NUM_NEGATIVES

from .budget import Optimisation
from .results import Result, cold_metrics


class AdditiveAttention(nn.Module):
    """Softmax-weighted sum of a sequence, weights from `q^T tanh(W x + b)` (padding masked out)."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.score(states).squeeze(-1).masked_fill(~mask, float("-inf"))
        return torch.einsum("nl,nld->nd", logits.softmax(-1), states)


class NRMS(nn.Module):
    def __init__(self, vocab_size: int, pad_token_id: int, dim: int = 64, heads: int = 4, dropout: float = 0.2):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_token_id)
        self.word_attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.word_pool = AdditiveAttention(dim)
        self.item_attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.item_pool = AdditiveAttention(dim)
        self.user_slot = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def encode_items(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N, L) token ids -> (N, d) item vectors."""
        words = self.dropout(self.embed(input_ids))
        words, _ = self.word_attention(words, words, words, key_padding_mask=~mask, need_weights=False)
        return self.word_pool(self.dropout(words), mask)

    def encode_users(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, H, d) history item vectors (H may be 0) -> (B, d) user vectors."""
        history = torch.cat([self.user_slot.expand(len(history), 1, -1), history], dim=1)
        mask = torch.cat([mask.new_ones(len(mask), 1), mask], dim=1)
        history, _ = self.item_attention(history, history, history, key_padding_mask=~mask, need_weights=False)
        return self.item_pool(history, mask)


class ItemTokens:
    """Every item's token ids (the EmbSum processor's, `<sos>` included) as one padded tensor, looked up by item id."""

    def __init__(self, processor: EmbSumProcessor, items):
        token_ids = tokenize_item_table(processor, items)
        self.index = {item: i for i, item in enumerate(token_ids)}
        padded = processor.pad_items(list(token_ids.values()))
        self.input_ids, self.mask = padded["item_input_ids"], padded["item_attention_mask"].bool()

    def encode(self, model: NRMS, item_ids: Sequence[str]) -> torch.Tensor:
        """(N, d) vectors of the given items, padded only to their own longest text."""
        rows = torch.tensor([self.index[item] for item in item_ids], dtype=torch.long)
        mask = self.mask[rows]
        width = int(mask.sum(1).max())
        return model.encode_items(self.input_ids[rows, :width], mask[:, :width])


def nrms_users(model: NRMS, vectors: torch.Tensor, histories: Sequence[Sequence[int]]) -> torch.Tensor:
    """(B, d) user vectors from histories given as rows of `vectors` (item vectors)."""
    length = max([len(history) for history in histories] + [1])
    rows = torch.zeros(len(histories), length, dtype=torch.long)
    mask = torch.zeros(len(histories), length, dtype=torch.bool)
    for b, history in enumerate(histories):
        rows[b, : len(history)] = torch.tensor(history, dtype=torch.long)
        mask[b, : len(history)] = True
    return model.encode_users(vectors[rows], mask)


def nrms_training_scores(model: NRMS, tokens: ItemTokens, batch: Sequence[dict], window: int) -> torch.Tensor:
    """(B, C) scores of a batch of `TrainingExamples` (clicked item first); each distinct item is encoded once."""
    histories = [example["history"][:window] for example in batch]
    unique = sorted(
        {item for example, history in zip(batch, histories) for item in (*history, *example["candidates"])}
    )
    row = {item: r for r, item in enumerate(unique)}
    vectors = tokens.encode(model, unique)
    users = nrms_users(model, vectors, [[row[item] for item in history] for history in histories])
    candidates = torch.tensor([[row[item] for item in example["candidates"]] for example in batch])
    return torch.einsum("bd,bcd->bc", users, vectors[candidates])


@torch.no_grad()
def nrms_test_scores(
    model: NRMS, tokens: ItemTokens, test: RecommendationData, window: int, batch_size: int = 256
) -> list[list[float]]:
    """Scores of every test impression: all items encoded once, users in batches."""
    model.eval()
    item_ids = list(tokens.index)
    vectors = torch.cat(
        [tokens.encode(model, item_ids[i : i + batch_size]) for i in range(0, len(item_ids), batch_size)]
    )
    histories = [[tokens.index[item] for item in history[:window]] for history in test.impressions["history"]]
    users = torch.cat(
        [nrms_users(model, vectors, histories[i : i + batch_size]) for i in range(0, len(histories), batch_size)]
    )
    candidates = test.impressions["candidates"]
    return [(vectors[[tokens.index[item] for item in row]] @ user).tolist() for user, row in zip(users, candidates)]


def train_nrms(
    train: RecommendationData,
    test: RecommendationData,
    processor: EmbSumProcessor,
    optimisation: Optimisation,
    budget_seconds: float,
    seed: int,
    cold_test: RecommendationData | None = None,
) -> Result:
    """Train NRMS on EmbSum's training rows and negatives under the CPU-time budget; score the test impressions (and
    the cold-start test's, when given)."""
    set_seed(seed)
    config = processor.config
    tokens = ItemTokens(processor, train.items)
    model = NRMS(len(processor.tokenizer), processor.pad_token_id)
    examples = TrainingExamples(build_training_rows(train.impressions), num_negatives=DEFAULT_NUM_NEGATIVES, seed=seed)
    loader = torch.utils.data.DataLoader(
        examples,
        batch_size=optimisation.batch_size,
        shuffle=True,
        collate_fn=list,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=optimisation.learning_rate, weight_decay=0.0)
    schedule = get_constant_schedule_with_warmup(optimizer, optimisation.warmup_steps)  # the Trainer's own
    budget = optimisation.budget(budget_seconds)
    model.train()
    budget.start()
    spent, epoch = False, 0
    with tqdm(desc="NRMS training", unit="step") as bar:
        while not spent:
            examples.set_epoch(epoch)
            for batch in loader:
                scores = nrms_training_scores(model, tokens, batch, config.max_history_items)
                loss = nn.functional.cross_entropy(
                    scores, scores.new_zeros(len(batch), dtype=torch.long)
                )  # NCE: click first
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), optimisation.max_grad_norm)
                budget.scale_learning_rate(optimizer)
                optimizer.step()
                schedule.step()
                bar.update()
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}", refresh=False)
                if spent := budget.step():
                    break
            epoch += 1
    scores = nrms_test_scores(model, tokens, test, config.max_history_items)
    result = Result(impression_metrics(scores, test.impressions["labels"], split=test.split), budget)
    if cold_test is not None:
        result.metrics.update(
            cold_metrics(nrms_test_scores(model, tokens, cold_test, config.max_history_items), cold_test)
        )
    return result
