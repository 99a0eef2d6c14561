"""smoking_status: the latest tobacco smoking status (LOINC 72166-2) recorded on or before the case's day."""

from __future__ import annotations

from datetime import date

from fhirclient.models.observation import Observation
from pydantic import BaseModel, Field

from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult

LOINC_SMOKING_STATUS = "72166-2"


class SmokingStatusArgs(BaseModel):
    patient_id: str = Field(..., description="FHIR Patient resource id", max_length=128)
    as_of: date | None = Field(None, description="read the record as it stood at the end of this day")


class SmokingStatusResult(ToolResult):
    status: str | None  # e.g. "Never smoker"; None when none is recorded
    recorded: str | None = None
    resource: str | None = None
    earlier: list[str] = Field(default_factory=list)  # earlier statuses that differ, oldest first

    def evidence(self) -> list[Evidence]:
        if self.status is None:
            return [Evidence(kind="history", text="no tobacco smoking status recorded")]
        text = f"tobacco smoking status: {self.status} (recorded {self.recorded})"
        if self.earlier:
            text += f"; earlier: {', '.join(self.earlier)}"
        return [Evidence(kind="history", text=text, resource=self.resource, value=self.status)]


class SmokingStatusTool(MedTool):
    name: str = "smoking_status"
    description: str = (
        "The patient's latest tobacco smoking status (LOINC 72166-2) on or before the review day, and earlier "
        "statuses that differ from it. None recorded is not the same as never smoked."
    )
    args_schema: type[BaseModel] = SmokingStatusArgs
    result_model = SmokingStatusResult
    stage = Stage.RECORD  # every consult reads it, beside the built-in record tools
    missing = "tobacco smoking status"

    def execute(self, args: SmokingStatusArgs) -> SmokingStatusResult:
        params = {"patient": args.patient_id, "code": f"http://loinc.org|{LOINC_SMOKING_STATUS}", "_count": "100"}
        found = self.context.fhir.search(Observation, params)
        dated = sorted(
            ((o.effectiveDateTime.isostring if o.effectiveDateTime else "", o) for o in found),
            key=lambda pair: pair[0],
        )
        if args.as_of is not None:
            dated = [(when, o) for when, o in dated if when and when[:10] <= args.as_of.isoformat()]
        if not dated:
            return SmokingStatusResult(summary="no tobacco smoking status recorded", status=None)
        statuses = [(when, _status(o)) for when, o in dated]
        recorded, latest = dated[-1]
        earlier = list(dict.fromkeys(s for _, s in statuses[:-1] if s != statuses[-1][1]))
        return SmokingStatusResult(
            summary=f"smoking status: {statuses[-1][1]} ({recorded[:10]})", status=statuses[-1][1],
            recorded=recorded[:10], resource=f"Observation/{latest.id}", earlier=earlier,
        )


def _status(observation: Observation) -> str:
    concept = observation.valueCodeableConcept
    if concept is None:
        return "unknown"
    return concept.text or next((c.display for c in concept.coding or [] if c.display), "unknown")
