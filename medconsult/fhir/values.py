"""Reading values out of FHIR resources (fhirclient models): references, codes, text, dates, age.

Shared by the record tools, the clinical calculators' input gathering and the importers.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


class Coding(BaseModel):
    system: str | None = None
    code: str | None = None
    display: str | None = None


def reference(resource) -> str:  # any fhirclient resource
    return f"{resource.resource_type}/{resource.id}"


def codings(concept) -> list[Coding]:  # fhirclient CodeableConcept
    if concept is None:
        return []
    return [Coding(system=c.system, code=c.code, display=c.display) for c in (concept.coding or [])]


def concept_text(concept) -> str | None:
    if concept is None:
        return None
    if concept.text:
        return concept.text
    return next((c.display or c.code for c in (concept.coding or []) if c.display or c.code), None)


def code_in(concept, system: str) -> str | None:
    return next((c.code for c in (concept.coding or []) if c.system == system), None) if concept else None


def fhir_date(value) -> str | None:  # fhirclient FHIRDate / FHIRDateTime
    return value.isostring if value is not None else None


def age_in_years(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def on_or_before(value: str | None, as_of: date | None) -> bool:
    """True when an ISO date(-time) falls on or before `as_of` (always true without `as_of`)."""
    return as_of is None or (value is not None and value[:10] <= as_of.isoformat())
