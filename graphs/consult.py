"""The consult graph.

    intake ─┬─ ehr_context     (subgraph: every `record` tool: demographics, conditions, medications, allergies, ─┐
            │                   labs, vitals, encounters, reports, imaging studies, notes, plugins)             │
            ├─ clinical_scores (subgraph: every `scores` tool: CURB-65, CRB-65, qSOFA, SIRS, PSI, eGFR, ...) ──┤
            └─ imaging         (subgraph: load_images -> every `image` tool per radiograph (segment_lungs,     │
                                etiology_estimate, similar_cases, ...) -> every `lungs` tool (radiomics, ...)) ┴─┐
    gather ─ radiology (subgraph: find_priors -> every `prior` tool (compare_radiographs, ...) -> draft: Findings,
                        Comparison, Impression from the measurements, each statement checked)
    ─ request_evidence ⇄ fetch_evidence (at most `evidence_rounds` rounds) ─ differential ─┐
    ┌─────────────────────────────────────────────────────────────────────────────────────────────┘
    ├─ plan ─ safety_review ─┬─ grounding ─ report ─ sign_off (interrupt: approve, edit, reject) ─ finalize
    │   └──── (a blocked regimen: back to plan, at most `plan_revisions` times)
    └──────── grounding ─ report   (no differential: no plan)

The three branches run concurrently; the radiology draft and the differential wait for all of them. Without a
differential there is no plan: the graph goes straight to the report, which says why.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from medconsult.agents.deterministic.candidates import candidate_diagnoses
from medconsult.agents.deterministic.safety_review import patient_population
from medconsult.agents.differential import draft_differential, explains_presentation
from medconsult.agents.evidence import build_facts
from medconsult.fhir.auth import gateway_from_settings
from medconsult.fhir.client import FhirRequestError, FhirUnavailable
from medconsult.fhir.writeback import DraftPlan, consult_bundle, write_consult
from medconsult.graphs.context import ConsultContext
from medconsult.graphs.ehr import build_ehr_graph
from medconsult.graphs.evidence_loop import (
    fetch_evidence,
    request_evidence,
    route_after_fetch,
    route_after_request,
    route_to_evidence,
)
from medconsult.graphs.imaging import build_imaging_graph
from medconsult.graphs.nodes import call_tool, llm_gap, tool_updates, traced
from medconsult.graphs.radiology import build_radiology_graph
from medconsult.graphs.report import write_html, write_report
from medconsult.graphs.scores import build_scores_graph
from medconsult.graphs.state import ConsultInput, ConsultState
from medconsult.graphs.treatment import grounding, plan, route_after_safety, safety_review
from medconsult.knowledge import knowledge_base
from medconsult.outage import pause_on_outage
from medconsult.records import Gap, ToolRecord
from medconsult.signoff import SignOff, SignOffRequest
from medconsult.tools.fhir.find_patient import FindPatientTool


async def intake(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """Resolve the patient (resource id or identifier) and check that the images exist."""
    case = state["case"]
    outcome = await call_tool(runtime, FindPatientTool, {"query": case.patient})
    updates = tool_updates(outcome, FindPatientTool.missing)
    gaps = list(updates.get("gaps", []))
    patient_id = None
    if isinstance(outcome, ToolRecord) and outcome.ok:
        matches = outcome.result["matches"]
        if len(matches) == 1:
            patient_id = matches[0]["resource"].removeprefix("Patient/")
        else:
            reason = "no patient matches" if not matches else f"{len(matches)} patients match: ambiguous"
            gaps.append(Gap(what="patient record", reason=f"{reason} {case.patient!r}", source=outcome.id))
    gaps += [
        Gap(what=f"image {path}", reason="file not found", source="intake")
        for path in case.images
        if not Path(path).is_file()
    ]
    rounds = runtime.context.settings.evidence_rounds
    return {**updates, "gaps": gaps, "patient_id": patient_id, "evidence_rounds": rounds}


async def differential(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    context = runtime.context
    records = state.get("tool_records", [])
    facts = build_facts(records, context.tools.result_models(), state.get("facts"))
    if not facts:
        return {
            "facts": [],
            "differential": None,
            "gaps": [Gap(what="differential", reason="no evidence from any tool", source="differential")],
        }
    ask = {
        "method": context.structured_output, "facts": facts, "gaps": state.get("gaps", []),
        "question": state["case"].question, "as_of": state["case"].as_of,
        "synthetic_dates": state["case"].synthetic_dates,
        # A radiograph consult ranks causes: the knowledge base's conditions, the tools' suggestions first.
        "candidates": candidate_diagnoses(
            knowledge_base(), records, patient_population(records, state["case"].population)
        ) if state["case"].images else None,
    }
    try:
        drafted = await draft_differential(
            context.chat_model, **ask, config={"callbacks": [context.tracer.llm_callback("differential")]}
        )
    except Exception as error:  # noqa: BLE001 - an LLM failure must leave a report, not a crash
        pause_on_outage(error, "differential")
        return {"facts": facts, "differential": None, "gaps": [llm_gap("differential", error)]}
    if not state["case"].images or explains_presentation(drafted):
        return {"facts": facts, "differential": drafted}
    # A chest radiograph consult whose top two explain nothing acute: asked again once, the first draft kept if
    # the second attempt fails.
    try:
        redrafted = await draft_differential(
            context.chat_model, **ask, reconsider=drafted,
            config={"callbacks": [context.tracer.llm_callback("differential_reconsidered")]},
        )
    except Exception as error:  # noqa: BLE001
        pause_on_outage(error, "reconsidered differential")
        return {"facts": facts, "differential": drafted, "gaps": [llm_gap("reconsidered differential", error)]}
    return {"facts": facts, "differential": redrafted, "differential_reconsidered": True}


def route_after_differential(state: ConsultState) -> Literal["plan", "grounding"]:
    return "plan" if state.get("differential") else "grounding"


def route_after_plan(state: ConsultState) -> Literal["safety_review", "grounding"]:
    return "safety_review" if state.get("plan") else "grounding"


async def report(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """The draft the physician reviews (report.md, marked as awaiting sign-off)."""
    path = write_report(state, runtime.context)
    return {"report_path": str(path)}


async def sign_off(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """Pause until a physician approves, edits or rejects the draft. Re-run on resume, so it only builds the ask."""
    plan_ = state.get("plan")
    request = SignOffRequest(
        case_id=state["case"].id,
        draft_report=state["report_path"],
        working_diagnosis=plan_.working_diagnosis if plan_ else None,
        safety_flags=[f"{f.severity}: {f.message}" for f in state.get("safety_findings", [])],
        unsupported_statements=state["grounding"].unsupported if state.get("grounding") else 0,
        gaps=len(state.get("gaps", [])),
    )
    answer = interrupt(request.model_dump())
    return {"sign_off": SignOff.model_validate(answer)}


async def finalize(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """The signed report (Markdown and HTML); on approval, written to FHIR as draft resources when configured."""
    context, decision = runtime.context, state["sign_off"]
    signed = write_report(state, context)
    written: list[str] = []
    gaps: list[Gap] = []
    if decision.decision != "reject" and context.settings.fhir_write_back and state.get("patient_id"):
        try:
            bundle = consult_bundle(state["patient_id"], signed.read_text(), *_for_write_back(state), decision.reviewer,
                                    *_radiology_for_write_back(state))
            gateway = gateway_from_settings(context.settings, context.fhir_base_url)
            written = await asyncio.to_thread(write_consult, gateway, bundle)
        except (FhirUnavailable, FhirRequestError) as error:
            gaps = [Gap(what="FHIR write-back", reason=str(error), source="finalize")]
    if written or gaps:  # the report says where it was written, or why it was not
        write_report({**state, "written_resources": written, "gaps": [*state.get("gaps", []), *gaps]}, context)
    write_html(signed)
    return {"written_resources": written, "gaps": gaps, "report_path": str(signed)}


def _for_write_back(state: ConsultState) -> tuple[list[tuple[str, str]], DraftPlan | None]:
    """The draft differential as (diagnosis, likelihood) pairs and the plan as the CarePlan's lines."""
    differential, plan_ = state.get("differential"), state.get("plan")
    ranked = [(d.diagnosis, d.likelihood) for d in differential.diagnoses] if differential else []
    activities = [f"[{a.priority}] {a.category}: {a.action}" for a in plan_.actions] if plan_ else []
    return ranked, DraftPlan(plan_.working_diagnosis, activities) if plan_ else None


def _radiology_for_write_back(state: ConsultState) -> tuple[str | None, list[str]]:
    """The radiology draft's impression, and the record's ImagingStudy resources of the films it compared."""
    draft = state.get("radiology_draft")
    if draft is None:
        return None, []
    impression = " ".join(s.text for s in draft.impression) or None
    studies = [p.source for p in state.get("priors") or [] if p.source.startswith("ImagingStudy/") and draft.overlays]
    return impression, studies


async def _join(state: ConsultState) -> dict[str, Any]:
    """Where the three branches meet: the evidence loop starts only once all of them are done."""
    return {}


def build_consult_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    builder = StateGraph(ConsultState, input_schema=ConsultInput, context_schema=ConsultContext)
    builder.add_node("intake", traced("intake", intake))
    builder.add_node("ehr_context", build_ehr_graph())
    builder.add_node("clinical_scores", build_scores_graph())
    builder.add_node("imaging", build_imaging_graph())
    builder.add_node("request_evidence", request_evidence)  # writes its own trace line, with the requests
    builder.add_node("fetch_evidence", traced("fetch_evidence", fetch_evidence))
    builder.add_node("differential", traced("differential", differential))
    builder.add_node("plan", traced("plan", plan))
    builder.add_node("safety_review", traced("safety_review", safety_review))
    builder.add_node("grounding", grounding)  # writes its own trace line, with the counts
    builder.add_node("report", traced("report", report))
    builder.add_node("sign_off", sign_off)  # not traced: it is re-run when the physician answers
    builder.add_node("finalize", traced("finalize", finalize))

    builder.add_edge(START, "intake")
    builder.add_edge("intake", "ehr_context")
    builder.add_edge("intake", "clinical_scores")
    builder.add_edge("intake", "imaging")
    builder.add_node("gather", _join)
    builder.add_edge(["ehr_context", "clinical_scores", "imaging"], "gather")
    builder.add_node("radiology", build_radiology_graph())
    builder.add_edge("gather", "radiology")
    builder.add_conditional_edges("radiology", route_to_evidence)
    builder.add_conditional_edges("request_evidence", route_after_request)
    builder.add_conditional_edges("fetch_evidence", route_after_fetch)
    builder.add_conditional_edges("differential", route_after_differential)
    builder.add_conditional_edges("plan", route_after_plan)
    builder.add_conditional_edges("safety_review", route_after_safety)
    builder.add_edge("grounding", "report")
    builder.add_edge("report", "sign_off")
    builder.add_edge("sign_off", "finalize")
    builder.add_edge("finalize", END)
    return builder.compile(checkpointer=checkpointer, name="consult")
