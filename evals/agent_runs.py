"""The agents under evaluation and the one output model both hand the scorers.

`consult` is the consult graph with automatic sign-off; `react` is the ReAct baseline (graphs/react.py), whose
answer is checked afterwards, as a measurement the agent never sees: the grounding check against what its tools
returned, and the safety review against the record the harness reads with the patient id the agent resolved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from medconsult.agents.deterministic.safety_review import safety_context
from medconsult.agents.evidence import build_facts
from medconsult.agents.react_baseline import ReactAnswer, check_answer, render_answer, review_answer
from medconsult.cases import Case, CaseFile
from medconsult.config import Settings
from medconsult.evals.calculator_check import tool_results
from medconsult.graphs.react import ReactContext, build_react_graph, opening_messages
from medconsult.llm.chat_model import structured_output_method
from medconsult.records import Fact, Gap, ToolRecord
from medconsult.runner import Services, run_consult
from medconsult.signoff import auto_approve
from medconsult.tools.base import ToolContext
from medconsult.tools.calculators.egfr_ckd_epi_2021 import EgfrCkdEpi2021Tool
from medconsult.tools.fhir.allergies import AllergiesTool
from medconsult.tools.fhir.conditions import ConditionsTool
from medconsult.tools.fhir.find_patient import FindPatientTool
from medconsult.tools.fhir.medications import MedicationsTool
from medconsult.tools.fhir.patient_summary import PatientSummaryTool
from medconsult.tools.registry import ToolRegistry, discover_tools
from medconsult.tools.runner import records_of, run_tool
from medconsult.tracing import Tracer

# What the safety review of an answer reads from the record.
REVIEW_INPUTS = (AllergiesTool, MedicationsTool, ConditionsTool, PatientSummaryTool, EgfrCkdEpi2021Tool)


class AgentOutput(BaseModel):
    """What an agent hands the scorers, in plain JSON, whichever agent it is."""

    differential: dict[str, Any] | None = None  # summary and ranked diagnoses
    plan: dict[str, Any] | None = None  # actions (and, for the consult graph, the chosen regimen)
    safety_findings: list[dict[str, Any]] = Field(default_factory=list)  # on the plan that goes out
    first_draft_findings: list[dict[str, Any]] = Field(default_factory=list)  # on the first draft
    grounding: dict[str, Any] | None = None  # the grounding check of the narrative
    gaps: list[dict[str, Any]] = Field(default_factory=list)
    patient_id: str | None = None  # the patient the agent resolved
    calculators: dict[str, dict[str, Any]] = Field(default_factory=dict)  # calculator results, by tool name
    trajectory: list[dict[str, Any]] = Field(default_factory=list)  # every tool call: tool, args, ok
    seen: list[dict[str, str]] = Field(default_factory=list)  # what the model was shown: kind and text


def seen_statements(facts: list[Fact], gaps: list[Gap]) -> list[dict[str, str]]:
    """What the model was shown: each fact's kind and text, and each gap (the record block's MISSING lines)."""
    return [{"kind": f.kind, "text": f.text} for f in facts] + [
        {"kind": "gap", "text": f"{g.what}: {g.reason}"} for g in gaps
    ]


def _trajectory(records: list[ToolRecord]) -> list[dict[str, Any]]:
    return [{"tool": r.tool, "args": r.args, "ok": r.ok} for r in records]


def consult_output(state: dict[str, Any]) -> AgentOutput:
    """The consult graph's final state as the scorers read it."""
    dump = lambda value: value.model_dump(mode="json") if value is not None else None  # noqa: E731
    records = state.get("tool_records", [])
    return AgentOutput(
        differential=dump(state.get("differential")), plan=dump(state.get("plan")),
        safety_findings=[f.model_dump(mode="json") for f in state.get("safety_findings", [])],
        first_draft_findings=[f.model_dump(mode="json") for f in state.get("first_draft_findings", [])],
        grounding=dump(state.get("grounding")), gaps=[g.model_dump(mode="json") for g in state.get("gaps", [])],
        patient_id=state.get("patient_id"), calculators=tool_results(records), trajectory=_trajectory(records),
        seen=seen_statements(state.get("facts") or [], state.get("gaps", [])),
    )


async def run_consult_graph(case_file: CaseFile, settings: Settings, services: Services, out: Path,
                            thread_id: str) -> AgentOutput:
    """The consult graph with automatic sign-off."""
    outcome = await run_consult(case_file.to_case(), settings, services, out, approver=auto_approve,
                                thread_id=thread_id)
    return consult_output(outcome.state)


async def run_react(case: Case, settings: Settings, services: Services, out_dir: Path) -> AgentOutput:
    """One case through the ReAct loop; writes report.md and trace.jsonl in `out_dir`, then measures the answer."""
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
    return await _measured(case, answer, state.get("records", []), tools, settings, state.get("problem"))


async def run_react_baseline(case_file: CaseFile, settings: Settings, services: Services, out: Path,
                             thread_id: str) -> AgentOutput:
    return await run_react(case_file.to_case(), settings, services, out)


async def _measured(case: Case, answer: ReactAnswer | None, records: list[ToolRecord], tools: ToolRegistry,
                    settings: Settings, problem: str | None) -> AgentOutput:
    """The ReAct answer in the consult graph's fields, with its grounding check and safety review."""
    patient = _resolved_patient(records)
    facts = build_facts(records, tools.result_models())
    ran = {"trajectory": _trajectory(records), "patient_id": patient, "calculators": tool_results(records),
           "seen": [{"kind": f.kind, "text": f.text} for f in facts]}
    if answer is None:
        return AgentOutput(gaps=[{"what": "answer", "reason": problem or "no final answer"}], **ran)
    findings = review_answer(answer, safety_context(await _record_for_review(case, patient, tools, settings)))
    dumped = [f.model_dump(mode="json") for f in findings]
    return AgentOutput(
        differential={"summary": answer.summary, "diagnoses": [d.model_dump() for d in answer.diagnoses]},
        plan={"actions": [a.model_dump() for a in answer.plan]},
        safety_findings=dumped,
        first_draft_findings=dumped,  # no review in the loop: the draft is what goes out
        grounding=check_answer(answer, facts).model_dump(mode="json"),
        **ran,
    )


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


# An agent under evaluation: (case file, settings, services, case folder, thread id) -> its output.
AgentRun = Callable[[CaseFile, Settings, Services, Path, str], Awaitable[AgentOutput]]
AGENTS: dict[str, AgentRun] = {"consult": run_consult_graph, "react": run_react_baseline}
