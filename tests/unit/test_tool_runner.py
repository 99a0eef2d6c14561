from __future__ import annotations

from fakes import EchoTool
from medconsult.config import Settings
from medconsult.tools.base import ToolContext
from medconsult.tools.runner import result_id, run_tool
from medconsult.tracing import Tracer


def _tool() -> EchoTool:
    return EchoTool(context=ToolContext(Settings()))


async def test_success_is_a_typed_record_and_a_trace_line():
    tracer = Tracer()
    record = await run_tool(_tool(), {"text": "hi"}, timeout_s=5, tracer=tracer)
    assert record.ok and record.result == {"summary": "echo hi", "text": "hi"}
    assert record.id == result_id("echo", {"text": "hi"}) == tracer.events[0]["result_id"]
    assert tracer.events[0]["kind"] == "tool" and tracer.events[0]["error"] is None


async def test_exceptions_become_errors_not_crashes():
    record = await run_tool(_tool(), {"text": "boom"}, timeout_s=5)
    assert not record.ok and "planned failure" in record.error and record.result is None


async def test_invalid_arguments_become_errors():
    record = await run_tool(_tool(), {"text": "x" * 80}, timeout_s=5)
    assert not record.ok and "ValidationError" in record.error


async def test_timeouts_become_errors():
    record = await run_tool(_tool(), {"text": "slow"}, timeout_s=0.2)
    assert not record.ok and record.error.startswith("timed out")
    assert record.duration_s < 2


def test_result_ids_are_stable_and_depend_on_arguments():
    assert result_id("t", {"a": 1, "b": 2}) == result_id("t", {"b": 2, "a": 1})
    assert result_id("t", {"a": 1}) != result_id("t", {"a": 2})
