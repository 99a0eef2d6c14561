"""Radiology subgraph: the patient's earlier radiograph found, every comparison tool run on the pair, and the
preliminary radiology report drafted from the measurements.

    find_priors ─ prior_tools (each radiograph x its latest earlier exam x every prior-stage tool) ─ draft
                └──────────────────────────── (no earlier exam) ───────────────────────────────────┘

An earlier exam is one given with the case (`priors`) or one the record lists (ImagingStudy started before the
case's day) whose images the archive holds (medconsult/imaging/archive.py); one the archive lacks is a gap. The
draft (agents/radiology.py) is checked statement by statement before anyone sees it.
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send
from typing_extensions import TypedDict

from medconsult.agents.evidence import build_facts
from medconsult.agents.radiology import check_draft, draft_facts, draft_radiology, measured_draft
from medconsult.agents.schemas import RadiologyDraft
from medconsult.graphs.context import ConsultContext
from medconsult.graphs.nodes import llm_gap, traced
from medconsult.graphs.stages import PlannedCall, call_node, plan_calls
from medconsult.graphs.state import ConsultState, merge_gaps, merge_records
from medconsult.imaging.archive import find_study
from medconsult.imaging.io import dicom_date
from medconsult.outage import pause_on_outage
from medconsult.records import Fact, Gap, PriorExam, ToolRecord
from medconsult.tools.base import Stage, StageInputs
from medconsult.tools.fhir.imaging_studies import ImagingStudiesTool
from medconsult.tools.imaging.compare_radiographs import CompareRadiographsTool, CompareResult
from medconsult.tools.imaging.load_image import LoadImageTool


class RadiologyOutput(TypedDict, total=False):
    tool_records: Annotated[list[ToolRecord], merge_records]
    gaps: Annotated[list[Gap], merge_gaps]
    facts: list[Fact]
    priors: list[PriorExam]
    radiology_draft: RadiologyDraft | None


def _ok(state: ConsultState, tool: type) -> list[ToolRecord]:
    return [r for r in state.get("tool_records", []) if r.tool == tool.tool_name() and r.ok]


def current_day(state: ConsultState) -> date:
    """The day of the case's radiograph: the case's day, else the image's DICOM date, else today."""
    case = state["case"]
    if case.as_of:
        return case.as_of
    for record in _ok(state, LoadImageTool):
        if taken := dicom_date(record.result.get("study_date")):
            return taken
    return date.today()


async def find_priors(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """The most recent earlier exam with images, from the case and the record; later ones without images are gaps."""
    current = {r.args["path"] for r in _ok(state, LoadImageTool)}
    if not current:
        return {"priors": []}
    today = current_day(state)
    found = [PriorExam(path=p.path, date=p.date.isoformat() if p.date else None, source="given with the case")
             for p in state["case"].priors]
    missing: list[tuple[str, Gap]] = []
    folders = runtime.context.settings.resolved_image_archive
    for record in _ok(state, ImagingStudiesTool):
        for study in record.result["studies"]:
            started = (study.get("started") or "")[:10]
            if not started or started >= today.isoformat():
                continue
            path = await asyncio.to_thread(find_study, study["study_uid"], folders) if study.get("study_uid") else None
            if path is None:
                where = ", ".join(str(f) for f in folders)
                missing.append((started, Gap(what=f"prior exam of {started}", source=record.id, reason=(
                    f"{study['resource']}: its images are not in the image archive ({where})"))))
            else:
                found.append(PriorExam(path=str(path), date=started, source=study["resource"]))
    found = [p for p in found if p.path not in current and Path(p.path).is_file()]
    latest = max(found, key=lambda p: p.date or "", default=None)
    gaps = [gap for started, gap in missing if latest is None or started > (latest.date or "")]
    return {"priors": [latest] if latest else [], "gaps": gaps}


def route_priors(state: ConsultState, runtime: Runtime[ConsultContext]) -> list[Send] | str:
    """Each loaded radiograph with the earlier exam to every prior-stage tool; straight to the draft without one."""
    priors = state.get("priors") or []
    if not priors:
        return "draft"
    case, prior, context = state["case"], priors[0], runtime.context
    inputs = [
        StageInputs(context.settings, state.get("patient_id"), case.as_of, case.population, image=record.args["path"],
                    prior=prior.path, prior_date=date.fromisoformat(prior.date) if prior.date else None,
                    current_date=current_day(state))
        for record in _ok(state, LoadImageTool)
    ]
    return plan_calls(context, Stage.PRIOR, inputs, node="prior_tools") or "draft"


async def draft(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """Findings, Comparison and Impression from the measurements, each statement checked (agents/radiology.py)."""
    context = runtime.context
    facts = build_facts(state.get("tool_records", []), context.tools.result_models(), state.get("facts"))
    if not draft_facts(facts):
        return {"facts": facts, "radiology_draft": None}  # no radiograph was measured: nothing to describe
    priors = state.get("priors") or []
    prior_dates = [p.date for p in priors if p.date]
    comparisons = [CompareResult.model_validate(r.result) for r in _ok(state, CompareRadiographsTool)]
    steady = bool(comparisons) and all(c.steady for c in comparisons)
    gaps: list[Gap] = []
    try:
        drafted = await draft_radiology(
            context.chat_model, method=context.structured_output, facts=facts, gaps=state.get("gaps", []),
            as_of=state["case"].as_of, synthetic_dates=state["case"].synthetic_dates,
            prior_date=prior_dates[0] if prior_dates else None,
            config={"callbacks": [context.tracer.llm_callback("radiology_draft")]},
        )
    except Exception as error:  # noqa: BLE001 - an LLM failure leaves the measurements' own sentences
        pause_on_outage(error, "radiology_draft")
        gaps.append(llm_gap("radiology draft", error))
        checked = measured_draft(facts, prior_dates, f"the model's draft failed: {type(error).__name__}")
    else:
        checked = check_draft(drafted, facts, prior_dates, steady=steady)
    overlays = [c.overlay_png for c in comparisons]
    compared = [f"{p.date or 'undated'} ({p.source})" for p in priors] if overlays else []
    return {"facts": facts, "gaps": gaps,
            "radiology_draft": checked.model_copy(update={"overlays": overlays, "compared_with": compared})}


def build_radiology_graph() -> CompiledStateGraph:
    builder = StateGraph(ConsultState, output_schema=RadiologyOutput, context_schema=ConsultContext)
    builder.add_node("find_priors", traced("radiology.find_priors", find_priors))
    builder.add_node("prior_tools", call_node("radiology"), input_schema=PlannedCall)
    builder.add_node("draft", traced("radiology.draft", draft))
    builder.add_edge(START, "find_priors")
    builder.add_conditional_edges("find_priors", route_priors, ["prior_tools", "draft"])
    builder.add_edge("prior_tools", "draft")  # after every comparison call of the step
    builder.add_edge("draft", END)
    return builder.compile(name="radiology")
