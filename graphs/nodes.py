"""Shared node plumbing: trace every node, and run a registered tool into state updates."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.runtime import Runtime

from medconsult.graphs.context import ConsultContext
from medconsult.graphs.state import ConsultState
from medconsult.records import Gap, ToolRecord
from medconsult.tools.base import MedTool
from medconsult.tools.runner import run_tool
from medconsult.tracing import now_iso

NodeFn = Callable[[ConsultState, Runtime[ConsultContext]], Awaitable[dict[str, Any]]]


def traced(name: str | Callable[[Any], str], fn: NodeFn) -> NodeFn:
    """Wrap a node so each execution writes a "node" line to the trace; `name` may be computed from the node's input
    (a fanned-out call is traced under its own label)."""

    async def node(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
        name_ = name if isinstance(name, str) else name(state)
        start, clock, error = now_iso(), time.perf_counter(), None
        runtime.context.tracer.started("node", name_)
        try:
            return await fn(state, runtime)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            runtime.context.tracer.node(name_, start, time.perf_counter() - clock, error)

    node.__name__ = name.replace(".", "_") if isinstance(name, str) else fn.__name__
    return node


async def call_tool(
    runtime: Runtime[ConsultContext], tool: str | type[MedTool], args: dict[str, Any]
) -> ToolRecord | Gap:
    """Run a tool (by its class, or the registered name a plan carries); a missing tool is a gap, a failing one a
    record with ok=False, and one whose service is down pauses the case (`ServiceOutage`)."""
    context = runtime.context
    tool_name = tool if isinstance(tool, str) else tool.tool_name()
    if tool_name not in context.tools.tools:
        return Gap(what=tool_name, reason="tool not installed or disabled", source=tool_name)
    return await run_tool(
        context.tools.get(tool_name), args, timeout_s=context.settings.tool_timeout_s, tracer=context.tracer,
        pause_on_outages=True,
    )


def tool_updates(outcome: ToolRecord | Gap, missing: str) -> dict[str, Any]:
    """State updates for one tool outcome: the record, and a gap naming what is missing when it failed."""
    if isinstance(outcome, Gap):
        return {"gaps": [Gap(what=missing, reason=outcome.reason, source=outcome.source)]}
    updates: dict[str, Any] = {"tool_records": [outcome]}
    if not outcome.ok:
        updates["gaps"] = [Gap(what=missing, reason=_plain_reason(outcome.error), source=outcome.id)]
    return updates


def _plain_reason(error: str | None) -> str:
    """The FHIR errors' messages already say what happened ("FHIR server unreachable during ..."): drop the class."""
    return re.sub(r"^Fhir\w+: ", "", error or "failed")


def llm_gap(what: str, error: Exception) -> Gap:
    return Gap(what=what, reason=f"LLM step failed ({type(error).__name__}: {str(error)[:300]})", source=what)
