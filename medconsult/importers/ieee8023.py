"""The ieee8023 COVID-19 chest X-ray data set: `metadata.csv` (one row per image) and the images it names.

- `offset` counts days since symptom onset or admission: the patient's day 0. A row without one goes on day 0.
- The vital-sign/lab columns are per row, but a value repeated on several rows of a patient is one measurement
  copied to each (SpO2 on admission, say): it is kept once, on the earliest of those days.
- `clinical_notes` become masked notes (masking.py). Values stated only in a note are read from its kept sentences
  (notes.py) for analytes the structured columns do not give for that patient, dated on the first day whose note
  states them.
- `url`, `doi`, `license`, `other_notes` (attribution) and the outcome flags go to the case file's label only:
  urls and file names name the diagnosis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medconsult.importers.masking import mask_note
from medconsult.importers.model import ClinicalNote, ImageRecord, ImportReport, Measurement, PatientRecord
from medconsult.importers.notes import METHOD_TEXT, NOTE_TEXT, extract_values
from medconsult.importers.radiograph import NotUsable, View, dicom_modality, frontal_view, unique_id
from medconsult.importers.table import Row, parse_day, parse_flag, parse_gender, rows_by_patient, slug
from medconsult.importers.timeline import Timeline, birth_date_for_age
from medconsult.importers.values import canonical_value, cell_number

DATASET = "ieee8023"
CSV_NAME = "metadata.csv"
REQUIRED = ("patientid", "image")
# column -> (analyte, UCUM unit of the column); counts are 10^3/uL, pO2_saturation is pulse-oximetry SpO2
STRUCTURED: dict[str, tuple[str, str]] = {
    "temperature": ("temperature", "Cel"),
    "pO2_saturation": ("spo2", "%"),
    "leukocyte_count": ("leukocytes", "10*3/uL"),
    "neutrophil_count": ("neutrophils", "10*3/uL"),
    "lymphocyte_count": ("lymphocytes", "10*3/uL"),
}
OUTCOME_FLAGS = ("survival", "intubated", "intubation_present", "went_icu", "in_icu", "needed_supplemental_O2",
                 "extubated")
PROVENANCE = {"url": "url", "doi": "doi", "license": "license", "attribution": "other_notes",
              "source_image": "image", "location": "location", "published": "date"}
EXPECTED = ("offset", "sex", "age", "finding", "view", "modality", "clinical_notes", *STRUCTURED, *OUTCOME_FLAGS,
            "url", "doi", "license", "other_notes")


@dataclass(frozen=True)
class SourceImage:
    """One usable row: its image exists and is a frontal radiograph."""

    row: Row
    path: Path
    day: int
    day_stated: bool
    view: View
    modality: str


def read_patients(source: Path, timeline: Timeline, report: ImportReport) -> list[PatientRecord]:
    by_patient = rows_by_patient(source, CSV_NAME, REQUIRED, EXPECTED, "patientid", _usable_image, report)
    return [_patient(pid, images, timeline, report) for pid, images in by_patient.items()]


def _usable_image(source: Path, row: Row, report: ImportReport) -> SourceImage | None:
    if not slug(row.text("patientid")):
        report.skip_row(row.number, "no patientid")
        return None
    path = _image_path(source, row.text("image"))
    if path is None:
        report.skip_row(row.number, f"image file not found: {row.text('image') or '(empty cell)'}")
        return None
    try:
        view = frontal_view(row.text("view"))
        modality = dicom_modality(row.text("modality"))
    except NotUsable as reason:
        report.skip_row(row.number, str(reason))
        return None
    try:
        offset = parse_day(row.text("offset"))
    except ValueError:
        report.skip_value("offset: not a whole number of days")
        offset = None
    if offset is None:
        report.warnings["offset not stated: image placed on day 0"] += 1
    return SourceImage(row, path, offset or 0, offset is not None, view, modality)


def _image_path(source: Path, value: str) -> Path | None:
    if not value:
        return None
    for candidate in (source / value, source / "images" / Path(value).name):
        if candidate.is_file():
            return candidate
    return None


def _patient(pid: str, images: list[SourceImage], timeline: Timeline, report: ImportReport) -> PatientRecord:
    images = sorted(images, key=lambda i: (i.day, i.row.number))
    patient = PatientRecord(DATASET, f"{DATASET}-{pid}")
    patient.gender = next((g for i in images if (g := parse_gender(i.row.text("sex"))) != "unknown"), "unknown")
    age = _stated_age(images, report)
    if age is not None:
        patient.birth_date = birth_date_for_age(age, timeline.date_of(images[0].day))
    structured = _structured_measurements(images, report)
    noted = _note_measurements(images, {m.analyte for m in structured}, report)
    patient.measurements = structured + noted
    patient.notes = _notes(images, report)
    patient.images = _image_records(patient.source_id, pid, images)
    return patient


def _stated_age(images: list[SourceImage], report: ImportReport) -> int | None:
    for image in images:
        age = cell_number(image.row, "age", report)
        if age is None:
            continue
        if math.isfinite(age) and 0 <= age <= 120:
            return int(age)
        report.skip_value("age: not a plausible age")
    return None


def _structured_measurements(images: list[SourceImage], report: ImportReport) -> list[Measurement]:
    first_day: dict[tuple[str, float], int] = {}
    for image in images:  # earliest first, so setdefault keeps the earliest day of a repeated value
        for column, (analyte, unit) in STRUCTURED.items():
            raw = cell_number(image.row, column, report)
            if raw is None:
                continue
            if not math.isfinite(raw):
                report.skip_value(f"{column}: infinite value")
                continue
            if analyte == "temperature" and raw > 80:  # written in Fahrenheit
                unit = "[degF]"
            value = canonical_value(analyte, raw, unit, column, report)
            if value is not None:
                first_day.setdefault((analyte, value), image.day)
    return [Measurement(analyte, value, day) for (analyte, value), day in first_day.items()]


def _note_measurements(
    images: list[SourceImage], structured_analytes: set[str], report: ImportReport
) -> list[Measurement]:
    first_day: dict[tuple[str, float], int] = {}
    ambiguous: set[str] = set()
    for image in images:
        # Only from the sentences the masker keeps: a withheld one may state a later value ("CRP rose to 300").
        extraction = extract_values(mask_note(image.row.text("clinical_notes")).text)
        ambiguous.update(extraction.ambiguous)
        for value in extraction.values:
            if value.analyte not in structured_analytes:
                first_day.setdefault((value.analyte, value.value), image.day)
    for analyte in sorted(ambiguous - structured_analytes):
        report.skip_value(f"{analyte} in a note: several different values, none taken")
    return [
        Measurement(analyte, value, day, note=NOTE_TEXT, method=METHOD_TEXT, from_note=True)
        for (analyte, value), day in first_day.items()
        if analyte not in ambiguous
    ]


def _notes(images: list[SourceImage], report: ImportReport) -> list[ClinicalNote]:
    first_day: dict[str, int] = {}
    for image in images:
        text = image.row.text("clinical_notes")
        if not text:
            continue
        masked = mask_note(text)
        if masked.text not in first_day:
            first_day[masked.text] = image.day
            report.withheld_sentences.update(masked.withheld)
    return [ClinicalNote(day, text) for text, day in first_day.items()]


def _image_records(identifier: str, pid: str, images: list[SourceImage]) -> list[ImageRecord]:
    taken: set[str] = set()
    records = []
    for number, image in enumerate(images, start=1):
        case_id = unique_id(f"{identifier}-d{image.day}" if image.day_stated else f"{identifier}-{number}", taken)
        day = f"day {image.day}" if image.day_stated else "day not stated"
        view = f"{image.view.position}{' supine' if image.view.supine else ''}" or "view not stated"
        description = f"{DATASET} data set, patient {pid}, chest radiograph ({view}), {day}"
        records.append(ImageRecord(case_id, image.path, image.row.number, image.day, image.view.position,
                                   image.view.supine, image.modality, description, _label(image)))
    return records


def _label(image: SourceImage) -> dict[str, Any]:
    row = image.row
    label: dict[str, Any] = {"dataset": DATASET, "finding": row.text("finding") or None}
    label.update({flag: parse_flag(row.text(flag)) for flag in OUTCOME_FLAGS})
    label["offset_stated"] = image.day_stated
    label["source"] = {key: row.text(column) for key, column in PROVENANCE.items() if row.text(column)}
    label["source"]["csv_row"] = row.number
    return label
