"""Hostile endpoint payloads: each one gets a `PayloadError` naming its field (HTTP 400 from the toolkit) or an
answer from the real pipeline; never another exception (HTTP 500). The pipeline alone refuses bad item values the
same way."""

from __future__ import annotations

import importlib.util
import json

import pytest

from embsum_hf.hub.push import TEMPLATES
from embsum_hf.pipeline_embsum import EmbSumRecommendationPipeline

spec = importlib.util.spec_from_file_location("embsum_endpoint_handler_reliability", TEMPLATES / "handler.py")
handler = importlib.util.module_from_spec(spec)
spec.loader.exec_module(handler)

ITEM = {"title": "Moon rocket launch", "abstract": "NASA flies again.", "category": "space", "subcategory": "s"}


def user(**overrides):
    return {"history": [ITEM], "candidates": [ITEM, "stocks rally"], **overrides}


def nested(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


LIMITS = dict(
    max_batch_users=3,
    max_history_items=20,
    max_candidates=20,
    max_field_chars=200,
    max_item_keys=8,
    max_request_items=40,
    max_request_chars=3000,
)
REFUSED = {  # payload -> the field its error names
    "surrogate-title": ({"inputs": user(candidates=[{**ITEM, "title": "a\ud800b"}])}, "inputs.candidates[0].title"),
    "surrogate-string-item": ({"inputs": user(history=["\udfff"])}, "inputs.history[0]"),
    "surrogate-key": ({"inputs": user(candidates=[{**ITEM, "x\ud800": 1}])}, "inputs.candidates[0] field name"),
    "surrogate-unknown-key": ({"inputs": user(**{"\ud800": 1})}, "inputs.'\\ud800' is not allowed"),
    "surrogate-parameter": ({"inputs": user(), "parameters": {"\udc00": 1}}, "parameters.'\\udc00' is not supported"),
    "surrogate-in-json-string": ({"inputs": json.dumps(user(history=["\ud800"]))}, "inputs.history[0]"),
    "json-string-nested-deep": ({"inputs": "[" * 2500 + "]" * 2500}, "inputs is a string but not readable JSON"),
    "json-string-huge-integer": ({"inputs": '{"history": [], "candidates": [' + "9" * 5000 + "]}"}, "inputs"),
    "json-string-too-long": ({"inputs": " " * 7000}, "inputs is longer"),
    "nested-item-value": (
        {"inputs": user(candidates=[{**ITEM, "title": nested(100_000)}])},
        "inputs.candidates[0].title",
    ),
    "nested-history": ({"inputs": user(history=nested(100_000))}, "inputs.history"),
    "nested-extra-value": (
        {"inputs": user(candidates=[{**ITEM, "meta": nested(50_000)}])},
        "inputs.candidates[0].meta",
    ),
    "huge-integer-title": ({"inputs": user(candidates=[{**ITEM, "title": 10**5000}])}, "inputs.candidates[0].title"),
    "huge-integer-extra": (
        {"inputs": user(candidates=[{**ITEM, "item_id": -(10**30)}])},
        "inputs.candidates[0].item_id",
    ),
    "huge-integer-top-k": ({"inputs": user(), "parameters": {"top_k": 10**5000}}, "parameters.top_k"),
    "nan-field": ({"inputs": user(candidates=[{**ITEM, "title": float("nan")}])}, "inputs.candidates[0].title"),
    "infinite-field": ({"inputs": user(history=[{**ITEM, "abstract": float("-inf")}])}, "inputs.history[0].abstract"),
    "too-many-items-in-all": (
        {"inputs": [user(history=[ITEM] * 15, candidates=[ITEM] * 15)] * 2},
        "inputs[1].history: the request holds more than 40",
    ),
    "too-many-chars-in-all": (
        {"inputs": user(candidates=[{**ITEM, "abstract": "x" * 190}] * 16)},
        "the request holds more than 3000 characters",
    ),
    "field-too-long": ({"inputs": user(candidates=["x" * 201])}, "inputs.candidates[0] is longer than 200"),
    "too-many-users": ({"inputs": [user()] * 4}, "inputs must hold 1 to 3 users"),
    "no-candidates": ({"inputs": user(candidates=[])}, "inputs.candidates must hold 1 to 20"),
    "payload-list": ([user()], "the payload must be an object"),
    "payload-string": ("hello", "the payload must be an object"),
    "payload-none": (None, "the payload must be an object"),
    "inputs-number": ({"inputs": 3}, "inputs must be an object"),
    "inputs-null": ({"inputs": None}, "inputs must be an object"),
    "history-string": ({"inputs": user(history="abc")}, "inputs.history must be an array"),
    "item-boolean": ({"inputs": user(candidates=[True])}, "inputs.candidates[0] must be a string or an object"),
    "item-missing-field": ({"inputs": user(candidates=[{"title": "x"}])}, "inputs.candidates[0].abstract is required"),
    "parameters-string": ({"inputs": user(), "parameters": "top_k=3"}, "parameters must be an object"),
    "parameter-negative": ({"inputs": user(), "parameters": {"num_explanations": -1}}, "parameters.num_explanations"),
    "parameter-float": ({"inputs": user(), "parameters": {"top_k": 2.5}}, "parameters.top_k"),
    "parameter-unknown": (
        {"inputs": user(), "parameters": {"summary_kwargs": {"max_length": 10**9}}},
        "parameters.summary_kwargs",
    ),
}
ANSWERED = {  # accepted payloads the pipeline must answer
    "plain": {"inputs": user()},
    "empty-history": {"inputs": user(history=[])},
    "numbers-and-nulls": {"inputs": user(candidates=[{**ITEM, "title": 5, "abstract": None, "category": 2.5}])},
    "emoji-and-rtl": {"inputs": user(candidates=["🚀 launch", "שלום עולם", "\u0000nul"])},
    "json-string": {"inputs": json.dumps(user())},
    "largest-integer": {"inputs": user(candidates=[{**ITEM, "item_id": 2**53}])},
    "batch-with-everything": {
        "inputs": [user()] * 3,
        "parameters": {"top_k": 1, "return_summary": True, "return_explanations": True},
    },
    "at-the-item-budget": {"inputs": [user(history=[ITEM] * 10, candidates=[ITEM] * 10)] * 2},
}


@pytest.fixture(scope="module")
def endpoint(config, processor):
    import torch

    from embsum_hf import EmbSumModel

    torch.manual_seed(0)
    pipe = EmbSumRecommendationPipeline(model=EmbSumModel(config).eval(), processor=processor, device="cpu")
    validator = handler.PayloadValidator(processor, **LIMITS)

    def answer(payload):  # what EndpointHandler.__call__ does
        inputs, parameters = validator(payload)
        return pipe(inputs, **parameters)

    answer.pipeline = pipe
    return answer


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_with_the_field_named(endpoint, name):
    payload, field = REFUSED[name]
    with pytest.raises(handler.PayloadError) as error:
        endpoint(payload)
    assert field in str(error.value)
    assert "\n" not in str(error.value)
    str(error.value).encode("utf-8")  # the message itself can be sent


@pytest.mark.parametrize("name", sorted(ANSWERED))
def test_answered(endpoint, name):
    answer = endpoint(ANSWERED[name])
    for result in answer if isinstance(answer, list) else [answer]:
        assert result["ranking"] and all(isinstance(entry["score"], float) for entry in result["ranking"])


@pytest.mark.parametrize(
    "candidates, field",
    [
        (["ok", "bad \ud800"], "candidates[1]"),
        ([{**ITEM, "title": 10**5000}], "candidates[0].title"),
        ([{**ITEM, "abstract": float("nan")}], "candidates[0].abstract"),
        ([{**ITEM, "category": ["a"]}], "candidates[0].category"),
    ],
)
def test_pipeline_refuses_bad_item_values_naming_them(endpoint, candidates, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        endpoint.pipeline({"history": [], "candidates": candidates})


@pytest.mark.parametrize(
    "variable, value",
    [
        ("EMBSUM_MAX_CANDIDATES", "abc"),
        ("EMBSUM_MAX_CANDIDATES", "-5"),
        ("EMBSUM_MAX_REQUEST_CHARS", "0"),
        ("EMBSUM_MAX_BATCH_USERS", "2.5"),
        ("EMBSUM_MAX_FIELD_CHARS", ""),
    ],
)
def test_handler_settings_are_refused_at_start_up_naming_the_variable(monkeypatch, processor, variable, value):
    """A limit that is not a whole number >= 1 stops start-up naming the variable, instead of a bare ValueError or
    an endpoint that starts and then refuses every request."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=rf"^{variable} must be a whole number of at least 1, got {value!r}$"):
        handler.PayloadValidator.from_env(processor)


def test_handler_settings_accept_whole_numbers(monkeypatch, processor):
    monkeypatch.setenv("EMBSUM_MAX_CANDIDATES", " 7 ")
    monkeypatch.setenv("EMBSUM_MAX_REQUEST_CHARS", "1")
    validator = handler.PayloadValidator.from_env(processor)
    assert (validator.max_candidates, validator.max_request_chars) == (7, 1)


@pytest.mark.parametrize("value", [["a"], {"b": 1}, True, float("inf"), 10**20, "bad \ud800"], ids=repr)
def test_pipeline_and_endpoint_refuse_a_value_with_one_message(endpoint, value):
    """One rule (the processor's `check_item_value`): the endpoint's message is the pipeline's, under `inputs.`."""
    candidates = [{**ITEM, "title": value}]
    with pytest.raises(ValueError) as from_pipeline:
        endpoint.pipeline({"history": [], "candidates": candidates})
    with pytest.raises(handler.PayloadError) as from_endpoint:
        endpoint({"inputs": user(candidates=candidates)})
    assert str(from_endpoint.value) == f"inputs.{from_pipeline.value}"
    assert str(from_pipeline.value).startswith("candidates[0].title ")
