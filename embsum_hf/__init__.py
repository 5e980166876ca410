"""EmbSum for the Hugging Face ecosystem: content-based recommendation with offline user/item poly-embeddings and
LLM-supervised user-interest summaries.

Importing the package is cheap (no torch, transformers or datasets): the public names load on first use (PEP 562, as
transformers' `_LazyModule` does). Each registration lives with its class: loading the model, config or processor
module registers them with AutoModel / AutoConfig / AutoProcessor, and loading the pipeline module (`from embsum_hf
import EmbSumRecommendationPipeline`, or anything that saves a repo: `embsum_hf.hub`, the Trainer) registers the
`embsum-recommendation` task for `pipeline("embsum-recommendation", model=model, processor=processor)`. A saved
folder or Hub repo needs neither: `pipeline(model=folder, trust_remote_code=True)` finds the task in its config.json.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from .version import __version__  # noqa: F401 (the package version, as `embsum_hf.__version__`)

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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY_NAMES, globals())
