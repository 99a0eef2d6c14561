"""The ReAct baseline as a LangGraph loop, run by the evaluation harness (`medconsult eval --agent react`).

    think -> act -> think -> ... -> think (final answer) -> END

`think` is one schema-constrained step (agents/react_baseline.py): a thought and either a tool call the model chose,
with that tool's arguments, or the final answer. `act` runs the tool (the case's `as_of` is imposed, so later records
stay hidden) and appends what it returned as an observation. After `max_steps` tool calls the schema offers only
the final answer. Nothing else is fixed: no record steps, no calculators run for it, no review inside the loop.
"""

from __future__ import annotations

import json
import operator
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import ValidationError

from medconsult.agents.react_baseline import (
    FINAL,
    ReactAnswer,
    image_aliases,
    observation,
    ordered_tools,
    step_model,
    tool_arguments,
)
from medconsult.cases import Case
from medconsult.config import Settings, StructuredOutputMethod
from medconsult.llm.structured import structured_call
from medconsult.prompts import render
from medconsult.records import ToolRecord
from medconsult.tools.registry import ToolRegistry
from medconsult.tools.runner import run_tool
from medconsult.tracing import Tracer, now_iso

MAX_FAILED_STEPS = 2  # consecutive unusable steps before the agent gives up


class ReactState(TypedDict, total=False):
    case: Case
    messages: Annotated[list[BaseMessage], operator.add]
    records: Annotated[list[ToolRecord], operator.add]
    pending: dict[str, Any] | None  # the tool call chosen by the last step
    tool_steps: int
    failed_steps: int
    answer: ReactAnswer | None
    problem: str | None  # why there is no answer


@dataclass
class ReactContext:
    settings: Settings
    tools: ToolRegistry
    chat_model: BaseChatModel
    structured_output: StructuredOutputMethod
    tracer: Tracer
    max_steps: int


async def think(state: ReactState, runtime: Runtime[ReactContext]) -> dict[str, Any]:
    context = runtime.context
    final_only = state.get("tool_steps", 0) >= context.max_steps
    schema = step_model(list(context.tools.tools.values()), final_only=final_only)
    start, clock = now_iso(), time.perf_counter()
    try:
        step = await structured_call(context.chat_model, schema, state["messages"], method=context.structured_output,
                                     config={"callbacks": [context.tracer.llm_callback("react_step")]})
    except Exception as error:  # noqa: BLE001 - an unusable step or a server error: retried, then a reason
        failed = state.get("failed_steps", 0) + 1
        context.tracer.node("react_step", start, time.perf_counter() - clock, f"{type(error).__name__}: {error}")
        return {"pending": None, "failed_steps": failed, "problem": f"step {failed} failed: {error}"}
    action = step.action
    context.tracer.node("react_step", start, time.perf_counter() - clock, None, action=action.tool,
                        thought=step.thought)
    said = AIMessage(json.dumps(step.model_dump(mode="json")))
    if action.tool == FINAL:
        return {"messages": [said], "answer": action.answer, "pending": None, "problem": None}
    call = {"tool": action.tool, "arguments": action.arguments}
    return {"messages": [said], "pending": call, "failed_steps": 0}


async def act(state: ReactState, runtime: Runtime[ReactContext]) -> dict[str, Any]:
    context = runtime.context
    call = state["pending"]
    tool = context.tools.get(call["tool"])
    record, error = None, None
    try:
        arguments = tool_arguments(tool, call["arguments"], state["case"].as_of, image_aliases(state["case"]))
    except ValidationError as invalid:
        error = f"invalid arguments for {tool.name}: {invalid.errors()[0]['msg']}"
    else:
        record = await run_tool(tool, arguments, timeout_s=context.settings.tool_timeout_s, tracer=context.tracer)
    seen = observation(record, error, context.tools.result_models())
    return {"messages": [HumanMessage(seen)], "records": [record] if record else [], "pending": None,
            "tool_steps": state.get("tool_steps", 0) + 1}


def route_after_think(state: ReactState) -> Literal["act", "think", "__end__"]:
    if state.get("pending"):
        return "act"
    if state.get("answer") is None and 0 < state.get("failed_steps", 0) < MAX_FAILED_STEPS:
        return "think"
    return END


def build_react_graph():
    graph = StateGraph(ReactState, context_schema=ReactContext)
    graph.add_node("think", think)
    graph.add_node("act", act)
    graph.add_edge(START, "think")
    graph.add_conditional_edges("think", route_after_think)
    graph.add_edge("act", "think")
    return graph.compile()


def opening_messages(case: Case, tools: ToolRegistry, max_steps: int) -> list[BaseMessage]:
    """The task as the model reads it: no case id and no file path (either may name the data set it came from),
    the images by their aliases."""
    listed = ordered_tools(list(tools.tools.values()))
    return [
        SystemMessage(render("react.system.md", tools=listed, max_steps=max_steps)),
        HumanMessage(render("react.user.md", patient=case.patient, as_of=case.as_of,
                            synthetic_dates=case.synthetic_dates, images=list(image_aliases(case)),
                            question=case.question or "Differential diagnosis and management.")),
    ]
