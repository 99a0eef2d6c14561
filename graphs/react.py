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
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import ValidationError

from medconsult.agents.deterministic.safety_review import safety_context
from medconsult.agents.evidence import build_facts
from medconsult.agents.react_baseline import (
    FINAL,
    ReactAnswer,
    check_answer,
    image_aliases,
    observation,
    ordered_tools,
    render_answer,
    review_answer,
    step_model,
    tool_arguments,
)
from medconsult.cases import Case
from medconsult.config import Settings, StructuredOutputMethod
from medconsult.llm.chat_model import structured_output_method
from medconsult.llm.structured import structured_call
from medconsult.prompts import render
from medconsult.records import ToolRecord
from medconsult.tools.base import ToolContext
from medconsult.tools.calculators.egfr_ckd_epi_2021 import EgfrCkdEpi2021Tool
from medconsult.tools.fhir.allergies import AllergiesTool
from medconsult.tools.fhir.conditions import ConditionsTool
from medconsult.tools.fhir.find_patient import FindPatientTool
from medconsult.tools.fhir.medications import MedicationsTool
from medconsult.tools.fhir.patient_summary import PatientSummaryTool
from medconsult.tools.registry import ToolRegistry, discover_tools
from medconsult.tools.runner import records_of, run_tool
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


async def run_react(case: Case, settings: Settings, services: Any, out_dir: Path) -> dict[str, Any]:
    """One case through the ReAct loop; writes report.md and trace.jsonl in `out_dir` and returns what the
    scorers read. The grounding check and the safety review are run afterwards on its answer, as measurements:
    the agent never sees them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "trace.jsonl").unlink(missing_ok=True)
    tracer = Tracer(out_dir / "trace.jsonl")
    tools = discover_tools(ToolContext(settings, services.fhir_base_url, work_dir=out_dir))
    context = ReactContext(settings, tools, services.chat_model, structured_output_method(settings), tracer,
                           settings.react_max_steps)
    state = await build_react_graph().ainvoke(
        {"case": case, "messages": opening_messages(case, tools, settings.react_max_steps)},
        context=context,
        config={"recursion_limit": 4 * settings.react_max_steps + 10},
    )
    answer: ReactAnswer | None = state.get("answer")
    (out_dir / "report.md").write_text(render_answer(case.id, answer, state.get("problem")))
    return await _measurements(case, answer, state.get("records", []), tools, settings, state.get("problem"))


async def _measurements(case: Case, answer: ReactAnswer | None, records: list[ToolRecord], tools: ToolRegistry,
                        settings: Settings, problem: str | None) -> dict[str, Any]:
    """The consult graph's result fields, for the same scorers (`tool_records` for the harness's own checks)."""
    calls = [{"tool": r.tool, "args": r.args, "ok": r.ok} for r in records]
    patient = _resolved_patient(records)
    facts = build_facts(records, tools.result_models())
    seen = [{"kind": f.kind, "text": f.text} for f in facts]
    ran = {"trajectory": calls, "patient_id": patient, "tool_records": records, "seen": seen}
    if answer is None:
        gap = {"what": "answer", "reason": problem or "no final answer"}
        return {"differential": None, "plan": None, "safety_findings": [], "first_draft_findings": [],
                "grounding": None, "gaps": [gap], **ran}
    findings = review_answer(answer, safety_context(await _record_for_review(case, patient, tools, settings)))
    dumped = [f.model_dump(mode="json") for f in findings]
    return {
        "differential": {"summary": answer.summary, "diagnoses": [d.model_dump() for d in answer.diagnoses]},
        "plan": {"actions": [a.model_dump() for a in answer.plan]},
        "safety_findings": dumped,
        "first_draft_findings": dumped,  # no review in the loop: the draft is what goes out
        "grounding": check_answer(answer, facts).model_dump(mode="json"),
        "gaps": [],
        **ran,
    }


REVIEW_INPUTS = (AllergiesTool, MedicationsTool, ConditionsTool, PatientSummaryTool, EgfrCkdEpi2021Tool)


def _resolved_patient(records: list[ToolRecord]) -> str | None:
    """The patient id the agent found (one unambiguous match)."""
    found = [r.result["matches"] for r in records_of(records, FindPatientTool)]
    resource = next((matches[0]["resource"] for matches in found if len(matches) == 1), None)
    return resource.removeprefix("Patient/") if resource else None


async def _record_for_review(case: Case, patient: str | None, tools: ToolRegistry,
                             settings: Settings) -> list[ToolRecord]:
    """The record the safety review needs, read by the harness (untraced, so not the agent's cost) with the
    patient id the agent resolved; without one the review reports the record as unavailable."""
    if patient is None:
        return []
    args = {"patient_id": patient} | ({"as_of": case.as_of.isoformat()} if case.as_of else {})
    installed = [found for tool in REVIEW_INPUTS if (found := tool.named(tools.tools)) is not None]
    return [await run_tool(tool, args, timeout_s=settings.tool_timeout_s) for tool in installed]
