"""The `embsum-recommendation` pipeline: rank candidate items for a user's history, optionally with the user's
interest summary and the history items that weighed most in the user embedding.

Hub-facing file: `save_pretrained` copies it (with its relative imports) next to the weights and records it under
`custom_pipelines` in config.json, so `pipeline(model=folder_or_repo, trust_remote_code=True)` works in a process
that never imports embsum_hf. It therefore imports only torch, transformers and the flat EmbSum files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .processing_embsum import EmbSumProcessor


class EmbSumRecommendationPipeline(Pipeline):
    """
    Ranks candidate items for a user described by the items they engaged with.

    Input: `{"history": [...], "candidates": [...]}`, or a list of such dicts (one model pass per user; each user's
    candidates are encoded together).

    - `history`: the user's items, **most recent first**; only the latest `config.max_history_items` are read. It may
      be empty: the user embedding then rests on the summary state alone.
    - `candidates`: the items to rank, at least one.

    An item is a dict holding the fields of the processor's template (`processor.item_fields`, e.g. `title`,
    `abstract`, `category` for MIND; other keys are echoed back) or a plain string, which becomes the template's
    *first* field (the title for MIND and Goodreads) with the other fields empty. For a model with an item prior
    (`config.item_prior_ids`), a candidate's `item_id` adds its prior to its score, as `embsum recommend` does (a
    candidate without one, or unknown to the prior, gets none).

    Output per user: `{"ranking": [{"index", "score", "item"}, ...]}` sorted by decreasing score, where `index` is
    the candidate's position in the input and `item` the input entry itself. With `return_summary=True` it adds
    `"summary"`, the interest summary the model writes; with `return_explanations=True` it adds `"explanations"`:
    the `num_explanations` history items with the highest user poly-attention weight (averaged over the K user
    codes), each `{"index", "weight", "item"}` with `index` in the input history. The weights of all kept history
    items and of the summary state sum to 1.

    Parameters (to the constructor or to each call):
        top_k (`int`, *optional*): keep only the best `top_k` candidates.
        return_summary (`bool`, defaults to `False`), summary_kwargs (`dict`, *optional*): write the summary, with
            these generation arguments (e.g. `{"num_beams": 4}`).
        return_explanations (`bool`, defaults to `False`), num_explanations (`int`, defaults to 3).
        candidate_batch_size (`int`, defaults to 256): candidates per encoder pass, to bound memory.

    The processor (tokenizer and item template) is loaded from the model's folder or Hub repo unless passed as
    `processor=`. The pipeline does not batch users (`batch_size` must stay 1).
    """

    # the constructor loads the processor (its from_pretrained needs the model's config); `pipeline()` must not try
    _load_tokenizer = False
    _load_processor = False
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False

    def __init__(self, model, processor: EmbSumProcessor | None = None, **kwargs):
        if processor is None:
            if not model.name_or_path:
                raise ValueError("the model was not loaded from a folder or the Hub: pass processor=...")
            processor = EmbSumProcessor.from_pretrained(model.name_or_path, config=model.config)
        super().__init__(model=model, processor=processor, **kwargs)

    def _sanitize_parameters(
        self,
        top_k: int | None = None,
        return_summary: bool | None = None,
        summary_kwargs: dict | None = None,
        return_explanations: bool | None = None,
        num_explanations: int | None = None,
        candidate_batch_size: int | None = None,
    ) -> tuple[dict, dict, dict]:
        counts = {"top_k": top_k, "num_explanations": num_explanations, "candidate_batch_size": candidate_batch_size}
        for name, value in counts.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        forward_params = {
            "return_summary": return_summary,
            "summary_kwargs": summary_kwargs,
            "return_explanations": return_explanations,
            "candidate_batch_size": candidate_batch_size,
        }
        postprocess_params = {"top_k": top_k, "num_explanations": num_explanations}
        return (
            {},
            {name: value for name, value in forward_params.items() if value is not None},
            {name: value for name, value in postprocess_params.items() if value is not None},
        )

    def __call__(self, inputs: Mapping[str, Any] | list[Mapping[str, Any]], **kwargs) -> dict | list[dict]:
        """Rank `inputs["candidates"]` for `inputs["history"]`; a list of such dicts gives a list of results."""
        if (kwargs.get("batch_size") or self._batch_size or 1) != 1:
            raise ValueError(f"{type(self).__name__} runs one user per model pass: batch_size must be 1")
        if isinstance(inputs, list) and not inputs:
            return []
        return super().__call__(inputs, **kwargs)

    def preprocess(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(inputs, Mapping):
            raise ValueError(f'expected {{"history": [...], "candidates": [...]}}, got {type(inputs).__name__}')
        for key in ("history", "candidates"):
            if not isinstance(inputs.get(key), Sequence) or isinstance(inputs[key], str):
                raise ValueError(f"inputs[{key!r}] must be a list of items")
        history, candidates = list(inputs["history"]), list(inputs["candidates"])
        if not candidates:
            raise ValueError("inputs['candidates'] must hold at least one item")
        history_items = [self.processor.as_item(entry, f"history[{i}]") for i, entry in enumerate(history)]
        candidate_items = [self.processor.as_item(entry, f"candidates[{i}]") for i, entry in enumerate(candidates)]
        return {
            **self.processor.encode_users([history_items]),  # session_input_ids / _attention_mask (1, G, L)
            **self.processor.encode_items(candidate_items),  # item_input_ids / _attention_mask (C, Li)
            "history": history,
            "candidates": candidates,
            "candidate_ids": [
                str(entry.get("item_id", "")) if isinstance(entry, Mapping) else "" for entry in candidates
            ],
        }

    def _forward(
        self,
        model_inputs: dict[str, Any],
        return_summary: bool = False,
        summary_kwargs: dict | None = None,
        return_explanations: bool = False,
        candidate_batch_size: int = 256,
    ) -> dict[str, Any]:
        sessions = model_inputs["session_input_ids"], model_inputs["session_attention_mask"]
        user = self.model.encode_user(*sessions, output_details=return_explanations)
        item_ids, item_mask = model_inputs["item_input_ids"], model_inputs["item_attention_mask"]
        starts = range(0, len(item_ids), candidate_batch_size)
        chunks = [(item_ids[i : i + candidate_batch_size], item_mask[i : i + candidate_batch_size]) for i in starts]
        item_embeddings = torch.cat([self.model.encode_item(*chunk) for chunk in chunks])  # (C, M, d)
        scores = self.model.score(user.user_embeddings, item_embeddings)[0]  # (C,)
        if self.model.item_prior is not None:
            rows = self.model.item_prior_index(model_inputs["candidate_ids"])
            scores = scores + self.model.item_prior_scores(rows).to(scores.dtype)
        outputs = {
            "scores": scores,
            "history": model_inputs["history"],
            "candidates": model_inputs["candidates"],
        }
        if return_explanations:
            # mean over the K codes -> (n + 1,): the kept history items in session order (oldest first), then h_sum
            outputs["history_weights"] = user.attention_weights[0].mean(0)[:-1]
        if return_summary:
            summaries = self.model.generate_summary(*sessions, processor=self.processor, **(summary_kwargs or {}))
            outputs["summary"] = summaries[0]
        return outputs

    def postprocess(self, model_outputs: dict[str, Any], top_k: int | None = None, num_explanations: int = 3) -> dict:
        scores, candidates = model_outputs["scores"].float(), model_outputs["candidates"]
        order = torch.argsort(scores, descending=True, stable=True)[:top_k].tolist()
        result: dict[str, Any] = {
            "ranking": [{"index": i, "score": float(scores[i]), "item": candidates[i]} for i in order]
        }
        if "summary" in model_outputs:
            result["summary"] = model_outputs["summary"]
        if "history_weights" in model_outputs:
            result["explanations"] = self._explanations(
                model_outputs["history_weights"].float(), model_outputs["history"], num_explanations
            )
        return result

    def _explanations(self, weights: torch.Tensor, history: list, num_explanations: int) -> list[dict]:
        kept = self.processor.session_item_count(len(history))
        # the processor packs the latest `kept` items oldest first: row j is history[kept - 1 - j]
        top = torch.argsort(weights, descending=True, stable=True)[:num_explanations].tolist()
        return [{"index": kept - 1 - j, "weight": float(weights[j]), "item": history[kept - 1 - j]} for j in top]

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Save model, processor, this pipeline's code and its `custom_pipelines` entry (see the module docstring)."""
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)


# `pipeline("embsum-recommendation", model=..., processor=...)` in the package's process, once this module is loaded
# (`from embsum_hf import EmbSumRecommendationPipeline`; embsum_hf.hub loads it too); saving the pipeline records it
# under `custom_pipelines` (with AutoModel as its model class), which is how a repo's copy of this file is found
if __name__.startswith("embsum_hf."):
    PIPELINE_REGISTRY.register_pipeline(
        "embsum-recommendation", pipeline_class=EmbSumRecommendationPipeline, pt_model=AutoModel
    )

__all__ = ["EmbSumRecommendationPipeline"]
