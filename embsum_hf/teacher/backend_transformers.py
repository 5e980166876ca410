"""A local teacher: any transformers causal or seq2seq LM, from a Hub id, a folder or a GGUF file."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from .base import TeacherBackend
from .prompts import SummaryRequest, messages_to_text

logger = logging.getLogger(__name__)


class TransformersBackend(TeacherBackend):
    """Summaries generated in-process with `model.generate`.

    Prompts go through the tokenizer's chat template when it has one (instruction-tuned models), else as plain text.
    Causal LMs are batched with left padding so every prompt ends where generation starts; the prompt tokens are cut
    from the output. Greedy decoding by default (no sampling).

    Args:
        model_name_or_path: Hub id or local folder.
        gguf_file: a GGUF file name inside `model_name_or_path` (de-quantized on load; needs the `gguf` package).
        batch_size: prompts per `generate` call.
        max_new_tokens: summary length limit.
        device: e.g. "cpu", "cuda", "cuda:1"; default CUDA when available.
        dtype: torch dtype or its name ("bfloat16", "auto"); default float32.
        generation_kwargs: extra `generate` arguments (e.g. `{"do_sample": True, "temperature": 0.7}`).
        trust_remote_code: passed to `from_pretrained`.
    """

    def __init__(
        self,
        model_name_or_path: str,
        *,
        gguf_file: str | None = None,
        batch_size: int = 4,
        max_new_tokens: int = 256,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        generation_kwargs: dict[str, Any] | None = None,
        trust_remote_code: bool = False,
    ):
        load_kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if gguf_file:
            load_kwargs["gguf_file"] = gguf_file
        config = AutoConfig.from_pretrained(model_name_or_path, **load_kwargs)
        self.is_encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
        self.tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, **load_kwargs)
        model_class = AutoModelForSeq2SeqLM if self.is_encoder_decoder else AutoModelForCausalLM
        if dtype is not None:
            load_kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model_class.from_pretrained(model_name_or_path, config=config, **load_kwargs).to(self.device)
        self.model.eval()
        if not self.is_encoder_decoder:
            self.tokenizer.padding_side = "left"  # generation continues from the last position of every row
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        self.generation_kwargs = {
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "pad_token_id": self.tokenizer.pad_token_id,
            **(generation_kwargs or {}),
        }
        self.name = f"transformers:{model_name_or_path}" + (f":{gguf_file}" if gguf_file else "")
        logger.info("loaded teacher %s on %s (%s)", self.name, self.device, self.model.dtype)

    def render(self, request: SummaryRequest) -> str:
        """The text fed to the model: the chat template applied with a generation prompt, or the plain prompt."""
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        return messages_to_text(request.messages)

    @torch.inference_mode()
    def generate(self, requests: Sequence[SummaryRequest]) -> list[str | Exception]:
        outputs: list[str | Exception] = []
        # a rendered chat template already holds the special tokens the model expects
        add_special_tokens = not self.tokenizer.chat_template
        for start in range(0, len(requests), self.batch_size):
            texts = [self.render(request) for request in requests[start : start + self.batch_size]]
            inputs = self.tokenizer(
                texts,
                return_tensors="pt",
                padding=True,
                add_special_tokens=add_special_tokens,
                return_token_type_ids=False,  # decoder-only models reject them
            ).to(self.device)
            generated = self.model.generate(**inputs, **self.generation_kwargs)  # (b, prompt_len + new) or (b, new)
            if not self.is_encoder_decoder:
                generated = generated[:, inputs["input_ids"].shape[1] :]
            outputs.extend(text.strip() for text in self.tokenizer.batch_decode(generated, skip_special_tokens=True))
        return outputs
