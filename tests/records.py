"""Records planted on the real FHIR server by integration tests: one patient and one note, loaded as a transaction."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from medconsult.fhir.client import FhirGateway
from medconsult.fhir.loader import load_bundle_file

PATIENT_URN = "urn:uuid:00000000-0000-4000-8000-0000000000a1"


def load_patient_with_note(fhir_url: str, folder: Path, *, mrn: str, note: str, note_type: dict,
                           gender: str, birth_date: str, written: str = "2020-03-02T10:00:00Z") -> None:
    """Load a patient identified by `mrn` (system urn:test) whose chart holds one clinical note with `note` as text."""
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": mrn}],
               "gender": gender, "birthDate": birth_date}
    document = {"resourceType": "DocumentReference", "status": "current", "date": written, "type": note_type,
                "subject": {"reference": PATIENT_URN},
                "content": [{"attachment": {"contentType": "text/plain;charset=utf-8",
                                            "data": base64.b64encode(note.encode()).decode()}}]}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": PATIENT_URN, "resource": patient, "request": {"method": "POST", "url": "Patient"}},
        {"resource": document, "request": {"method": "POST", "url": "DocumentReference"}}]}
    path = folder / f"{mrn}.json"
    path.write_text(json.dumps(bundle))
    load_bundle_file(FhirGateway(fhir_url), path)
