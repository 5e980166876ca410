"""EmbSum for the Hugging Face ecosystem: content-based recommendation with offline user/item poly-embeddings and
LLM-supervised user-interest summaries.

Importing the package is cheap (no torch, transformers or datasets): the public names load on first use (PEP 562, as
transformers' `_LazyModule` does). Loading the model, config or processor module registers them with AutoConfig /
AutoModel / AutoProcessor; the `embsum-recommendation` pipeline task is registered as soon as `transformers.pipelines`
is imported (e.g. by `from transformers import pipeline`) or `EmbSumRecommendationPipeline` is used.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY_NAMES = {
    "EmbSumConfig": "configuration_embsum",
    "EmbSumModel": "modeling_embsum",
    "EmbSumOutput": "modeling_embsum",
    "EmbSumUserOutput": "modeling_embsum",
    "PolyAttention": "modeling_embsum",
    "poly_relevance": "modeling_embsum",
    "EmbSumProcessor": "processing_embsum",
    "ITEM_TEMPLATES": "processing_embsum",
    "add_item_start_token": "processing_embsum",
    "train_tokenizer": "training.tokenizer",
    "EmbSumRecommendationPipeline": "pipeline_embsum",
}

__all__ = [
    "EmbSumConfig",
    "EmbSumModel",
    "EmbSumOutput",
    "EmbSumUserOutput",
    "EmbSumProcessor",
    "EmbSumRecommendationPipeline",
    "ITEM_TEMPLATES",
    "PolyAttention",
    "add_item_start_token",
    "poly_relevance",
    "train_tokenizer",
]

if TYPE_CHECKING:
    from .configuration_embsum import EmbSumConfig
    from .modeling_embsum import EmbSumModel, EmbSumOutput, EmbSumUserOutput, PolyAttention, poly_relevance
    from .pipeline_embsum import EmbSumRecommendationPipeline
    from .processing_embsum import ITEM_TEMPLATES, EmbSumProcessor, add_item_start_token
    from .training.tokenizer import train_tokenizer


def __getattr__(name: str) -> Any:
    if name not in _LAZY_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    globals()[name] = value  # the next access skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY_NAMES])


class _RegisterPipelineTask(importlib.abc.MetaPathFinder):
    """Imports `embsum_hf.pipeline_embsum` (which registers the task) right after `transformers.pipelines` loads."""

    def find_spec(self, name, path, target=None):
        if name != "transformers.pipelines":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            importlib.import_module(f"{__name__}.pipeline_embsum")

        spec.loader.exec_module = exec_and_register
        return spec


if "transformers.pipelines" in sys.modules:
    importlib.import_module(f"{__name__}.pipeline_embsum")
elif not any(isinstance(finder, _RegisterPipelineTask) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterPipelineTask())
