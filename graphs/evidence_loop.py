"""The evidence loop before the differential: the model may ask for more of the record, in bounded rounds.

    gather -> request_evidence -> fetch_evidence -> request_evidence ... -> differential

`request_evidence` is one schema-constrained LLM call (agents/evidence_requests.py); `fetch_evidence` runs the
registered tools the requests map to. The number of rounds is fixed at intake from the settings.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

from langgraph.runtime import Runtime

from medconsult.agents.evidence import build_facts
from medconsult.agents.evidence_requests import (
    EvidenceRequest,
    ask_for_evidence,
    observed_analytes,
    tool_call_for,
)
from medconsult.graphs.context import ConsultContext
from medconsult.graphs.nodes import call_tool
from medconsult.graphs.state import ConsultState
from medconsult.outage import pause_on_outage
from medconsult.records import ToolRecord
from medconsult.tracing import now_iso


async def request_evidence(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """One bounded round in which the model may ask for more of the record (schema-constrained, never free)."""
    context = runtime.context
    round_number = state.get("evidence_round", 0) + 1
    records = state.get("tool_records", [])
    facts = build_facts(records, context.tools.result_models(), state.get("facts"))
    if not facts or not state.get("patient_id"):
        return {"evidence_round": round_number, "evidence_requests": []}
    start, clock = now_iso(), time.perf_counter()
    try:
        asked = await ask_for_evidence(
            context.chat_model, method=context.structured_output, facts=facts, gaps=state.get("gaps", []),
            analytes=sorted(observed_analytes(records)), question=state["case"].question, as_of=state["case"].as_of,
            synthetic_dates=state["case"].synthetic_dates,
            round_number=round_number, rounds=state["evidence_rounds"],
            config={"callbacks": [context.tracer.llm_callback("request_evidence")]},
        )
    except Exception as error:  # noqa: BLE001 - the differential goes ahead on the record it has
        context.tracer.node("request_evidence", start, time.perf_counter() - clock, f"{type(error).__name__}: {error}")
        pause_on_outage(error, "request_evidence")
        return {"evidence_round": round_number, "evidence_requests": [], "facts": facts}
    requests = [r.model_dump() for r in asked.requests]
    context.tracer.node("request_evidence", start, time.perf_counter() - clock, None, requests=requests)
    # The catalogue as the model read it: later steps add to its end, so their prompts share its cached prefix.
    return {"evidence_round": round_number, "evidence_requests": requests, "facts": facts}


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
