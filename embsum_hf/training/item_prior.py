"""Warm start of the optional item prior: each item's bias fitted to the training rows before the first step."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import datasets
import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

DEFAULT_PRIOR_STD = 1.0  # the Gaussian prior of each bias (in logits): items seen a few times stay near 0
MAX_POOL = 64  # non-clicks per row the fit reads (the first ones): bounds memory on impressions of hundreds


def fit_item_prior(
    rows: datasets.Dataset,
    item_ids: Sequence[str],
    *,
    prior_std: float = DEFAULT_PRIOR_STD,
    max_iter: int = 100,
) -> torch.Tensor:
    """
    The MAP per-item bias under the click loss alone: for every training row (`positive`, `negative_pool`),
    `-log softmax` of the click's bias among the click's and its non-clicks' biases, summed over rows, plus a
    Gaussian prior `b ~ N(0, prior_std^2)` on each bias. Solved with L-BFGS in a few seconds (no transformer).

    This is what a learned item bias converges to when nothing else scores the items, so starting the model's
    `item_prior` there lets the content model learn the rest from the first step instead of first learning which
    items are liked. Items of `item_ids` never seen in `rows` get 0, as do items without one (row 0).

    Args:
        rows: training rows of `build_training_rows` (`positive` str, `negative_pool` list of str).
        item_ids: the prior's items in row order (`EmbSumConfig.item_prior_ids`): output row `i + 1` is `item_ids[i]`.

    Returns:
        `(len(item_ids) + 1,)` float tensor; row 0 (items without a prior) is 0.
    """
    if prior_std <= 0:
        raise ValueError(f"prior_std must be > 0, got {prior_std}")
    index = {item: row for row, item in enumerate(item_ids, start=1)}
    positives = torch.tensor([index.get(item, 0) for item in rows["positive"]], dtype=torch.long)
    pools = [[index.get(item, 0) for item in pool[:MAX_POOL]] for pool in rows["negative_pool"]]
    width = max((len(pool) for pool in pools), default=0)
    weights = torch.zeros(len(item_ids) + 1)
    if not len(positives) or not width:
        logger.warning("item prior: no training row has a non-clicked item to learn from; the prior stays 0")
        return weights
    negatives = torch.zeros(len(pools), width, dtype=torch.long)
    present = torch.zeros(len(pools), width, dtype=torch.bool)
    for r, pool in enumerate(pools):
        negatives[r, : len(pool)] = torch.tensor(pool, dtype=torch.long)
        present[r, : len(pool)] = True
    has_negative = present.any(1)
    positives, negatives, present = positives[has_negative], negatives[has_negative], present[has_negative]

    bias = torch.zeros(len(item_ids), requires_grad=True)
    optimizer = torch.optim.LBFGS([bias], max_iter=max_iter, line_search_fn="strong_wolfe")
    num_rows = len(positives)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        full = torch.cat([bias.new_zeros(1), bias])  # row 0 stays 0
        click = full[positives]  # (R,)
        others = full[negatives].masked_fill(~present, float("-inf"))  # (R, W)
        lse = torch.logsumexp(torch.cat([click[:, None], others], dim=1), dim=1)
        loss = (lse - click).sum() / num_rows + 0.5 * bias.square().sum() / (prior_std**2 * num_rows)
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    weights[1:] = bias.detach()
    logger.info(
        "item prior fitted on %d rows (%d items): loss %.4f, bias std %.3f, range [%.2f, %.2f]",
        num_rows, len(item_ids), loss.item(), float(weights[1:].std()), float(weights.min()), float(weights.max()),
    )  # fmt: skip
    return weights


class ItemPriorFitCallback(TrainerCallback):
    """
    At the start of training, fits a model's item prior that is still all zeros (a fresh one: not one loaded from a
    checkpoint or a trained model) with [`fit_item_prior`] on the trainer's training rows.
    """

    def __init__(self, rows: datasets.Dataset, prior_std: float = DEFAULT_PRIOR_STD):
        self.rows = rows
        self.prior_std = prior_std

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        prior = getattr(model, "item_prior", None)
        if prior is None or bool(prior.weight.detach().any()):
            return
        weights = fit_item_prior(self.rows, model.config.item_prior_ids, prior_std=self.prior_std)
        with torch.no_grad():
            prior.weight[:, 0] = weights.to(prior.weight.device, prior.weight.dtype)
