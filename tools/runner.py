"""Running one tool call so that nothing it does can crash the case.

An exception or a timeout becomes a `ToolRecord` with `ok=False` and the error text; the graph carries on and
the report lists what is missing. The one exception, when the caller asks for it: an outage of a service the case
needs (medconsult/outage.py) is traced, then raised, so the consult pauses and resumes later.

Every call gets a stable result id (tool name + hash of its arguments) that evidence in the differential cites, and
a "tool" line in the trace.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from langchain_core.tools import BaseTool

from medconsult.outage import pause_on_outage
from medconsult.records import ToolRecord
from medconsult.tools.base import MedTool
from medconsult.tracing import Tracer


def records_of(records: Iterable[ToolRecord], tool: type[MedTool]) -> list[ToolRecord]:
    """The successful records of `tool`, named by its class, in the order they were made."""
    name = tool.tool_name()
    return [r for r in records if r.tool == name and r.ok and r.result is not None]


def latest_result(records: Iterable[ToolRecord], tool: type[MedTool]) -> dict[str, Any] | None:
    """The result of `tool`'s latest successful call, or None when it has none."""
    found = records_of(records, tool)
    return found[-1].result if found else None


def result_id(tool_name: str, args: dict[str, Any]) -> str:
    canonical = json.dumps(args, sort_keys=True, default=str)
    return f"{tool_name}:{hashlib.sha256(canonical.encode()).hexdigest()[:8]}"


async def run_tool(
    tool: BaseTool,
    args: dict[str, Any],
    *,
    timeout_s: float,
    tracer: Tracer | None = None,
    pause_on_outages: bool = False,
) -> ToolRecord:
    record_id = result_id(tool.name, args)
    timeout_s = getattr(tool, "timeout_s", None) or timeout_s
    started_at = datetime.now(UTC).isoformat()
    clock = time.perf_counter()
    result, error, failure = None, None, None
    if tracer is not None:
        tracer.started("tool", tool.name)
    try:
        result = await asyncio.wait_for(_in_daemon_thread(tool.invoke, args), timeout=timeout_s)
    except TimeoutError:
        error = f"timed out after {timeout_s:.0f} s"
    except Exception as exc:  # noqa: BLE001 - every failure becomes data
        error, failure = f"{type(exc).__name__}: {exc}", exc
    record = ToolRecord(
        id=record_id,
        tool=tool.name,
        args=args,
        ok=error is None,
        result=result if isinstance(result, dict) else ({"value": result} if result is not None else None),
        error=error,
        started_at=started_at,
        duration_s=round(time.perf_counter() - clock, 4),
        stage=str(tool.stage) if getattr(tool, "stage", None) else None,
    )
    if tracer is not None:
        tracer.tool(record)
    if failure is not None and pause_on_outages:
        pause_on_outage(failure, tool.name)
    return record


def _in_daemon_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future:
    """`fn(*args)` in a daemon thread. Tools are synchronous (fhirclient, pydicom), so they run off the event loop;
    not in asyncio's default executor, whose threads the interpreter joins at exit: a call that hangs past its
    timeout would then hang the command after the case has finished."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    context = contextvars.copy_context()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():  # timed out meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def work() -> None:
        try:
            value, error = context.run(fn, *args), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            value, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:  # the loop closed while the call hung: nobody waits for it any more
            pass

    threading.Thread(target=work, name=f"tool-{getattr(fn, '__qualname__', 'call')}", daemon=True).start()
    return future
