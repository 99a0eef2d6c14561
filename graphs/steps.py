"""Patient steps: one tool call per node, run in parallel inside a subgraph (the record, the scores).

The steps are fixed rather than chosen by the model: a clinician reads demographics, problems, medications,
allergies, labs and vitals and computes the pneumonia scores for every consult, and a small model must not be able
to skip one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from medconsult.config import Settings
from medconsult.graphs.context import ConsultContext
from medconsult.graphs.nodes import call_tool, tool_updates, traced
from medconsult.graphs.state import BranchOutput, ConsultState


@dataclass(frozen=True)
class PatientStep:
    name: str
    tool: str
    missing: str  # what the report says is missing when the step fails
    args: Callable[[Settings], dict[str, Any]] = lambda settings: {}


def patient_step_node(step: PatientStep):  # noqa: ANN201 - a node function
    async def node(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
        patient_id = state.get("patient_id")
        if not patient_id:
            return {}  # intake already recorded why the record is unavailable
        args = {"patient_id": patient_id, **step.args(runtime.context.settings)}
        if state["case"].as_of:
            args["as_of"] = state["case"].as_of.isoformat()
        return tool_updates(await call_tool(runtime, step.tool, args), step.missing)

    return node


def build_parallel_steps_graph(name: str, steps: tuple[PatientStep, ...]):  # noqa: ANN201 - CompiledStateGraph
    """A subgraph whose steps all start at once; it hands back only tool records and gaps."""
    builder = StateGraph(ConsultState, output_schema=BranchOutput, context_schema=ConsultContext)
    for step in steps:
        builder.add_node(step.name, traced(f"{name}.{step.name}", patient_step_node(step)))
        builder.add_edge(START, step.name)
        builder.add_edge(step.name, END)
    return builder.compile(name=name)
