"""Treatment nodes: the plan around a knowledge-base regimen, its deterministic safety review, and the grounding
check of the whole narrative.

    plan -> safety_review -> (a blocked regimen, revisions left: plan again) -> grounding
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from langgraph.runtime import Runtime

from medconsult.agents.deterministic.grounding import verify_grounding
from medconsult.agents.deterministic.injection import (
    WithheldAction,
    withhold_from_differential,
    withhold_from_plan,
)
from medconsult.agents.deterministic.regimens import candidate_regimens, regimen_drugs
from medconsult.agents.deterministic.safety_review import drugs_in_actions, patient_population, safety_context
from medconsult.agents.planner import draft_plan
from medconsult.agents.radiology import draft_texts
from medconsult.agents.schemas import Differential
from medconsult.graphs.context import ConsultContext
from medconsult.graphs.nodes import llm_gap
from medconsult.graphs.state import ConsultState
from medconsult.knowledge import SelectedRegimen
from medconsult.outage import pause_on_outage
from medconsult.records import Gap
from medconsult.safety import SafetyContext, parse_drugs, review_plan
from medconsult.tracing import now_iso


async def plan(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """Draft the plan around a knowledge-base regimen; on a revision, without the regimens the review blocked.
    Whatever repeats an instruction planted in the record is withheld first from the differential (the plan is
    drafted from what remains), then from the plan."""
    context = runtime.context
    differential, withheld = _differential_without_planted_text(state)
    if differential is None:
        reason = "every drafted diagnosis repeated an instruction planted in the record (withheld, see the report)"
        return {"differential": None, "plan": None, "withheld_actions": withheld,
                "gaps": [Gap(what="differential", reason=reason, source="plan")]}
    blocked = set(state.get("blocked_regimens", []))
    records = state.get("tool_records", [])
    population = patient_population(records, state["case"].population)
    # A redraft offers only regimens the review would pass: one blocked beta-lactam must not lead to its sibling.
    passes = _passes_review(safety_context(records, population)) if blocked else None
    options = candidate_regimens(differential, records, blocked, passes, population)
    try:
        drafted = await draft_plan(
            context.chat_model,
            method=context.structured_output,
            differential=differential,
            facts=state["facts"],
            gaps=state.get("gaps", []),
            question=state["case"].question,
            as_of=state["case"].as_of,
            synthetic_dates=state["case"].synthetic_dates,
            regimens=options,
            safety_findings=state.get("safety_findings", []) if blocked else [],
            config={"callbacks": [context.tracer.llm_callback("plan")]},
        )
    except Exception as error:  # noqa: BLE001
        pause_on_outage(error, "treatment plan")
        return {"differential": differential, "plan": None, "withheld_actions": withheld,
                "gaps": [llm_gap("treatment plan", error)]}
    kept, from_plan = withhold_from_plan(drafted, state["facts"])
    chosen = next((r for r in options if r.id == kept.regimen), None)
    return {"differential": differential, "plan": kept, "withheld_actions": withheld + from_plan,
            "chosen_regimen": chosen.model_dump() if chosen else None}


def _differential_without_planted_text(state: ConsultState) -> tuple[Differential | None, list[WithheldAction]]:
    """The differential less what repeats planted text, and everything withheld from it: on a redraft of the plan
    the differential was cleaned already, and what the first pass withheld from it stays listed."""
    differential, withheld = withhold_from_differential(state["differential"], state["facts"])
    earlier = [w for w in state.get("withheld_actions") or [] if w.draft == "differential"]
    return differential, earlier + withheld


async def safety_review(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """Deterministic review of the drafted drugs against the record; a blocked regimen sends the plan back
    (at most `plan_revisions` times), and the redraft cannot choose it again."""
    chosen = SelectedRegimen.model_validate(state["chosen_regimen"]) if state.get("chosen_regimen") else None
    in_regimen = regimen_drugs(chosen) if chosen else []
    drugs = in_regimen + drugs_in_actions(state["plan"], {d.name for d in in_regimen})
    records = state.get("tool_records", [])
    findings = review_plan(drugs, safety_context(records, patient_population(records, state["case"].population)))
    generic = {d.name: parse_drugs(d.name) or [d.name] for d in drugs}  # names as the findings write them
    regimen_names = {name for d in in_regimen for name in generic[d.name]}
    revisions = state.get("plan_revisions", 0)
    blocked = list(state.get("blocked_regimens", []))
    if any(f.severity == "block" and f.drug in regimen_names for f in findings):
        blocked.append(chosen.id)
    revise = bool(chosen and chosen.id in blocked and revisions < runtime.context.settings.plan_revisions)
    reviewed = list(dict.fromkeys(name for names in generic.values() for name in names))
    first_draft = state["first_draft_findings"] if "first_draft_findings" in state else findings
    return {"safety_findings": findings, "first_draft_findings": first_draft, "blocked_regimens": blocked,
            "plan_revisions": revisions + int(revise), "revise_plan": revise, "reviewed_drugs": reviewed}


def _passes_review(record: SafetyContext) -> Callable[[SelectedRegimen], bool]:
    return lambda regimen: not any(f.severity == "block" for f in review_plan(regimen_drugs(regimen), record))


def route_after_safety(state: ConsultState) -> Literal["plan", "grounding"]:
    return "plan" if state.get("revise_plan") else "grounding"


async def grounding(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """Every number and citation of the narrative against the tool results; the counts go into the trace."""
    start, clock = now_iso(), time.perf_counter()
    checked = verify_grounding(state.get("differential"), state.get("plan"), state.get("facts", []),
                               draft_texts(state.get("radiology_draft")))
    runtime.context.tracer.node(
        "grounding", start, time.perf_counter() - clock, None, checked_numbers=checked.checked_numbers,
        checked_citations=checked.checked_citations, unsupported=checked.unsupported,
    )
    return {"grounding": checked}
