"""fhir_medications: the patient's medication requests (active by default)."""

from __future__ import annotations

from typing import Any, Literal

from fhirclient.models.medicationrequest import MedicationRequest
from pydantic import BaseModel, Field

from medconsult.config import Settings
from medconsult.fhir.values import RXNORM, code_in, concept_text, fhir_date, reference
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult
from medconsult.tools.fhir.common import PatientArgs


class MedicationArgs(PatientArgs):
    status: Literal["active", "all"] = Field(
        "active", description="active prescriptions only, or all of them"
    )


class MedicationItem(BaseModel):
    resource: str
    medication: str | None
    rxnorm: str | None
    status: str | None
    authored_on: str | None
    dosage: str | None = None
    reason: str | None = None


class MedicationsResult(ToolResult):
    medications: list[MedicationItem]

    def evidence(self) -> list[Evidence]:
        return [
            Evidence(
                kind="medication",
                text=f"{m.medication}" + ("" if m.status == "active" else f" ({m.status})")
                + f", prescribed {(m.authored_on or 'unknown')[:10]}",
                resource=m.resource,
            )
            for m in self.medications
        ]


class MedicationsTool(MedTool):
    name: str = "fhir_medications"
    description: str = "Medication requests of a patient (RxNorm code, status, date, dosage instructions)."
    args_schema: type[BaseModel] = MedicationArgs
    result_model = MedicationsResult
    stage = Stage.RECORD
    missing = "current medications"

    def consult_options(self, settings: Settings) -> dict[str, Any]:
        return {"status": "active"}

    def execute(self, args: MedicationArgs) -> MedicationsResult:
        params = {"patient": args.patient_id, "_count": "100", "_sort": "-authoredon"}
        if args.status == "active":
            params["status"] = "active"
        if args.as_of is not None:
            params["authoredon"] = f"le{args.as_of.isoformat()}T23:59:59Z"
        items = [_item(m) for m in self.context.fhir.search(MedicationRequest, params, limit=200)]
        summary = f"{len(items)} {args.status} medication request(s)"
        if items:
            summary += ": " + "; ".join(i.medication or "?" for i in items[:6])
        return MedicationsResult(summary=summary, medications=items)


def _item(request: MedicationRequest) -> MedicationItem:
    medication = request.medicationCodeableConcept
    dosage = "; ".join(d.text for d in (request.dosageInstruction or []) if d.text) or None
    reasons = [concept_text(r) for r in (request.reasonCode or [])]
    return MedicationItem(
        resource=reference(request),
        medication=concept_text(medication)
        or (request.medicationReference.display if request.medicationReference else None),
        rxnorm=code_in(medication, RXNORM),
        status=request.status,
        authored_on=fhir_date(request.authoredOn),
        dosage=dosage,
        reason="; ".join(r for r in reasons if r) or None,
    )
