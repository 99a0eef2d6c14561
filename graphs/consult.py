"""The consult graph.

    intake ─┬─ ehr_context     (subgraph: demographics | conditions | medications | allergies | labs | vitals |
            │                   encounters | reports | imaging_studies | notes) ─────────────────────────────┐
            ├─ clinical_scores (subgraph: curb65 | crb65 | qsofa | sirs | psi | egfr | markers) ───────────────┤
            └─ imaging         (subgraph: load_images -> segment_lungs -> radiomics) ──────────────────────────┴─┐
    gather ─ request_evidence ⇄ fetch_evidence (at most `evidence_rounds` rounds) ─ differential ─┐
    ┌─────────────────────────────────────────────────────────────────────────────────────────────┘
    ├─ plan ─ safety_review ─┬─ grounding ─ report ─ sign_off (interrupt: approve, edit, reject) ─ finalize
    │   └──── (a blocked regimen: back to plan, at most `plan_revisions` times)
    └──────── grounding ─ report   (no differential: no plan)

The three branches run concurrently; `differential` waits for all of them. Without a differential there is no
plan: the graph goes straight to the report, which says why.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from medconsult.agents.differential import draft_differential
from medconsult.agents.evidence import Gap, build_facts
from medconsult.agents.evidence_requests import (
    EvidenceRequest,
    ask_for_evidence,
    observed_analytes,
    tool_call_for,
)
from medconsult.agents.grounding import verify_grounding
from medconsult.agents.injection import withhold_echoed_actions
from medconsult.agents.planner import draft_plan
from medconsult.agents.regimens import candidate_regimens, regimen_drugs
from medconsult.agents.safety_review import drugs_in_actions, safety_context
from medconsult.fhir.auth import gateway_from_settings
from medconsult.fhir.client import FhirRequestError, FhirUnavailable
from medconsult.fhir.writeback import consult_bundle, write_consult
from medconsult.graphs.context import ConsultContext
from medconsult.graphs.ehr import build_ehr_graph
from medconsult.graphs.imaging import build_imaging_graph
from medconsult.graphs.nodes import call_tool, tool_updates, traced
from medconsult.graphs.scores import build_scores_graph
from medconsult.graphs.state import ConsultInput, ConsultState
from medconsult.knowledge import SelectedRegimen
from medconsult.report import write_html, write_report
from medconsult.safety import parse_drugs, review_plan
from medconsult.signoff import SignOff, SignOffRequest
from medconsult.tools.runner import ToolRecord
from medconsult.tracing import now_iso


async def intake(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """Resolve the patient (resource id or identifier) and check that the images exist."""
    case = state["case"]
    outcome = await call_tool(runtime, "fhir_find_patient", {"query": case.patient})
    updates = tool_updates(outcome, "patient record")
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


async def request_evidence(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """One bounded round in which the model may ask for more of the record (schema-constrained, never free)."""
    context = runtime.context
    round_number = state.get("evidence_round", 0) + 1
    records = state.get("tool_records", [])
    facts = build_facts(records, context.tools.result_models())
    if not facts or not state.get("patient_id"):
        return {"evidence_round": round_number, "evidence_requests": []}
    start, clock = now_iso(), time.perf_counter()
    try:
        asked = await ask_for_evidence(
            context.chat_model, method=context.structured_output, facts=facts, gaps=state.get("gaps", []),
            analytes=sorted(observed_analytes(records)), question=state["case"].question, as_of=state["case"].as_of,
            round_number=round_number, rounds=state["evidence_rounds"],
            config={"callbacks": [context.tracer.llm_callback("request_evidence")]},
        )  # fmt: skip
    except Exception as error:  # noqa: BLE001 - the differential goes ahead on the record it has
        context.tracer.node("request_evidence", start, time.perf_counter() - clock, f"{type(error).__name__}: {error}")
        return {"evidence_round": round_number, "evidence_requests": []}
    requests = [r.model_dump() for r in asked.requests]
    context.tracer.node("request_evidence", start, time.perf_counter() - clock, None, requests=requests)
    return {"evidence_round": round_number, "evidence_requests": requests}


def route_after_request(state: ConsultState) -> Literal["fetch_evidence", "differential"]:
    return "fetch_evidence" if state.get("evidence_requests") else "differential"


async def fetch_evidence(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """Run the tool calls the requests map to, in parallel; requests the record cannot answer are skipped."""
    analytes = observed_analytes(state.get("tool_records", []))
    base = {"patient_id": state["patient_id"]}
    if state["case"].as_of:
        base["as_of"] = state["case"].as_of.isoformat()
    calls = [tool_call_for(EvidenceRequest.model_validate(r), analytes) for r in state["evidence_requests"]]
    unique = {(tool, json.dumps(args, sort_keys=True)): (tool, args) for tool, args in filter(None, calls)}
    outcomes = await asyncio.gather(*(call_tool(runtime, tool, {**base, **args}) for tool, args in unique.values()))
    records = [o for o in outcomes if isinstance(o, ToolRecord)]
    return {"tool_records": records, "evidence_requests": []}


EvidenceRoute = Literal["request_evidence", "differential"]


def route_after_fetch(state: ConsultState) -> EvidenceRoute:
    return "request_evidence" if state.get("evidence_round", 0) < state["evidence_rounds"] else "differential"


def route_to_evidence(state: ConsultState) -> EvidenceRoute:
    return "request_evidence" if state["evidence_rounds"] > 0 else "differential"


async def differential(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    context = runtime.context
    facts = build_facts(state.get("tool_records", []), context.tools.result_models())
    if not facts:
        return {
            "facts": [],
            "differential": None,
            "gaps": [Gap(what="differential", reason="no evidence from any tool", source="differential")],
        }
    try:
        drafted = await draft_differential(
            context.chat_model,
            method=context.structured_output,
            facts=facts,
            gaps=state.get("gaps", []),
            question=state["case"].question,
            as_of=state["case"].as_of,
            config={"callbacks": [context.tracer.llm_callback("differential")]},
        )
    except Exception as error:  # noqa: BLE001 - an LLM failure must leave a report, not a crash
        return {"facts": facts, "differential": None, "gaps": [_llm_gap("differential", error)]}
    return {"facts": facts, "differential": drafted}


def route_after_differential(state: ConsultState) -> Literal["plan", "grounding"]:
    return "plan" if state.get("differential") else "grounding"


def route_after_plan(state: ConsultState) -> Literal["safety_review", "grounding"]:
    return "safety_review" if state.get("plan") else "grounding"


async def plan(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """Draft the plan around a knowledge-base regimen; on a revision, without the regimens the review blocked."""
    context = runtime.context
    blocked = set(state.get("blocked_regimens", []))
    options = candidate_regimens(state["differential"], state.get("tool_records", []), blocked)
    try:
        drafted = await draft_plan(
            context.chat_model,
            method=context.structured_output,
            differential=state["differential"],
            facts=state["facts"],
            gaps=state.get("gaps", []),
            question=state["case"].question,
            as_of=state["case"].as_of,
            regimens=options,
            safety_findings=state.get("safety_findings", []) if blocked else [],
            config={"callbacks": [context.tracer.llm_callback("plan")]},
        )
    except Exception as error:  # noqa: BLE001
        return {"plan": None, "gaps": [_llm_gap("treatment plan", error)]}
    kept, withheld = withhold_echoed_actions(drafted, state["facts"])
    chosen = next((r for r in options if r.id == kept.regimen), None)
    return {"plan": kept, "withheld_actions": withheld, "chosen_regimen": chosen.model_dump() if chosen else None}


async def safety_review(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """Deterministic review of the drafted drugs against the record; a blocked regimen is sent back once."""
    chosen = SelectedRegimen.model_validate(state["chosen_regimen"]) if state.get("chosen_regimen") else None
    drugs = regimen_drugs(chosen) if chosen else []
    drugs += drugs_in_actions(state["plan"], {d.name for d in drugs})
    findings = review_plan(drugs, safety_context(state.get("tool_records", [])))
    revisions = state.get("plan_revisions", 0)
    blocked = list(state.get("blocked_regimens", []))
    in_regimen = {name for d in regimen_drugs(chosen) for name in parse_drugs(d.name) or [d.name]} if chosen else set()
    if any(f.severity == "block" and f.drug in in_regimen for f in findings):
        blocked.append(chosen.id)
    revise = bool(chosen and chosen.id in blocked and revisions < runtime.context.settings.plan_revisions)
    reviewed = list(dict.fromkeys(name for d in drugs for name in parse_drugs(d.name) or [d.name]))
    return {"safety_findings": findings, "blocked_regimens": blocked, "plan_revisions": revisions + int(revise),
            "revise_plan": revise, "reviewed_drugs": reviewed}  # fmt: skip


def route_after_safety(state: ConsultState) -> Literal["plan", "grounding"]:
    return "plan" if state.get("revise_plan") else "grounding"


async def grounding(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """Every number and citation of the narrative against the tool results; the counts go into the trace."""
    start, clock = now_iso(), time.perf_counter()
    checked = verify_grounding(state.get("differential"), state.get("plan"), state.get("facts", []))
    runtime.context.tracer.node(
        "grounding", start, time.perf_counter() - clock, None, checked_numbers=checked.checked_numbers,
        checked_citations=checked.checked_citations, unsupported=checked.unsupported,
    )  # fmt: skip
    return {"grounding": checked}


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
            bundle = consult_bundle(
                state["patient_id"], signed.read_text(), state.get("differential"), state.get("plan"),
                decision.reviewer,
            )  # fmt: skip
            gateway = gateway_from_settings(context.settings, context.fhir_base_url)
            written = await asyncio.to_thread(write_consult, gateway, bundle)
        except (FhirUnavailable, FhirRequestError) as error:
            gaps = [Gap(what="FHIR write-back", reason=str(error), source="finalize")]
    if written or gaps:  # the report says where it was written, or why it was not
        write_report({**state, "written_resources": written, "gaps": [*state.get("gaps", []), *gaps]}, context)
    write_html(signed)
    return {"written_resources": written, "gaps": gaps, "report_path": str(signed)}


async def _join(state: ConsultState) -> dict[str, Any]:
    """Where the three branches meet: the evidence loop starts only once all of them are done."""
    return {}


def _llm_gap(what: str, error: Exception) -> Gap:
    return Gap(what=what, reason=f"LLM step failed ({type(error).__name__}: {str(error)[:300]})", source=what)


def build_consult_graph(checkpointer: BaseCheckpointSaver | None = None):  # noqa: ANN201 - CompiledStateGraph
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
    builder.add_conditional_edges("gather", route_to_evidence)
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
