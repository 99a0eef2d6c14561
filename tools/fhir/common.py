"""The argument schema the FHIR record tools share (the values they read are in medconsult.fhir.values)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field, field_validator


class PatientArgs(BaseModel):
    patient_id: str = Field(..., description="FHIR Patient resource id (or Patient/<id>)", max_length=128)
    as_of: date | None = Field(
        None,
        description="read the record as it stood at the end of this day (retrospective cases); later data is hidden",
    )

    @field_validator("patient_id")
    @classmethod
    def _bare_id(cls, value: str) -> str:
        value = value.strip().removeprefix("Patient/")
        if not value or "/" in value or "?" in value:
            raise ValueError("patient_id must be a FHIR resource id")
        return value
