"""fhir_patient_summary: demographics (age, sex) of one patient."""

from __future__ import annotations

from datetime import date, datetime

from fhirclient.models.patient import Patient
from pydantic import BaseModel

from medconsult.fhir.values import age_in_years, fhir_date, reference
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult
from medconsult.tools.fhir.common import PatientArgs


class PatientSummaryResult(ToolResult):
    resource: str
    sex: str | None
    birth_date: str | None
    age_years: int | None
    deceased: bool
    language: str | None = None

    def evidence(self) -> list[Evidence]:
        age = f"{self.age_years} years" if self.age_years is not None else "age unknown"
        text = f"{self.sex or 'sex unknown'}, {age} (born {self.birth_date or 'unknown'})"
        return [
            Evidence(kind="demographics", text=text, resource=self.resource, value=self.age_years, unit="a")
        ]


class PatientSummaryTool(MedTool):
    name: str = "fhir_patient_summary"
    description: str = (
        "Demographics of a patient: administrative sex, birth date, age in years, deceased status."
    )
    args_schema: type[BaseModel] = PatientArgs
    result_model = PatientSummaryResult
    stage = Stage.RECORD
    missing = "demographics"

    def execute(self, args: PatientArgs) -> PatientSummaryResult:
        patient = self.context.fhir.read(Patient, args.patient_id)
        deceased_on = _as_date(patient.deceasedDateTime.date) if patient.deceasedDateTime else None
        if args.as_of and deceased_on and deceased_on > args.as_of:
            deceased_on = None  # a death after the review date is not yet known at that date
        deceased = deceased_on is not None or (bool(patient.deceasedBoolean) and args.as_of is None)
        born = _as_date(patient.birthDate.date) if patient.birthDate else None
        age = age_in_years(born, deceased_on or args.as_of or date.today()) if born else None
        language = None
        if patient.communication:
            language = patient.communication[0].language.text or (
                patient.communication[0].language.coding[0].display
                if patient.communication[0].language.coding
                else None
            )
        summary = f"{patient.gender or 'unknown sex'}, {age if age is not None else 'unknown'} years"
        if args.as_of:
            summary += f" on {args.as_of.isoformat()}"
        return PatientSummaryResult(
            summary=summary + (" (deceased)" if deceased else ""),
            resource=reference(patient),
            sex=patient.gender,
            birth_date=fhir_date(patient.birthDate),
            age_years=age,
            deceased=deceased,
            language=language,
        )


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value
