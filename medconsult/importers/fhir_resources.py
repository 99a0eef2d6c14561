"""FHIR R4 resources for one imported patient, as a transaction Bundle with urn:uuid references.

Every fullUrl is a uuid5 of the patient's identifier and the entry's role, so a re-import writes the same bundle.
Observations carry the LOINC code, display and canonical UCUM unit of `medconsult.clinical.codes`.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from medconsult.clinical.codes import ANALYTES, LOINC_SYSTEM, UCUM_SYSTEM
from medconsult.importers.model import (
    MRN_SYSTEM,
    ClinicalNote,
    ImageRecord,
    Measurement,
    PatientRecord,
    ReferenceRange,
)
from medconsult.importers.timeline import Timeline

NAMESPACE = uuid.UUID("6f1c3a52-5d0e-4f57-9a53-3f0c1f3e8a11")  # medconsult importers
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DICOM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED_SYSTEM = "http://snomed.info/sct"
INTERPRETATIONS = {"H": "High", "L": "Low", "N": "Normal"}
CATEGORY_DISPLAY = {"laboratory": "Laboratory", "vital-signs": "Vital Signs"}
NOTE_TYPE = {"system": LOINC_SYSTEM, "code": "34117-2", "display": "History and physical note"}
SECONDARY_CAPTURE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"
CHEST = {"system": SNOMED_SYSTEM, "code": "51185008", "display": "Chest"}  # DICOM CID 4031 for CHEST


@dataclass(frozen=True)
class DicomUids:
    study: str
    series: str
    instance: str


def stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def dicom_uids(case_id: str) -> DicomUids:
    """Deterministic DICOM UIDs under the 2.25 (UUID-derived) root."""
    return DicomUids(*(f"2.25.{uuid.UUID(stable_uuid(case_id, role)).int}" for role in ("study", "series", "sop")))


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 4)


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": _number(value), "unit": unit, "system": UCUM_SYSTEM, "code": unit}


def patient_resource(patient: PatientRecord) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": MRN_SYSTEM, "value": patient.identifier}],
        "name": [{"use": "anonymous", "text": patient.identifier}],
        "gender": patient.gender,
    }
    if patient.birth_date is not None:
        resource["birthDate"] = patient.birth_date.isoformat()
    return resource


def observation_resource(measurement: Measurement, subject: str, timeline: Timeline) -> dict[str, Any]:
    analyte = ANALYTES[measurement.analyte]
    quantity = _quantity(measurement.value, analyte.unit)
    if measurement.comparator:
        quantity["comparator"] = measurement.comparator
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": analyte.category,
                                  "display": CATEGORY_DISPLAY[analyte.category]}]}],
        "code": {"coding": [{"system": LOINC_SYSTEM, "code": analyte.loinc[0], "display": analyte.display}],
                 "text": analyte.name},
        "subject": {"reference": subject},
        "effectiveDateTime": timeline.instant(measurement.day, analyte.category),
        "valueQuantity": quantity,
    }
    if measurement.reference is not None:
        resource["referenceRange"] = [_reference_range(measurement.reference, analyte.unit)]
        flag = measurement.reference.interpret(measurement.value, measurement.comparator)
        if flag:
            resource["interpretation"] = [
                {"coding": [{"system": INTERPRETATION_SYSTEM, "code": flag, "display": INTERPRETATIONS[flag]}]}
            ]
    if measurement.method:
        resource["method"] = {"text": measurement.method}
    if measurement.note:
        resource["note"] = [{"text": measurement.note}]
    return resource


def _reference_range(reference: ReferenceRange, unit: str) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    if reference.low is not None:
        bounds["low"] = _quantity(reference.low, unit)
    if reference.high is not None:
        bounds["high"] = _quantity(reference.high, unit)
    if reference.text:
        bounds["text"] = reference.text
    return bounds


def document_resource(note: ClinicalNote, subject: str, timeline: Timeline) -> dict[str, Any]:
    instant = timeline.instant(note.day, "note")
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [NOTE_TYPE], "text": "Clinical history"},
        "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                                  "code": "clinical-note", "display": "Clinical Note"}]}],
        "subject": {"reference": subject},
        "date": instant,
        "description": "Clinical history from the case report (sentences that could give the answer away withheld)",
        "content": [{"attachment": {
            "contentType": "text/plain;charset=utf-8",
            "data": base64.b64encode(note.text.encode("utf-8")).decode("ascii"),
            "title": "Clinical history",
            "creation": instant,
        }}],
        "context": {"period": {"start": instant}},
    }


def imaging_study_resource(
    image: ImageRecord, uids: DicomUids, subject: str, timeline: Timeline
) -> dict[str, Any]:
    started = timeline.instant(image.day, "image")
    modality = {"system": DICOM_SYSTEM, "code": image.modality}
    view = f"{image.view} supine" if image.supine else image.view
    description = f"Chest radiograph{', ' + view + ' view' if view else ''}"
    return {
        "resourceType": "ImagingStudy",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{uids.study}"}],
        "status": "available",
        "modality": [modality],
        "subject": {"reference": subject},
        "started": started,
        "numberOfSeries": 1,
        "numberOfInstances": 1,
        "description": description,
        "series": [{
            "uid": uids.series,
            "number": 1,
            "modality": modality,
            "description": description,
            "numberOfInstances": 1,
            "bodySite": CHEST,
            "started": started,
            "instance": [{
                "uid": uids.instance,
                "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{SECONDARY_CAPTURE_SOP_CLASS}"},
                "number": 1,
                "title": description,
            }],
        }],
    }


def transaction_bundle(patient: PatientRecord, timeline: Timeline) -> dict[str, Any]:
    patient_url = f"urn:uuid:{stable_uuid(patient.identifier, 'Patient')}"
    entries = [_entry(patient_url, patient_resource(patient))]
    for m in patient.measurements:  # keyed by content, so a row added to the CSV later does not shift the others
        url = f"urn:uuid:{stable_uuid(patient.identifier, 'Observation', m.analyte, str(m.day), repr(m.value))}"
        entries.append(_entry(url, observation_resource(m, patient_url, timeline)))
    for note in patient.notes:
        text_key = hashlib.sha256(note.text.encode()).hexdigest()[:16]
        url = f"urn:uuid:{stable_uuid(patient.identifier, 'DocumentReference', str(note.day), text_key)}"
        entries.append(_entry(url, document_resource(note, patient_url, timeline)))
    for image in patient.images:
        url = f"urn:uuid:{stable_uuid(patient.identifier, 'ImagingStudy', image.case_id)}"
        entries.append(_entry(url, imaging_study_resource(image, dicom_uids(image.case_id), patient_url, timeline)))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _entry(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    """A PUT to the id derived from the fullUrl: loading again updates in place, and new rows are added."""
    resource_id = full_url.removeprefix("urn:uuid:")
    resource = {**resource, "id": resource_id}
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource_id}"}}
