from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel, Field

from fakes import FakeToolCallingModel
from medconsult.llm.structured import StructuredOutputError, structured_call


class Answer(BaseModel):
    """An answer."""

    label: str = Field(..., max_length=10)
    score: int


async def test_valid_output_is_parsed():
    model = FakeToolCallingModel(script=[{"label": "ok", "score": 3}])
    answer = await structured_call(model, Answer, [HumanMessage("q")], method="function_calling")
    assert answer == Answer(label="ok", score=3)


async def test_invalid_json_is_repaired_once_with_the_error_shown():
    model = FakeToolCallingModel(script=['{"label": "ok", "sco', {"label": "ok", "score": 1}])
    answer = await structured_call(model, Answer, [HumanMessage("q")], method="function_calling")
    assert answer.score == 1
    assert len(model.calls) == 2 and "could not be used" in model.calls[1][-1].content


async def test_schema_violation_counts_as_invalid():
    model = FakeToolCallingModel(script=[{"label": "far too long a label", "score": 1}] * 2)
    with pytest.raises(StructuredOutputError, match="Answer"):
        await structured_call(model, Answer, [HumanMessage("q")], method="function_calling")


async def test_gives_up_after_the_repair_attempt():
    model = FakeToolCallingModel(script=["not json", "still not json"])
    with pytest.raises(StructuredOutputError):
        await structured_call(model, Answer, [HumanMessage("q")], method="function_calling")
    assert len(model.calls) == 2


class Note(BaseModel):
    """A note."""

    text: str


async def test_the_repair_request_echoed_into_the_answer_is_removed():
    """Seen with qwen2.5-1.5b: the repaired plan's rationale ended with our own repair sentence."""
    echoed = "Chest radiograph to confirm. Answer again with one Note object that matches the schema exactly."
    model = FakeToolCallingModel(script=['{"text": ', {"text": echoed}])
    answer = await structured_call(model, Note, [HumanMessage("q")], method="function_calling")
    assert answer.text == "Chest radiograph to confirm."
    untouched = FakeToolCallingModel(script=[{"text": echoed}])  # no repair asked: nothing is ours to remove
    assert (await structured_call(untouched, Note, [HumanMessage("q")], method="function_calling")).text == echoed
