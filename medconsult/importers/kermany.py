"""The paediatric radiographs (cxr_kermany_pediatric_ccby): `manifest.csv` (image, label, patient) and `images/`.

Children aged 1-5 years of one hospital, labelled normal / bacterial / viral pneumonia by physicians. The source
gives nothing else: no birth date, sex, date, view, vital sign or laboratory value, so the record holds a neutral
patient with none of them (no value is invented) and the case file states the population, `paediatric`, as a
referrer would. Every image lies on day 0: the source does not order a child's films.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medconsult.importers.model import ImageRecord, ImportReport, PatientRecord
from medconsult.importers.radiograph import View, unique_id
from medconsult.importers.table import Row, read_table, slug
from medconsult.importers.timeline import Timeline

DATASET = "kermany"
CSV_NAME = "manifest.csv"
REQUIRED = ("image", "label", "patient")
# What the source tells a referrer about every child of the set (its cohort description), and nothing more.
QUESTION = (
    "A child aged 1-5 years (no weight recorded): differential diagnosis and management for this chest radiograph"
)
FINDINGS = {"normal": "Normal", "bacterial": "Bacterial pneumonia", "viral": "Viral pneumonia"}
PROVENANCE = {
    "doi": "10.17632/rscbjbr9sj.2",
    "license": "CC BY 4.0",
    "attribution": "Kermany D, Zhang K, Goldbaum M (2018), Labeled Optical Coherence Tomography (OCT) and Chest "
    "X-Ray Images for Classification, Mendeley Data V2",
}


@dataclass(frozen=True)
class SourceImage:
    row: Row
    path: Path


def read_patients(source: Path, timeline: Timeline, report: ImportReport) -> list[PatientRecord]:
    table = read_table(source, CSV_NAME, REQUIRED)
    report.rows = len(table.rows)
    by_patient: dict[str, list[SourceImage]] = {}
    for row in table.rows:
        image = _usable_image(source, row, report)
        if image is not None:
            by_patient.setdefault(slug(row.text("patient")), []).append(image)
    return [_patient(pid, images) for pid, images in by_patient.items()]


def _usable_image(source: Path, row: Row, report: ImportReport) -> SourceImage | None:
    if row.text("label") not in FINDINGS:
        report.skip_row(row.number, f"label not normal, bacterial or viral: {row.text('label')!r}")
        return None
    if not slug(row.text("patient")):
        report.skip_row(row.number, "no patient")
        return None
    path = source / row.text("image")
    if not path.is_file() or source.resolve() not in path.resolve().parents:
        report.skip_row(row.number, f"image file not found in the folder: {row.text('image')}")
        return None
    return SourceImage(row, path)


def _patient(pid: str, images: list[SourceImage]) -> PatientRecord:
    patient = PatientRecord(DATASET, f"{DATASET}-{pid}", population="paediatric", question=QUESTION)
    taken: set[str] = set()
    patient.images = [_image_record(patient.identifier, pid, image, taken) for image in images]
    return patient


def _image_record(identifier: str, pid: str, image: SourceImage, taken: set[str]) -> ImageRecord:
    case_id = unique_id(f"{identifier}-{image.path.stem}", taken)
    description = f"{DATASET} data set, patient {pid}, child aged 1-5 years, chest radiograph (view not stated)"
    return ImageRecord(case_id, image.path, image.row.number, 0, View("").position, False, "DX", description,
                       _label(image))


def _label(image: SourceImage) -> dict[str, Any]:
    return {
        "dataset": DATASET,
        "finding": FINDINGS[image.row.text("label")],
        "population": "paediatric",
        "source": {**PROVENANCE, "source_image": image.row.text("image"), "csv_row": image.row.number},
    }
