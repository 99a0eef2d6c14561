"""Writing the signed-off draft back to the FHIR server: a preliminary DiagnosticReport and a draft CarePlan.

Only after approval, and only when `fhir_write_back` is configured: the hospital decides whether machine drafts
belong in its record. Both resources stay preliminary/draft; a physician finalises them in the hospital's system.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from medconsult.fhir.client import FhirGateway

CONSULT_NOTE = {"system": "http://loinc.org", "code": "11488-4", "display": "Consult note"}


@dataclass(frozen=True)
class DraftPlan:
    """What the CarePlan carries: the working diagnosis and one line per planned action."""

    working_diagnosis: str
    activities: list[str]  # e.g. "[1] antimicrobial: amoxicillin 1 g orally three times daily"


def consult_bundle(
    patient_id: str, report_markdown: str, ranked: list[tuple[str, str]], plan: DraftPlan | None, reviewer: str,
    radiology_impression: str | None = None, imaging_studies: Sequence[str] = (),
) -> dict:
    """A transaction with the DiagnosticReport (the whole report, radiology draft included, as its presented form;
    `ranked` is the draft differential as (diagnosis, likelihood) pairs; the radiology draft's impression opens the
    conclusion, and the ImagingStudy resources it compared are referenced) and the CarePlan."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    subject = {"reference": f"Patient/{patient_id}"}
    report = {
        "resourceType": "DiagnosticReport",
        "status": "preliminary",
        "code": {"coding": [CONSULT_NOTE], "text": "Consult draft (medconsult)"},
        "subject": subject,
        "effectiveDateTime": now,
        "issued": now,
        "conclusion": (f"Radiograph (preliminary): {radiology_impression} " if radiology_impression else "")
        + _conclusion(ranked),
        "resultsInterpreter": [{"display": reviewer}],
        "presentedForm": [{
            "contentType": "text/markdown; charset=utf-8",
            "data": base64.b64encode(report_markdown.encode()).decode(),
            "title": "medconsult consult draft",
        }],
    }
    if imaging_studies:
        report["imagingStudy"] = [{"reference": reference} for reference in imaging_studies]
    entries = [_entry(report, "urn:uuid:6f2b0e47-0000-4000-8000-000000000001")]
    if plan is not None:
        care_plan = {
            "resourceType": "CarePlan",
            "status": "draft",
            "intent": "proposal",
            "title": f"Management of {plan.working_diagnosis}",
            "subject": subject,
            "created": now,
            "supportingInfo": [{"reference": "urn:uuid:6f2b0e47-0000-4000-8000-000000000001"}],
            "activity": [{"detail": {"status": "not-started", "description": line}} for line in plan.activities],
        }
        entries.append(_entry(care_plan, "urn:uuid:6f2b0e47-0000-4000-8000-000000000002"))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def write_consult(gateway: FhirGateway, bundle: dict) -> list[str]:
    """POST the transaction; returns the created resources' references."""
    response = gateway.post_json("", bundle)
    return [
        "/".join(e["response"]["location"].split("/_history")[0].split("/")[-2:])
        for e in response.get("entry", [])
        if e.get("response", {}).get("location")
    ]


def _conclusion(ranked: list[tuple[str, str]]) -> str:
    if not ranked:
        return "No differential was drafted."
    return "Draft differential: " + "; ".join(f"{diagnosis} ({likelihood})" for diagnosis, likelihood in ranked) + "."


def _entry(resource: dict, full_url: str) -> dict:
    return {"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
