"""Warm start of the optional item prior: each item's bias fitted to the training rows before the first step."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import datasets
import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

PRIOR_WEIGHTS = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # the grid `choose_prior_weight` searches
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
        num_rows,
        len(item_ids),
        loss.item(),
        float(weights[1:].std()),
        float(weights.min()),
        float(weights.max()),
    )
    return weights


def choose_prior_weight(
    content_scores: Sequence[Sequence[float]],
    prior_scores: Sequence[Sequence[float]],
    labels: Sequence[Sequence[int]],
    weights: Sequence[float] = PRIOR_WEIGHTS,
) -> tuple[float, dict[float, float]]:
    """
    Late fusion of a content model and an item prior: the weight `w` of `content + w * prior` with the best AUC on
    the given (dev) impressions, ties going to the smaller weight (0: the prior does not help on this data).

    Args:
        content_scores: the content model's scores, one list per impression (e.g. `ImpressionEvaluator.predict`
            of a model without a prior).
        prior_scores: each candidate's fitted bias (`fit_item_prior`), 0 for items without one; same shape.
        labels: 1 per click, 0 per non-click; same shape.
        weights: the grid searched.

    Returns:
        `(w, {weight: dev AUC})`.
    """
    from .evaluation import impression_metrics

    aucs = {}
    for weight in weights:
        fused = [[c + weight * p for c, p in zip(cs, ps)] for cs, ps in zip(content_scores, prior_scores)]
        aucs[float(weight)] = impression_metrics(fused, labels)["auc"]
    best = max(aucs.values())
    chosen = min(weight for weight, auc in aucs.items() if auc == best)
    logger.info(
        "item prior, late fusion: dev AUC by weight %s -> weight %g",
        {w: round(100 * a, 2) for w, a in aucs.items()},
        chosen,
    )
    return chosen, aucs


class ItemPriorFitCallback(TrainerCallback):
    """
    Fits a model's item prior with [`fit_item_prior`] on the trainer's training rows, in one of two ways
    (`EmbSumTrainingArguments.item_prior_fusion`):

    - `"joint"`: at the start of training, a prior that is still all zeros (a fresh one: not one loaded from a
      checkpoint or a trained model) gets the fit and then trains with the content model.
    - `"late"`: the content model trains alone (the prior stays 0 and frozen); at the end of training the prior is
      fitted and stored scaled by the weight `choose_prior_weight` picks on `evaluator`'s (dev) impressions, so the
      saved model ranks by `content + w * prior` everywhere (0: the prior does not help on this data).
    """

    def __init__(
        self,
        rows: datasets.Dataset | dict,
        prior_std: float = DEFAULT_PRIOR_STD,
        fusion: str = "joint",
        evaluator=None,
    ):
        if fusion not in ("joint", "late"):
            raise ValueError(f"item prior fusion must be 'joint' or 'late', got {fusion!r}")
        if fusion == "late" and evaluator is None:
            raise ValueError("item_prior_fusion='late' chooses the prior's weight on a dev split; there is none")
        self.rows = rows
        self.prior_std = prior_std
        self.fusion = fusion
        self.evaluator = evaluator
        self.weight: float | None = None  # the late fusion's chosen weight

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        prior = getattr(model, "item_prior", None)
        if prior is None or self.fusion == "late" or bool(prior.weight.detach().any()):
            return
        weights = fit_item_prior(self.rows, model.config.item_prior_ids, prior_std=self.prior_std)
        with torch.no_grad():
            prior.weight[:, 0] = weights.to(prior.weight.device, prior.weight.dtype)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        prior = getattr(model, "item_prior", None)
        if prior is None or self.fusion != "late":
            return
        with torch.no_grad():
            prior.weight.zero_()  # the content model alone (a resumed run's model already is)
        weights = fit_item_prior(self.rows, model.config.item_prior_ids, prior_std=self.prior_std)
        predictions = self.evaluator.predict(model)
        candidates = self.evaluator.data.impressions["candidates"]
        prior_scores = [weights[model.item_prior_index(row)].tolist() for row in candidates]
        self.weight, _ = choose_prior_weight(predictions.scores, prior_scores, predictions.labels)
        with torch.no_grad():
            prior.weight[:, 0] = (self.weight * weights).to(prior.weight.device, prior.weight.dtype)
