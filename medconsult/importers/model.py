"""What an importer reads out of a data set, before it becomes FHIR resources, DICOM files and case files.

Days are whole days relative to the patient's day 0 (see `timeline`); values are in the canonical UCUM unit of
their analyte in `medconsult.clinical.codes`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any, Literal

Interpretation = Literal["H", "L", "N"]


@dataclass(frozen=True)
class ReferenceRange:
    low: float | None = None
    high: float | None = None
    text: str | None = None
    high_exclusive: bool = False  # "< 248 U/L": 248 itself is already high

    def interpret(self, value: float, comparator: str | None = None) -> Interpretation | None:
        """H/L/N for a value; a censored value (`<`/`>`) only when the bound alone decides it."""
        if comparator == "<":
            return "L" if self.low is not None and value <= self.low else None
        if comparator == ">":
            return "H" if self.high is not None and value >= self.high else None
        if self.low is not None and value < self.low:
            return "L"
        if self.high is not None and (value > self.high or (self.high_exclusive and value >= self.high)):
            return "H"
        return "N"


@dataclass(frozen=True)
class Measurement:
    analyte: str  # key of medconsult.clinical.codes.ANALYTES
    value: float  # in the analyte's canonical unit
    day: int
    comparator: str | None = None  # "<" or ">" for a value beyond a known detection limit
    reference: ReferenceRange | None = None
    note: str | None = None
    method: str | None = None
    from_note: bool = False


@dataclass(frozen=True)
class ClinicalNote:
    day: int
    text: str  # already masked


@dataclass
class ImageRecord:
    case_id: str
    source: Path
    row: int  # line of the source CSV
    day: int
    view: str  # "PA", "AP" or "" (not stated)
    supine: bool
    modality: str  # DICOM modality: DX, CR
    description: str
    label: dict[str, Any]


# The record's identifier system. Neutral on purpose: an agent that read a data set's name in an identifier could
# answer from it (every Hannover patient has COVID-19).
MRN_SYSTEM = "urn:medconsult:mrn"


def pseudonymous_mrn(source_id: str) -> str:
    """A medical record number that says nothing about the data set or the source's patient id."""
    return "MRN-" + hashlib.sha256(source_id.encode()).hexdigest()[:10].upper()


@dataclass
class PatientRecord:
    dataset: str
    source_id: str  # "<data set>-<patient id in the source>": names case ids and files, never reaches the record
    gender: str = "unknown"
    birth_date: date | None = None
    population: str | None = None  # "adult" / "paediatric" where the source states the cohort, not the age
    question: str | None = None  # the referral's question, where the source says more than the default
    measurements: list[Measurement] = field(default_factory=list)
    notes: list[ClinicalNote] = field(default_factory=list)
    images: list[ImageRecord] = field(default_factory=list)

    @property
    def identifier(self) -> str:
        """The MRN on the FHIR Patient, in the DICOM files and as the case files' `patient`."""
        return pseudonymous_mrn(self.source_id)


@dataclass
class ImportReport:
    """Counts of what was imported and what was left out, and why; written as import-report.json."""

    dataset: str
    source: str
    out: str
    anchor: str
    rows: int = 0
    patients: int = 0
    images: int = 0
    cases: int = 0
    notes: int = 0
    observations: int = 0
    observations_by_analyte: Counter[str] = field(default_factory=Counter)
    values_from_notes: Counter[str] = field(default_factory=Counter)
    skipped_values: Counter[str] = field(default_factory=Counter)
    skipped_rows: list[dict[str, Any]] = field(default_factory=list)
    withheld_sentences: Counter[str] = field(default_factory=Counter)
    missing_optional_columns: list[str] = field(default_factory=list)
    warnings: Counter[str] = field(default_factory=Counter)
    case_records: list[dict[str, Any]] = field(default_factory=list)
    load: dict[str, Any] | None = None
    elapsed_s: float = 0.0

    def skip_value(self, reason: str) -> None:
        self.skipped_values[reason] += 1

    def skip_row(self, row: int, reason: str) -> None:
        self.skipped_rows.append({"row": row, "reason": reason})

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it would rebuild each Counter from its (key, count) pairs.
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: dict(sorted(v.items())) if isinstance(v, Counter) else v for k, v in data.items()}
