"""fhir_find_patient: resolve a Patient from its resource id or any identifier value (e.g. an MRN)."""

from __future__ import annotations

from fhirclient.models.patient import Patient
from pydantic import BaseModel, Field

from medconsult.fhir.client import FhirNotFound
from medconsult.fhir.values import fhir_date, reference
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult


class FindPatientArgs(BaseModel):
    query: str = Field(
        ..., description="Patient resource id, or an identifier value such as the MRN", max_length=128
    )


class PatientMatch(BaseModel):
    resource: str
    name: str | None = None
    birth_date: str | None = None
    identifiers: list[str] = Field(default_factory=list)


class FindPatientResult(ToolResult):
    matches: list[PatientMatch]
    matched_by: str  # "id" | "identifier" | "none"

    def evidence(self) -> list[Evidence]:
        return []  # identifies the patient; says nothing clinical


class FindPatientTool(MedTool):
    name: str = "fhir_find_patient"
    description: str = "Find a patient by FHIR resource id or by identifier value (MRN, system|value)."
    args_schema: type[BaseModel] = FindPatientArgs
    result_model = FindPatientResult
    stage = Stage.INTAKE
    missing = "patient record"

    def execute(self, args: FindPatientArgs) -> FindPatientResult:
        query = args.query.strip().removeprefix("Patient/")
        try:
            found, how = [self.context.fhir.read(Patient, query)], "id"
        except FhirNotFound:
            found, how = (
                self.context.fhir.search(Patient, {"identifier": query, "_count": "5"}, limit=5),
                "identifier",
            )
        matches = [patient_match(p) for p in found]
        if not matches:
            how = "none"
        summary = f"{len(matches)} patient(s) for {query!r} by {how}"
        return FindPatientResult(summary=summary, matches=matches, matched_by=how)


def patient_match(patient: Patient) -> PatientMatch:
    name = patient.name[0] if patient.name else None
    text = " ".join([*(name.given or []), name.family or ""]).strip() if name else None
    return PatientMatch(
        resource=reference(patient),
        name=text or None,
        birth_date=fhir_date(patient.birthDate),
        identifiers=[f"{i.system}|{i.value}" for i in (patient.identifier or []) if i.value],
    )
