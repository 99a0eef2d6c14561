"""Stage subgraphs: every registered tool of a stage, called in parallel, one node run per call.

The consult does not choose which record steps or scores to run: a clinician reads demographics, problems,
medications, allergies, labs and vitals and computes the pneumonia scores for every consult, and a small model must
not be able to skip one. Which tools those are is not fixed here either: the router asks the registry, at run time,
for the tools that declare the stage (tools/base.py `Stage`), so an installed plugin runs like a built-in tool. Each
call is a LangGraph `Send` to the `tools` node: calls run in parallel, each one checkpointed on its own, so a resumed
case does not repeat a call that finished.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send
from typing_extensions import TypedDict

from medconsult.graphs.context import ConsultContext
from medconsult.graphs.nodes import call_tool, tool_updates, traced
from medconsult.graphs.state import BranchOutput, ConsultState
from medconsult.tools.base import ConsultCall, MedTool, Stage, StageInputs


class PlannedCall(TypedDict):
    """What the router sends to the `tools` node: one tool call of the stage."""

    tool: str
    label: str
    args: dict[str, Any]
    missing: str


def stage_calls(
    tools: Iterable[BaseTool], stage: Stage, inputs: list[StageInputs]
) -> list[tuple[MedTool, ConsultCall]]:
    """The calls that the tools declaring `stage` make with each of `inputs` (each image, or the patient once)."""
    staged = [tool for tool in tools if isinstance(tool, MedTool) and tool.stage == stage]
    return [(tool, call) for each in inputs for tool in staged for call in tool.consult_calls(each)]


def plan_calls(context: ConsultContext, stage: Stage, inputs: list[StageInputs], node: str = "tools") -> list[Send]:
    """One `Send` to `node` per call that the registered tools of `stage` make with `inputs`."""
    return [
        Send(node, PlannedCall(tool=tool.name, label=call.label, args=call.args, missing=call.missing))
        for tool, call in stage_calls(context.tools.tools.values(), stage, inputs)
    ]


def patient_inputs(state: ConsultState, context: ConsultContext) -> StageInputs:
    case = state["case"]
    return StageInputs(context.settings, state.get("patient_id"), case.as_of, case.population)


async def run_call(call: PlannedCall, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    return tool_updates(await call_tool(runtime, call["tool"], call["args"]), call["missing"])


def call_node(graph_name: str):  # a node function
    """A node that runs one planned call, traced under the call's own label ("ehr_context.labs")."""
    return traced(lambda call: f"{graph_name}.{call['label']}", run_call)


def build_stage_graph(name: str, stage: Stage) -> CompiledStateGraph:
    """A subgraph that calls every tool of `stage` once for the patient; it hands back only records and gaps."""

    def route(state: ConsultState, runtime: Runtime[ConsultContext]) -> list[Send]:
        if not state.get("patient_id"):
            return []  # intake already recorded why the record is unavailable
        return plan_calls(runtime.context, stage, [patient_inputs(state, runtime.context)])

    return fan_out_graph(name, route)


def fan_out_graph(name: str, route: Callable[..., list[Send]]) -> CompiledStateGraph:
    builder = StateGraph(ConsultState, output_schema=BranchOutput, context_schema=ConsultContext)
    builder.add_node("tools", call_node(name), input_schema=PlannedCall)
    builder.add_conditional_edges(START, route, ["tools"])
    builder.add_edge("tools", END)
    return builder.compile(name=name)
