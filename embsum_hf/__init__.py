"""EmbSum for the Hugging Face ecosystem: content-based recommendation with offline user/item poly-embeddings and
LLM-supervised user-interest summaries.

Importing the package registers `EmbSumConfig` / `EmbSumModel` with `AutoConfig` / `AutoModel`.
"""

from transformers import AutoConfig, AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_embsum import EmbSumConfig
from .modeling_embsum import EmbSumModel, EmbSumOutput, EmbSumUserOutput, PolyAttention, poly_relevance
from .pipeline_embsum import EmbSumRecommendationPipeline
from .processing_embsum import ITEM_TEMPLATES, EmbSumProcessor, add_item_start_token, train_tokenizer

__version__ = "0.1.0"

AutoConfig.register(EmbSumConfig.model_type, EmbSumConfig, exist_ok=True)
AutoModel.register(EmbSumConfig, EmbSumModel, exist_ok=True)

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

# saved folders carry auto_map + the flat configuration/modeling files, so they load with trust_remote_code
# in a process that never imports embsum_hf
EmbSumConfig.register_for_auto_class()
EmbSumModel.register_for_auto_class("AutoModel")
EmbSumProcessor.register_for_auto_class("AutoProcessor")

# `pipeline("embsum-recommendation", model=..., processor=...)` in-process; saving the pipeline records it under
# `custom_pipelines` (with AutoModel as its model class) so saved folders load it with trust_remote_code
PIPELINE_REGISTRY.register_pipeline("embsum-recommendation", pipeline_class=EmbSumRecommendationPipeline, pt_model=AutoModel)
