"""Typed state of the consult graph, with reducers for what parallel branches write at the same time."""

from __future__ import annotations

from typing import Annotated

from typing_extensions import TypedDict  # LangGraph builds the JSON schema Studio shows from it (Python 3.11)

from medconsult.agents.deterministic.grounding import GroundingReport
from medconsult.agents.deterministic.injection import WithheldAction
from medconsult.agents.schemas import Differential, RadiologyDraft, TreatmentPlan
from medconsult.cases import Case
from medconsult.records import Fact, Gap, PriorExam, ToolRecord
from medconsult.safety import SafetyFinding
from medconsult.signoff import SignOff


def merge_records(left: list[ToolRecord] | None, right: list[ToolRecord] | None) -> list[ToolRecord]:
    """Union by result id; a later record with the same id (a re-run) replaces the earlier one."""
    merged = {record.id: record for record in left or []}
    merged.update({record.id: record for record in right or []})
    return list(merged.values())


def merge_gaps(left: list[Gap] | None, right: list[Gap] | None) -> list[Gap]:
    seen = {(g.what, g.reason) for g in left or []}
    return [*(left or []), *(g for g in right or [] if (g.what, g.reason) not in seen)]


class ConsultInput(TypedDict):
    case: Case


class ConsultState(TypedDict, total=False):
    case: Case
    patient_id: str | None  # resolved FHIR Patient id; None when the record is unavailable
    tool_records: Annotated[list[ToolRecord], merge_records]
    gaps: Annotated[list[Gap], merge_gaps]
    facts: list[Fact]
    priors: list[PriorExam]  # the earlier radiograph the case's image was compared with (the latest found)
    radiology_draft: RadiologyDraft | None  # Findings, Comparison, Impression from the measurements, checked
    evidence_rounds: int  # at most this many look-up rounds (from the settings, fixed at intake)
    evidence_round: int  # rounds of record look-ups the model has had before the differential
    evidence_requests: list[dict]  # this round's requests, until fetched
    differential: Differential | None
    differential_reconsidered: bool  # the first draft's top two explained nothing acute: asked again once
    plan: TreatmentPlan | None
    chosen_regimen: dict | None  # the knowledge-base regimen the plan chose (SelectedRegimen as a dict)
    safety_findings: list[SafetyFinding]
    first_draft_findings: list[SafetyFinding]  # the review of the first draft, kept for evaluation (before vs after)
    reviewed_drugs: list[str]  # what the safety review checked
    blocked_regimens: list[str]  # regimens the safety review stopped; the revised plan cannot choose them
    plan_revisions: int
    revise_plan: bool
    grounding: GroundingReport | None  # numbers and citations of the narrative checked against the tool results
    withheld_actions: list[WithheldAction]  # parts of the draft that echoed instructions planted in record text
    report_path: str | None
    sign_off: SignOff | None  # the physician's decision on the draft
    written_resources: list[str]  # FHIR references written back after approval


class BranchOutput(TypedDict, total=False):
    """What a branch subgraph hands back to the consult graph: only keys that parallel branches can merge."""

    tool_records: Annotated[list[ToolRecord], merge_records]
    gaps: Annotated[list[Gap], merge_gaps]


# Classes the SQLite checkpointer may deserialize (an explicit allow-list instead of any importable class).
STATE_MODELS = (
    Case, ToolRecord, Gap, Fact, Differential, TreatmentPlan, WithheldAction, SignOff, SafetyFinding, GroundingReport,
    RadiologyDraft, PriorExam,
)
