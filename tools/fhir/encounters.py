"""fhir_encounters: the patient's most recent encounters (class, type, period, reason)."""

from __future__ import annotations

from typing import Any

from fhirclient.models.encounter import Encounter
from pydantic import BaseModel, Field

from medconsult.config import Settings
from medconsult.fhir.values import concept_text, fhir_date, reference
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult
from medconsult.tools.fhir.common import PatientArgs


class EncounterArgs(PatientArgs):
    limit: int = Field(5, ge=1, le=50, description="at most this many encounters, most recent first")


class EncounterItem(BaseModel):
    resource: str
    encounter_class: str | None
    types: list[str]
    status: str | None
    start: str | None
    end: str | None
    reasons: list[str]


class EncountersResult(ToolResult):
    encounters: list[EncounterItem]
    total_found: int

    def evidence(self) -> list[Evidence]:
        return [
            Evidence(
                kind="encounter",
                text=f"{', '.join(e.types) or 'encounter'} ({e.encounter_class or 'class unknown'}) on "
                f"{(e.start or 'unknown date')[:10]}"
                + (f" for {', '.join(e.reasons)}" if e.reasons else ""),
                resource=e.resource,
            )
            for e in self.encounters
        ]


class EncountersTool(MedTool):
    name: str = "fhir_encounters"
    description: str = "Recent encounters of a patient (ambulatory, emergency, inpatient) with dates and reasons."
    args_schema: type[BaseModel] = EncounterArgs
    result_model = EncountersResult
    stage = Stage.RECORD
    missing = "recent encounters"

    def consult_options(self, settings: Settings) -> dict[str, Any]:
        return {"limit": 3}

    def execute(self, args: EncounterArgs) -> EncountersResult:
        params = {"patient": args.patient_id, "_sort": "-date", "_count": "100"}
        if args.as_of is not None:
            params["date"] = f"le{args.as_of.isoformat()}T23:59:59Z"
        found = [_item(e) for e in self.context.fhir.search(Encounter, params, limit=500)]
        found.sort(key=lambda e: e.start or "", reverse=True)  # servers differ in how they sort periods
        items = found[: args.limit]
        summary = f"{len(items)} most recent of {len(found)} encounter(s)"
        if items:
            summary += f", latest {(items[0].start or '?')[:10]} ({', '.join(items[0].types) or '?'})"
        return EncountersResult(summary=summary, encounters=items, total_found=len(found))


def _item(encounter: Encounter) -> EncounterItem:
    period = encounter.period
    return EncounterItem(
        resource=reference(encounter),
        encounter_class=(encounter.class_fhir.display or encounter.class_fhir.code)
        if encounter.class_fhir
        else None,
        types=[t for t in (concept_text(c) for c in encounter.type or []) if t],
        status=encounter.status,
        start=fhir_date(period.start) if period else None,
        end=fhir_date(period.end) if period else None,
        reasons=[r for r in (concept_text(c) for c in encounter.reasonCode or []) if r],
    )
