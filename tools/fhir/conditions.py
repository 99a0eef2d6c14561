"""fhir_conditions: the patient's problem list (active by default)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any, Literal

from fhirclient.models.condition import Condition
from pydantic import BaseModel, Field

from medconsult.config import Settings
from medconsult.fhir.values import (
    SNOMED,
    Coding,
    code_in,
    codings,
    concept_text,
    fhir_date,
    on_or_before,
    reference,
)
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult
from medconsult.tools.fhir.common import PatientArgs


class ConditionArgs(PatientArgs):
    status: Literal["active", "all"] = Field(
        "active", description="active problems only, or the whole history"
    )


class ConditionItem(BaseModel):
    resource: str
    display: str | None
    snomed: str | None
    codings: list[Coding]
    clinical_status: str | None
    onset: str | None
    abatement: str | None = None


class ConditionsResult(ToolResult):
    conditions: list[ConditionItem]
    reviewed_on: str | None = None  # as_of, else the day of the look-up

    def evidence(self) -> list[Evidence]:
        return [
            Evidence(kind="condition", text=_statement(c, self.reviewed_on), resource=c.resource)
            for c in self.conditions
        ]


SEMANTIC_TAG = re.compile(r"\s+\((?:disorder|finding|situation|procedure|morphologic abnormality)\)")


RECENT_DAYS = 365  # onsets within this many days of the review keep their day; older ones their year
NEW_DAYS = 30  # a problem that began within this many days of the review is new around the case's day


def _statement(condition: ConditionItem, reviewed_on: str | None) -> str:
    """"Pneumonia, onset 2018-09-28, new", "Hypertension, onset 1956, background": the day only for a recent
    onset (a date is ten prompt tokens), the status only when not active, SNOMED's semantic tag dropped. "new" or
    "background" separates what began around the case's day from the history, so an old problem-list entry is not
    read as the illness of now."""
    name = SEMANTIC_TAG.sub("", condition.display or "unnamed condition")
    status = "" if condition.clinical_status == "active" else f" ({condition.clinical_status or 'status unknown'})"
    onset = (condition.onset or "unknown")[:10]
    timing = ""
    if reviewed_on and len(onset) == 10:
        reviewed = date.fromisoformat(reviewed_on)
        timing = ", new" if onset >= (reviewed - timedelta(days=NEW_DAYS)).isoformat() else ", background"
        onset = onset if onset >= (reviewed - timedelta(days=RECENT_DAYS)).isoformat() else onset[:4]
    return f"{name}{status}, onset {onset}{timing}"


class ConditionsTool(MedTool):
    name: str = "fhir_conditions"
    description: str = (
        "Conditions (problem list) of a patient with SNOMED CT codes, clinical status and onset date."
    )
    args_schema: type[BaseModel] = ConditionArgs
    result_model = ConditionsResult
    stage = Stage.RECORD
    missing = "active conditions"

    def consult_options(self, settings: Settings) -> dict[str, Any]:
        return {"status": "active"}

    def execute(self, args: ConditionArgs) -> ConditionsResult:
        params = {"patient": args.patient_id, "_count": "100"}
        if args.status == "active" and args.as_of is None:
            params["clinical-status"] = "active"
        items = [_item(c) for c in self.context.fhir.search(Condition, params)]
        if args.as_of is not None:
            items = [_at(i, args.as_of) for i in items if on_or_before(i.onset, args.as_of)]
            if args.status == "active":
                items = [i for i in items if i.clinical_status == "active"]
        items.sort(key=lambda i: i.onset or "", reverse=True)
        summary = f"{len(items)} {args.status} condition(s)"
        if items:
            summary += ": " + "; ".join(i.display or "?" for i in items[:6])
        reviewed_on = (args.as_of or date.today()).isoformat()
        return ConditionsResult(summary=summary, conditions=items, reviewed_on=reviewed_on)


def _at(item: ConditionItem, as_of: date) -> ConditionItem:
    """The condition's status on `as_of`: one that abated later was still active then."""
    if item.abatement and not on_or_before(item.abatement, as_of):
        return item.model_copy(update={"clinical_status": "active", "abatement": None})
    if item.abatement:
        return item.model_copy(update={"clinical_status": "resolved"})
    return item


def _item(condition: Condition) -> ConditionItem:
    return ConditionItem(
        resource=reference(condition),
        display=concept_text(condition.code),
        snomed=code_in(condition.code, SNOMED),
        codings=codings(condition.code),
        clinical_status=concept_text(condition.clinicalStatus),
        onset=fhir_date(condition.onsetDateTime),
        abatement=fhir_date(condition.abatementDateTime),
    )
