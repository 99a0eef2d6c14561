"""The files an import writes into the cases folder.

    <case id>.yaml          one case per image (CaseFile: id, patient (the MRN), images, as_of, synthetic_dates,
                            question, description, label (with the source's patient, for evaluation))
    images/<case id>.dcm    the radiograph as DICOM, named after the case, never after the source file
    fhir/<source id>.json   one transaction Bundle per patient (file names are bookkeeping: the record itself
                            carries a pseudonymous MRN, never the data set's name)
    import-report.json      counts, skipped rows and values with reasons, timing
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from medconsult.importers.model import ImageRecord, ImportReport, PatientRecord
from medconsult.importers.timeline import Timeline

QUESTION = "Differential diagnosis and management for this patient's chest radiograph and record"
REPORT_NAME = "import-report.json"
CASE_HEADER = (
    "# Written by `medconsult cases import`. `as_of` is the image's day: later records are hidden from the consult.\n"
    "# `label` is the reference answer and provenance, for evaluation only: CaseFile.to_case() drops it.\n"
)


def image_path(out: Path, image: ImageRecord) -> Path:
    return out / "images" / f"{image.case_id}.dcm"


def bundle_path(out: Path, patient: PatientRecord) -> Path:
    return out / "fhir" / f"{patient.source_id}.json"


def write_bundle(out: Path, patient: PatientRecord, bundle: dict[str, Any]) -> Path:
    path = bundle_path(out, patient)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bundle, indent=1))
    return path


def case_document(patient: PatientRecord, image: ImageRecord, timeline: Timeline) -> dict[str, Any]:
    return {
        "id": image.case_id,
        "description": image.description,
        "patient": patient.identifier,
        "images": [f"images/{image.case_id}.dcm"],  # relative to the case file
        "as_of": timeline.date_of(image.day).isoformat(),
        "synthetic_dates": True,  # day 0 is the import's anchor, not a real calendar date
        "question": patient.question or QUESTION,
        **({"population": patient.population} if patient.population else {}),
        "label": {**image.label, "patient": patient.source_id},
    }


def write_case_file(out: Path, patient: PatientRecord, image: ImageRecord, timeline: Timeline) -> Path:
    path = out / f"{image.case_id}.yaml"
    text = yaml.safe_dump(case_document(patient, image, timeline), sort_keys=False, allow_unicode=True, width=110)
    path.write_text(CASE_HEADER + text)
    return path


def write_report(out: Path, report: ImportReport) -> Path:
    path = out / REPORT_NAME
    path.write_text(json.dumps(report.to_json(), indent=1, default=str))
    return path
