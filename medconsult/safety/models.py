"""What the safety review reads and writes: the planned drugs, the record's items, the context and the findings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

Rule = Literal[
    "allergy",
    "cross-reactivity",
    "interaction",
    "renal",
    "pregnancy",
    "duplicate",
    "unknown-drug",
    "record-gap",
    "weight-dose",
]
Severity = Literal["block", "warn"]


class PlannedDrug(BaseModel):
    name: str  # generic name or free text from the plan ("Ceftriaxone 1 g IV daily")
    dose: str | None = None
    route: str | None = None
    frequency: str | None = None
    action_index: int | None = None  # which plan action it comes from
    per_kg: dict | None = None  # the knowledge base's dose by weight (WeightDose as a dict), where it has one
    regimen_id: str | None = None  # drugs of different regimens are alternatives, not given together


class RecordItem(BaseModel):
    """One fact from the FHIR record, with its reference."""

    text: str  # e.g. "Penicillin V" / "warfarin 5 mg" / "Amiodarone"
    resource: str | None = None  # "AllergyIntolerance/123", "MedicationRequest/9"
    criticality: str | None = None  # allergies: low | high | unable-to-assess
    reactions: list[str] = []


class SafetyContext(BaseModel):
    allergies: list[RecordItem] = []
    allergies_known: bool = True  # False when the allergy record could not be read (then: a warning finding)
    medications: list[RecordItem] = []  # current (active) medications
    egfr: float | None = None  # mL/min/1.73 m2
    egfr_resource: str | None = None
    pregnant: bool | None = None
    pregnancy_resource: str | None = None
    age_years: int | None = None
    qtc_ms: float | None = None
    population: str = "adult"  # "paediatric": every drug needs a dose by weight
    weight_kg: float | None = None
    weight_resource: str | None = None


class SafetyFinding(BaseModel):
    rule: Rule
    severity: Severity  # block: the plan must be revised; warn: shown prominently
    drug: str
    message: str  # one sentence a physician reads, with the numbers
    evidence: list[str] = []  # FHIR references it rests on
    source: str  # where the rule comes from (label, guideline, reference)
