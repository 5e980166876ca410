"""The Inference Endpoints handler's payload checks: every rejected payload gets a message naming its field.

The handler answering real requests from a prepared repo folder, in a fresh process, is in test_push.py.
"""

import importlib.util
import json

import pytest

from embsum_hf.hub.push import TEMPLATES

spec = importlib.util.spec_from_file_location("embsum_endpoint_handler", TEMPLATES / "handler.py")
handler = importlib.util.module_from_spec(spec)
spec.loader.exec_module(handler)

FIELDS = ["title", "abstract", "category"]
ITEM = {"title": "Moon rocket launch", "abstract": "NASA flies again.", "category": "space", "item_id": "N1"}


@pytest.fixture()
def validate(processor):
    assert processor.item_fields == FIELDS  # the conftest's processor: the MIND template
    return handler.PayloadValidator(
        processor, max_batch_users=2, max_history_items=3, max_candidates=4, max_field_chars=50
    )


def test_valid_payloads_pass_through(validate):
    user = {"history": [ITEM, "plain title"], "candidates": [ITEM, {**ITEM, "abstract": None, "year": 2024}]}
    parameters = {"top_k": 2, "return_summary": True, "return_explanations": False, "num_explanations": 1}
    assert validate({"inputs": user, "parameters": parameters}) == (user, parameters)
    assert validate({"inputs": [user, user]}) == ([user, user], {})
    assert validate({"inputs": json.dumps(user)}) == (user, {})  # what the Hub widget sends


def test_limits_come_from_the_environment(monkeypatch, processor):
    monkeypatch.setenv("EMBSUM_MAX_CANDIDATES", "7")
    validator = handler.PayloadValidator.from_env(processor)
    assert validator.max_candidates == 7 and validator.max_history_items == 1000


def user(**overrides):
    return {"history": [ITEM], "candidates": [ITEM], **overrides}


@pytest.mark.parametrize(
    "payload, message",
    [
        ([1, 2], "the payload must be an object, got array"),
        ({"parameters": {}}, "inputs is required"),
        ({"inputs": user(), "options": {}}, "payload.options is not allowed"),
        ({"inputs": "{not json"}, "inputs is a string but not valid JSON"),
        ({"inputs": [user()] * 3}, "inputs must hold 1 to 2 users, got 3"),
        ({"inputs": []}, "inputs must hold 1 to 2 users, got 0"),
        ({"inputs": [user(), 5]}, "inputs[1] must be an object"),
        ({"inputs": {"history": [ITEM]}}, "inputs.candidates is required"),
        ({"inputs": user(extra=1)}, "inputs.extra is not allowed"),
        ({"inputs": user(history={"a": 1})}, "inputs.history must be an array of items, got object"),
        ({"inputs": user(candidates=[])}, "inputs.candidates must hold 1 to 4 items, got 0"),
        ({"inputs": user(candidates=[ITEM] * 5)}, "inputs.candidates must hold 1 to 4 items, got 5"),
        ({"inputs": user(history=[ITEM] * 4)}, "inputs.history must hold 0 to 3 items, got 4"),
        (
            {"inputs": user(candidates=[ITEM, ITEM, ITEM, {**ITEM, "title": ["a"]}])},
            "inputs.candidates[3].title must be a string, number or null, got array",
        ),
        (
            {"inputs": user(candidates=[{**ITEM, "title": True}])},
            "inputs.candidates[0].title must be a string, number or null, got boolean",
        ),
        ({"inputs": user(history=[{"title": "t", "abstract": "a"}])}, "inputs.history[0].category is required"),
        ({"inputs": user(history=[ITEM, 7])}, "inputs.history[1] must be a string or an object"),
        ({"inputs": user(history=["x" * 51])}, "inputs.history[0] is longer than 50 characters (51)"),
        (
            {"inputs": user(candidates=[{**ITEM, "abstract": "y" * 60}])},
            "inputs.candidates[0].abstract is longer than 50",
        ),
        (
            {"inputs": user(candidates=[{**ITEM, "tags": ["a"]}])},
            "inputs.candidates[0].tags must be a string, number, boolean or null",
        ),
        (
            {"inputs": user(candidates=[{**ITEM, **{f"k{i}": i for i in range(40)}}])},
            "inputs.candidates[0] has 44 fields",
        ),
        ({"inputs": [user(), user(history=[{**ITEM, "title": {}}])]}, "inputs[1].history[0].title must be"),
        ({"inputs": user(), "parameters": [1]}, "parameters must be an object, got array"),
        ({"inputs": user(), "parameters": {"topk": 3}}, "parameters.topk is not supported"),
        ({"inputs": user(), "parameters": {"top_k": 0}}, "parameters.top_k must be a positive integer, got 0"),
        ({"inputs": user(), "parameters": {"top_k": True}}, "parameters.top_k must be a positive integer"),
        (
            {"inputs": user(), "parameters": {"return_summary": "yes"}},
            "parameters.return_summary must be a boolean, got string",
        ),
    ],
)
def test_rejections_name_the_field(validate, payload, message):
    with pytest.raises(handler.PayloadError) as error:
        validate(payload)
    assert message in str(error.value)
    assert isinstance(error.value, ValueError)
