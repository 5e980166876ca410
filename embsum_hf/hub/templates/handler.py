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
read, integers beyond 2**53 and non-finite numbers are refused like any other bad field.

Limits (environment variables): EMBSUM_MAX_BATCH_USERS (8), EMBSUM_MAX_HISTORY_ITEMS (1000; the model reads the
latest `max_history_items` of them), EMBSUM_MAX_CANDIDATES (1000), EMBSUM_MAX_FIELD_CHARS (10000), EMBSUM_MAX_ITEM_KEYS
(32), and the total budget of one request, over all its users: EMBSUM_MAX_REQUEST_ITEMS (2000 history and candidate
items) and EMBSUM_MAX_REQUEST_CHARS (200000 characters of text); each a whole number of at least 1, anything else
stops start-up with an error naming the variable. The budget bounds the work of a request: the largest
one it admits takes under 2 s of CPU on the demo-size model (`benchmarks/handler_budget.py`). The file is
self-contained: it needs transformers, torch and the repo's remote code, not embsum_hf.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from transformers import pipeline

# allowed request parameters and their JSON types; integers must be positive
PARAMETERS = {"top_k": int, "return_summary": bool, "return_explanations": bool, "num_explanations": int}
MAX_SAFE_INTEGER = 2**53  # larger JSON integers lose precision in most clients (and 5,000 digits cannot be printed)
JSON_TYPES = {
    dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"
}


class PayloadError(ValueError):
    """An invalid request; the message names the offending field."""


def _json_type(value: Any) -> str:
    return JSON_TYPES.get(type(value), type(value).__name__)


def _key(key: Any) -> str:
    """A payload key as it may appear in an error message: escaped when it is not valid Unicode (a lone surrogate
    would make the error itself unprintable)."""
    try:
        return key.encode("utf-8").decode("utf-8")
    except (AttributeError, UnicodeEncodeError):
        return ascii(key)


class PayloadValidator:
    """
    Checks a request against the item template and the size limits; returns `(inputs, parameters)` for the pipeline
    or raises [`PayloadError`].
    """

    def __init__(
        self,
        item_fields: list[str],
        *,
        max_batch_users: int = 8,
        max_history_items: int = 1000,
        max_candidates: int = 1000,
        max_field_chars: int = 10_000,
        max_item_keys: int = 32,
        max_request_items: int = 2_000,
        max_request_chars: int = 200_000,
    ):
        self.item_fields = list(item_fields)
        self.max_batch_users = max_batch_users
        self.max_history_items = max_history_items
        self.max_candidates = max_candidates
        self.max_field_chars = max_field_chars
        self.max_item_keys = max_item_keys
        self.max_request_items = max_request_items
        self.max_request_chars = max_request_chars

    @classmethod
    def from_env(cls, item_fields: list[str]) -> PayloadValidator:
        """Limits from the `EMBSUM_MAX_*` environment variables where set, else the defaults. A value that is not a
        whole number of at least 1 stops start-up with a `ValueError` naming the variable (a limit of 0 or less would
        refuse every request)."""
        limits = ("max_batch_users", "max_history_items", "max_candidates", "max_field_chars", "max_item_keys",
                  "max_request_items", "max_request_chars")
        values = {}
        for name in limits:
            variable = f"EMBSUM_{name.upper()}"
            if variable not in os.environ:
                continue
            text = os.environ[variable].strip()
            if not (text.isascii() and text.isdigit() and int(text) >= 1):
                raise ValueError(f"{variable} must be a whole number of at least 1, got {os.environ[variable]!r}")
            values[name] = int(text)
        return cls(item_fields, **values)

    def __call__(self, data: Any) -> tuple[dict | list[dict], dict[str, Any]]:
        if not isinstance(data, dict):
            raise PayloadError(f"the payload must be an object, got {_json_type(data)}")
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
            raise PayloadError(f"{where} must be an object with history and candidates, got {_json_type(user)}")
        unknown = sorted(map(_key, set(user) - {"history", "candidates"}))
        if unknown:
            raise PayloadError(f"{where}.{unknown[0]} is not allowed (expected history and candidates)")
        for key, low, high in (("history", 0, self.max_history_items), ("candidates", 1, self.max_candidates)):
            if key not in user:
                raise PayloadError(f"{where}.{key} is required")
            items = user[key]
            if not isinstance(items, list):
                raise PayloadError(f"{where}.{key} must be an array of items, got {_json_type(items)}")
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
            fields = ", ".join(self.item_fields)
            raise PayloadError(f"{where} must be a string or an object with fields {fields}, got {_json_type(item)}")
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
            in_template = key in self.item_fields  # template fields become text; a boolean there is a mistake
            if not isinstance(value, (str, int, float, type(None))) or (in_template and isinstance(value, bool)):
                kinds = "a string, number or null" if in_template else "a string, number, boolean or null"
                raise PayloadError(f"{where}.{key} must be {kinds}, got {_json_type(value)}")
            if isinstance(value, str):
                self._text(value, f"{where}.{key}", budget)
            elif isinstance(value, float) and not math.isfinite(value):
                raise PayloadError(f"{where}.{key} must be a finite number, got {value}")
            elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
                raise PayloadError(f"{where}.{key} is an integer beyond +-2**53")

    def _text(self, text: str, where: str, budget: dict[str, int]) -> None:
        """Per-field length, the request's character budget, and valid Unicode."""
        if len(text) > self.max_field_chars:
            raise PayloadError(f"{where} is longer than {self.max_field_chars} characters ({len(text)})")
        budget["chars"] += len(text)
        if budget["chars"] > self.max_request_chars:
            raise PayloadError(
                f"{where}: the request holds more than {self.max_request_chars} characters of text in all "
                "(the per-request budget)"
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate such as "\ud800": no tokenizer can read it
            raise PayloadError(f"{where} is not valid Unicode ({error.reason} at character {error.start})") from None

    @staticmethod
    def _parameters(parameters: Any) -> dict[str, Any]:
        if parameters is None:
            return {}
        if not isinstance(parameters, dict):
            raise PayloadError(f"parameters must be an object, got {_json_type(parameters)}")
        for name, value in parameters.items():
            if name not in PARAMETERS:
                raise PayloadError(f"parameters.{_key(name)} is not supported (allowed: {', '.join(PARAMETERS)})")
            expected = PARAMETERS[name]
            if expected is int and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SAFE_INTEGER
            ):
                shown = value if not isinstance(value, int) or abs(value) <= MAX_SAFE_INTEGER else "a huge integer"
                raise PayloadError(f"parameters.{name} must be a positive integer, got {shown!r}")
            if expected is bool and not isinstance(value, bool):
                raise PayloadError(f"parameters.{name} must be a boolean, got {_json_type(value)}")
        return dict(parameters)


class EndpointHandler:
    """Serves `{"inputs": ..., "parameters": ...}` requests with the repo's `embsum-recommendation` pipeline."""

    def __init__(self, path: str = ""):
        self.pipeline = pipeline(model=path or ".", trust_remote_code=True)
        self.validator = PayloadValidator.from_env(self.pipeline.processor.item_fields)

    def __call__(self, data: dict[str, Any]) -> dict | list[dict]:
        """Answer a request; an invalid one raises `PayloadError` naming its field (the toolkit answers HTTP 400)."""
        inputs, parameters = self.validator(data)
        return self.pipeline(inputs, **parameters)
