"""The Hannover Medical School COVID-19 image repository: `data.csv` (one row per image) and `png/<image_id>.png`.

Offsets in a row are days relative to that row's image. `admission_offset` (<= 0: admitted that many days before)
ties a patient's images together: day 0 is the admission day, the image lies on day -admission_offset, and each
lab on image day + its own offset. The same lab result repeated on several rows then falls on the same day and
is kept once. Lab values are published as intervals (binned) and carry the reference ranges of the source's
readme; `-inf`/`inf` (below/above the detection limit) need a known limit to become `<`/`>` values, and the
readme gives none, so they are skipped and counted. Outcomes (ICU, death) go to the case file's label only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medconsult.clinical.codes import ANALYTES
from medconsult.importers.model import ImageRecord, ImportReport, Measurement, PatientRecord, ReferenceRange
from medconsult.importers.radiograph import NotUsable, View, dicom_modality, frontal_view, unique_id
from medconsult.importers.table import Row, parse_day, parse_gender, rows_by_patient, slug
from medconsult.importers.timeline import Timeline
from medconsult.importers.values import canonical_value, cell_number

DATASET = "hannover"
CSV_NAME = "data.csv"
IMAGE_FOLDER = "png"
REQUIRED = ("patient_id", "image_id")
FINDING = "COVID-19"  # the readme: every patient of the repository is COVID-19 positive
PROVENANCE = {
    "url": "https://github.com/ml-workgroup/covid-19-image-repository",
    "doi": "10.6084/m9.figshare.12275009",
    "license": "CC BY 3.0",
    "attribution": "Institute for Diagnostic and Interventional Radiology, Hannover Medical School "
    "(COVID-19 Image Repository)",
}


@dataclass(frozen=True)
class LabColumn:
    prefix: str  # the columns "<prefix>_val" and "<prefix>_offset"
    analyte: str | None  # key in codes.ANALYTES; None: no analyte there
    unit: str  # UCUM unit of the source's values
    step: float  # width of the source's intervals
    reference: ReferenceRange | None = None
    detection_limits: tuple[float | None, float | None] = (None, None)  # (lower, upper): None, not documented


# Units, reference ranges and interval widths: the feature table of the source's readme.
LABS: tuple[LabColumn, ...] = (
    LabColumn("ldh", "ldh", "U/L", 5, ReferenceRange(high=248, text="< 248 U/L", high_exclusive=True)),
    LabColumn("crp", "crp", "mg/L", 1, ReferenceRange(high=5, text="<= 5 mg/L")),
    LabColumn("d-dimer", "d_dimer", "mg/L", 0.1, ReferenceRange(low=0, high=0.5, text="0 - 0.5 mg/L FEU")),
    # Coagulation factor XIII (the readme's name; the CSV says factor_xii): codes.py has no analyte for it.
    LabColumn("factor_xii", None, "%", 5, ReferenceRange(low=70, high=140, text="70 - 140 %")),
    LabColumn("neutrophils", "neutrophils", "10*3/uL", 0.1, ReferenceRange(1.5, 7.7, "1.5 - 7.7 10^3/uL")),
    LabColumn("lymphocytes", "lymphocytes", "10*3/uL", 0.1, ReferenceRange(1.1, 4.0, "1.1 - 4.0 10^3/uL")),
    LabColumn("po2", "po2", "mm[Hg]", 5),
    LabColumn("pco2", "pco2", "mm[Hg]", 5),
)
OUTCOME_OFFSETS = ("icu_admission_offset", "icu_release_offset", "death_offset")
EXPECTED = ("sex", "admission_offset", *OUTCOME_OFFSETS, "modality", "projection",
            *(f"{lab.prefix}_{part}" for lab in LABS for part in ("offset", "val")))


@dataclass(frozen=True)
class SourceImage:
    row: Row
    path: Path
    image_id: str
    day: int
    view: View
    modality: str


def read_patients(source: Path, timeline: Timeline, report: ImportReport) -> list[PatientRecord]:
    by_patient = rows_by_patient(source, CSV_NAME, REQUIRED, EXPECTED, "patient_id", _usable_image, report)
    return [_patient(pid, images, report) for pid, images in by_patient.items()]


def _usable_image(source: Path, row: Row, report: ImportReport) -> SourceImage | None:
    pid, image_id = slug(row.text("patient_id")), slug(row.text("image_id"))
    if not pid or not image_id:
        report.skip_row(row.number, "no patient_id or image_id")
        return None
    path = source / IMAGE_FOLDER / f"{row.text('image_id')}.png"
    if not path.is_file():
        report.skip_row(row.number, f"image file not found: {IMAGE_FOLDER}/{row.text('image_id')}.png")
        return None
    try:
        view = frontal_view(row.text("projection"))
        modality = dicom_modality(row.text("modality"))
    except NotUsable as reason:
        report.skip_row(row.number, str(reason))
        return None
    admission = _offset(row, "admission_offset", report)
    if admission is None:
        report.warnings["admission_offset not stated: image placed on day 0"] += 1
    return SourceImage(row, path, image_id, -(admission or 0), view, modality)


def _offset(row: Row, column: str, report: ImportReport) -> int | None:
    try:
        return parse_day(row.text(column))
    except ValueError:
        report.skip_value(f"{column}: not a whole number of days")
        return None


def _patient(pid: str, images: list[SourceImage], report: ImportReport) -> PatientRecord:
    images = sorted(images, key=lambda i: (i.day, i.row.number))
    patient = PatientRecord(DATASET, f"{DATASET}-{pid}")
    patient.gender = next((g for i in images if (g := parse_gender(i.row.text("sex"))) != "unknown"), "unknown")
    seen: set[tuple[str, int, float, str | None]] = set()
    for image in images:
        for measurement in _lab_measurements(image, report):
            key = (measurement.analyte, measurement.day, measurement.value, measurement.comparator)
            if key not in seen:
                seen.add(key)
                patient.measurements.append(measurement)
    taken: set[str] = set()
    patient.images = [_image_record(patient.source_id, pid, image, taken, report) for image in images]
    return patient


def _lab_measurements(image: SourceImage, report: ImportReport) -> list[Measurement]:
    measurements = []
    for lab in LABS:
        column = f"{lab.prefix}_val"
        raw = cell_number(image.row, column, report)
        if raw is None:
            continue
        if lab.analyte is None:
            report.skip_value(f"{column}: no analyte in codes.py (coagulation factor XIII)")
            continue
        offset = _offset(image.row, f"{lab.prefix}_offset", report)
        if offset is None:
            report.skip_value(f"{column}: value without an offset")
            continue
        measurement = _lab_measurement(lab, lab.analyte, raw, image.day + offset, report)
        if measurement is not None:
            measurements.append(measurement)
    return measurements


def _lab_measurement(
    lab: LabColumn, analyte: str, raw: float, day: int, report: ImportReport
) -> Measurement | None:
    column, comparator = f"{lab.prefix}_val", None
    if math.isinf(raw):
        below = raw < 0
        limit = lab.detection_limits[0 if below else 1]
        if limit is None:
            side = "below" if below else "above"
            report.skip_value(f"{column}: {side} the detection limit, which the source does not state")
            return None
        raw, comparator = limit, "<" if below else ">"
    value = canonical_value(analyte, raw, lab.unit, column, report)
    if value is None:
        return None
    note = (f"Published by the source as an interval {lab.step:g} {ANALYTES[analyte].unit} wide "
            "(identity protection); value as published.")
    return Measurement(analyte, value, day, comparator, lab.reference, note=note)


def _image_record(
    identifier: str, pid: str, image: SourceImage, taken: set[str], report: ImportReport
) -> ImageRecord:
    case_id = unique_id(f"{identifier}-{image.image_id}", taken)
    view = f"{image.view.position}{' supine' if image.view.supine else ''}" or "view not stated"
    description = f"{DATASET} data set, patient {pid}, chest radiograph ({view}), hospital day {image.day}"
    return ImageRecord(case_id, image.path, image.row.number, image.day, image.view.position, image.view.supine,
                       image.modality, description, _label(image, report))


def _label(image: SourceImage, report: ImportReport) -> dict[str, Any]:
    icu, release, death = (_offset(image.row, column, report) for column in OUTCOME_OFFSETS)
    return {
        "dataset": DATASET,
        "finding": FINDING,
        "went_icu": icu is not None,
        "in_icu_at_image": icu is not None and icu <= 0 and (release is None or release >= 0),
        "days_to_icu_admission": icu,
        "days_to_icu_release": release,
        "died": death is not None,
        "days_to_death": death,
        "hospital_day": image.day,
        "source": {**PROVENANCE, "source_image": f"{IMAGE_FOLDER}/{image.row.text('image_id')}.png",
                   "csv_row": image.row.number},
    }
