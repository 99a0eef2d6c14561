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


class CutOnce:
    """A chat model whose first structured reply is cut at the token limit (the OpenAI client raises), then not."""

    def __init__(self):
        self.calls: list[list] = []

    def with_structured_output(self, schema, **kwargs):
        from langchain_core.runnables import RunnableLambda
        from openai import LengthFinishReasonError
        from openai.types.chat import ChatCompletion

        def answer(messages):
            self.calls.append(messages)
            if len(self.calls) == 1:
                cut = ChatCompletion.model_validate({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                    "choices": [{"index": 0, "finish_reason": "length",
                                 "message": {"role": "assistant", "content": '{"label": "o'}}]})
                raise LengthFinishReasonError(completion=cut)
            return {"parsed": schema(label="ok", score=2), "raw": None, "parsing_error": None}

        return RunnableLambda(answer)


async def test_a_reply_cut_at_the_token_limit_is_asked_for_again_shorter():
    model = CutOnce()
    answer = await structured_call(model, Answer, [HumanMessage("q")], method="json_schema")
    assert answer.score == 2
    assert "cut at the token limit" in model.calls[1][-1].content
