"""EHR-context subgraph: the record steps run in parallel, each one FHIR tool call.

The steps are fixed rather than chosen by the model: a clinician reads demographics, problems, medications,
allergies, labs and vitals for every consult, and a small model must not be able to skip one.
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
class RecordStep:
    name: str
    tool: str
    missing: str  # what the report says is missing when the step fails
    args: Callable[[Settings], dict[str, Any]] = lambda settings: {}


RECORD_STEPS = (
    RecordStep("demographics", "fhir_patient_summary", "demographics"),
    RecordStep("conditions", "fhir_conditions", "active conditions", lambda s: {"status": "active"}),
    RecordStep("medications", "fhir_medications", "current medications", lambda s: {"status": "active"}),
    RecordStep("allergies", "fhir_allergies", "allergies"),
    RecordStep(
        "labs",
        "fhir_observations",
        "laboratory results",
        lambda s: {"category": "laboratory", "limit": s.lab_results_limit},
    ),
    RecordStep(
        "vitals", "fhir_observations", "vital signs", lambda s: {"category": "vital-signs", "limit": 12}
    ),
)


def _record_node(step: RecordStep):  # noqa: ANN202 - a node function
    async def node(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
        patient_id = state.get("patient_id")
        if not patient_id:
            return {}  # intake already recorded why the record is unavailable
        args = {"patient_id": patient_id, **step.args(runtime.context.settings)}
        if state["case"].as_of:
            args["as_of"] = state["case"].as_of.isoformat()
        return tool_updates(await call_tool(runtime, step.tool, args), step.missing)

    return node


def build_ehr_graph():  # noqa: ANN201 - CompiledStateGraph
    builder = StateGraph(ConsultState, output_schema=BranchOutput, context_schema=ConsultContext)
    for step in RECORD_STEPS:
        builder.add_node(step.name, traced(f"ehr.{step.name}", _record_node(step)))
        builder.add_edge(START, step.name)
        builder.add_edge(step.name, END)
    return builder.compile(name="ehr_context")
