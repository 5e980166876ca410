"""Inference Endpoints handler for an EmbSum model repo (`embsum_hf.hub.save_repo` copies it to the root).

Request:
    {"inputs": {"history": [item, ...], "candidates": [item, ...]},
     "parameters": {"top_k": 10, "return_summary": false, "return_explanations": false, "num_explanations": 3}}

`inputs` may also be a list of such objects (a batch of users) or a JSON string of either (what the Hub widget
sends). `history` is most recent first. An item is a string (the text of the item template's first field) or an
object holding every template field (string, number or null) plus optional scalar metadata such as `item_id`.

Response: the `embsum-recommendation` pipeline's result, `{"ranking": [{"index", "score", "item"}, ...], ...}`, or a
list of them for a batch. An invalid payload *raises* `PayloadError` (a `ValueError`), whose message names the
offending field (e.g. `inputs.candidates[3].title must be a string, number or null, got array`); the Inference
Endpoints toolkit answers an exception from the handler with HTTP 400 and that message, never 200. Every payload
gets an answer or such an error: text with a lone surrogate (e.g. "\ud800"), a JSON string nested too deeply to
read, integers beyond 2**53 and non-finite numbers are refused like any other bad field. The rule for an item's
values is the processor's own (`check_item_value` in the repo's `processing_embsum.py`), so the pipeline and the
endpoint refuse the same values with the same message.

Limits (environment variables): EMBSUM_MAX_BATCH_USERS (8), EMBSUM_MAX_HISTORY_ITEMS (1000; the model reads the
latest `max_history_items` of them), EMBSUM_MAX_CANDIDATES (1000), EMBSUM_MAX_FIELD_CHARS (10000), EMBSUM_MAX_ITEM_KEYS
(32), and the total budget of one request, over all its users: EMBSUM_MAX_REQUEST_ITEMS (2000 history and candidate
items) and EMBSUM_MAX_REQUEST_CHARS (200000 characters of text); each a whole number of at least 1, anything else
stops start-up with an error naming the variable. The budget bounds the work of a request: the largest
one it admits takes under 2 s of CPU on the demo-size model (`benchmarks/handler_budget.py`). The file is
self-contained: it needs transformers, torch and the repo's remote code, not embsum_hf.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

from transformers import pipeline

# allowed request parameters and their JSON types; integers must be positive
PARAMETERS = {"top_k": int, "return_summary": bool, "return_explanations": bool, "num_explanations": int}


class PayloadError(ValueError):
    """An invalid request; the message names the offending field."""


def _key(key: Any) -> str:
    """A payload key as it may appear in an error message: escaped when it is not valid Unicode (a lone surrogate
    would make the error itself unprintable)."""
    try:
        return key.encode("utf-8").decode("utf-8")
    except (AttributeError, UnicodeEncodeError):
        return ascii(key)


class PayloadValidator:
    """
    Checks a request against the processor's item template and value rules and the size limits; returns `(inputs,
    parameters)` for the pipeline or raises [`PayloadError`].
    """

    def __init__(
        self,
        processor: Any,
        *,
        max_batch_users: int = 8,
        max_history_items: int = 1000,
        max_candidates: int = 1000,
        max_field_chars: int = 10_000,
        max_item_keys: int = 32,
        max_request_items: int = 2_000,
        max_request_chars: int = 200_000,
    ):
        self.item_fields = list(processor.item_fields)
        # the module the processor comes from (the repo's processing_embsum.py): its rule for item values
        self.rules = importlib.import_module(type(processor).__module__)
        self.json_type = self.rules.json_type_name  # `array` for a list, `null` for None
        self.max_batch_users = max_batch_users
        self.max_history_items = max_history_items
        self.max_candidates = max_candidates
        self.max_field_chars = max_field_chars
        self.max_item_keys = max_item_keys
        self.max_request_items = max_request_items
        self.max_request_chars = max_request_chars

    @classmethod
    def from_env(cls, processor: Any) -> PayloadValidator:
        """Limits from the `EMBSUM_MAX_*` environment variables where set, else the defaults. A value that is not a
        whole number of at least 1 stops start-up with a `ValueError` naming the variable (a limit of 0 or less would
        refuse every request)."""
        limits = (
            "max_batch_users",
            "max_history_items",
            "max_candidates",
            "max_field_chars",
            "max_item_keys",
            "max_request_items",
            "max_request_chars",
        )
        values = {}
        for name in limits:
            variable = f"EMBSUM_{name.upper()}"
            if variable not in os.environ:
                continue
            text = os.environ[variable].strip()
            if not (text.isascii() and text.isdigit() and int(text) >= 1):
                raise ValueError(f"{variable} must be a whole number of at least 1, got {os.environ[variable]!r}")
            values[name] = int(text)
        return cls(processor, **values)

    def __call__(self, data: Any) -> tuple[dict | list[dict], dict[str, Any]]:
        if not isinstance(data, dict):
            raise PayloadError(f"the payload must be an object, got {self.json_type(data)}")
        unknown = sorted(map(_key, set(data) - {"inputs", "parameters"}))
        if unknown:
            raise PayloadError(f"payload.{_key(unknown[0])} is not allowed (expected inputs and optional parameters)")
        if "inputs" not in data:
            raise PayloadError("inputs is required")
        budget = {"items": 0, "chars": 0}  # what this request has spent so far (one dict per call: thread-safe)
        inputs = data["inputs"]
        if isinstance(inputs, str):
            if len(inputs) > 2 * self.max_request_chars:  # room for the JSON syntax around the text
                raise PayloadError(f"inputs is longer than {2 * self.max_request_chars} characters ({len(inputs)})")
            try:
                inputs = json.loads(inputs)
            except json.JSONDecodeError as error:
                raise PayloadError(f"inputs is a string but not valid JSON: {error}") from None
            except (ValueError, RecursionError) as error:  # 5,000-digit integers, nesting too deep to read
                raise PayloadError(f"inputs is a string but not readable JSON: {error}") from None
        if isinstance(inputs, list):
            if not 1 <= len(inputs) <= self.max_batch_users:
                raise PayloadError(f"inputs must hold 1 to {self.max_batch_users} users, got {len(inputs)}")
            inputs = [self._user(user, f"inputs[{i}]", budget) for i, user in enumerate(inputs)]
        else:
            inputs = self._user(inputs, "inputs", budget)
        return inputs, self._parameters(data.get("parameters"))

    def _user(self, user: Any, where: str, budget: dict[str, int]) -> dict:
        if not isinstance(user, dict):
            raise PayloadError(f"{where} must be an object with history and candidates, got {self.json_type(user)}")
        unknown = sorted(map(_key, set(user) - {"history", "candidates"}))
        if unknown:
            raise PayloadError(f"{where}.{unknown[0]} is not allowed (expected history and candidates)")
        for key, low, high in (("history", 0, self.max_history_items), ("candidates", 1, self.max_candidates)):
            if key not in user:
                raise PayloadError(f"{where}.{key} is required")
            items = user[key]
            if not isinstance(items, list):
                raise PayloadError(f"{where}.{key} must be an array of items, got {self.json_type(items)}")
            if not low <= len(items) <= high:
                raise PayloadError(f"{where}.{key} must hold {low} to {high} items, got {len(items)}")
            budget["items"] += len(items)
            if budget["items"] > self.max_request_items:
                raise PayloadError(
                    f"{where}.{key}: the request holds more than {self.max_request_items} history and candidate "
                    "items in all (the per-request budget)"
                )
            for i, item in enumerate(items):
                self._item(item, f"{where}.{key}[{i}]", budget)
        return user

    def _item(self, item: Any, where: str, budget: dict[str, int]) -> None:
        if isinstance(item, str):
            self._text(item, where, budget)
            return
        if not isinstance(item, dict):
            fields, kind = ", ".join(self.item_fields), self.json_type(item)
            raise PayloadError(f"{where} must be a string or an object with fields {fields}, got {kind}")
        if len(item) > self.max_item_keys:
            raise PayloadError(f"{where} has {len(item)} fields, more than the limit of {self.max_item_keys}")
        for field in self.item_fields:
            if field not in item:
                raise PayloadError(
                    f"{where}.{field} is required (item template fields: {', '.join(self.item_fields)})"
                )
        for key, value in item.items():
            if not isinstance(key, str):
                raise PayloadError(f"{where} has a field name that is not a string: {key!r}")
            self._text(key, f"{where} field name", budget)
            if isinstance(value, str):
                self._text(value, f"{where}.{key}", budget)
            else:  # template fields become text (a boolean there is a mistake); the others are echoed back
                self._value(value, f"{where}.{key}", metadata=key not in self.item_fields)

    def _value(self, value: Any, where: str, metadata: bool = False) -> None:
        """The processor's rule for an item value (`check_item_value`), refused as a `PayloadError`."""
        try:
            self.rules.check_item_value(value, where, metadata=metadata)
        except ValueError as error:
            raise PayloadError(str(error)) from None

    def _text(self, text: str, where: str, budget: dict[str, int]) -> None:
        """Per-field length, the request's character budget, and the value rule (valid Unicode)."""
        if len(text) > self.max_field_chars:
            raise PayloadError(f"{where} is longer than {self.max_field_chars} characters ({len(text)})")
        budget["chars"] += len(text)
        if budget["chars"] > self.max_request_chars:
            raise PayloadError(
                f"{where}: the request holds more than {self.max_request_chars} characters of text in all "
                "(the per-request budget)"
            )
        self._value(text, where)  # a lone surrogate such as "\ud800": no tokenizer can read it

    def _parameters(self, parameters: Any) -> dict[str, Any]:
        if parameters is None:
            return {}
        if not isinstance(parameters, dict):
            raise PayloadError(f"parameters must be an object, got {self.json_type(parameters)}")
        for name, value in parameters.items():
            if name not in PARAMETERS:
                raise PayloadError(f"parameters.{_key(name)} is not supported (allowed: {', '.join(PARAMETERS)})")
            expected = PARAMETERS[name]
            largest = self.rules.MAX_SAFE_INTEGER
            if expected is int and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= largest
            ):
                shown = value if not isinstance(value, int) or abs(value) <= largest else "a huge integer"
                raise PayloadError(f"parameters.{name} must be a positive integer, got {shown!r}")
            if expected is bool and not isinstance(value, bool):
                raise PayloadError(f"parameters.{name} must be a boolean, got {self.json_type(value)}")
        return dict(parameters)


class EndpointHandler:
    """Serves `{"inputs": ..., "parameters": ...}` requests with the repo's `embsum-recommendation` pipeline."""

    def __init__(self, path: str = ""):
        self.pipeline = pipeline(model=path or ".", trust_remote_code=True)
        self.validator = PayloadValidator.from_env(self.pipeline.processor)

    def __call__(self, data: dict[str, Any]) -> dict | list[dict]:
        """Answer a request; an invalid one raises `PayloadError` naming its field (the toolkit answers HTTP 400)."""
        inputs, parameters = self.validator(data)
        return self.pipeline(inputs, **parameters)
