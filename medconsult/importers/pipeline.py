"""One import: read a data set, write DICOM files, bundles and case files, optionally load the bundles.

Loading goes through `medconsult.fhir.loader`. Every entry is a PUT to an id derived from the content, so
importing the same folder twice adds nothing, and a CSV that gained rows adds just those.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from medconsult.fhir.client import FhirGateway
from medconsult.fhir.loader import load_bundle_file
from medconsult.imaging.io import ImageLoadError, NotAChestRadiograph, check_chest_radiograph, read_radiograph
from medconsult.importers import hannover, ieee8023, kermany
from medconsult.importers.dicom import RadiographTags, write_radiograph
from medconsult.importers.fhir_resources import dicom_uids, transaction_bundle
from medconsult.importers.model import ImageRecord, ImportReport, PatientRecord
from medconsult.importers.output import image_path, write_bundle, write_case_file, write_report
from medconsult.importers.timeline import DEFAULT_ANCHOR, TIME_OF_DAY, Timeline, age_on

Reader = Callable[[Path, Timeline, ImportReport], list[PatientRecord]]
FORMATS: dict[str, Reader] = {
    "ieee8023": ieee8023.read_patients, "hannover": hannover.read_patients, "kermany": kermany.read_patients,
}


def import_dataset(
    fmt: str, source: Path, out: Path, *, anchor: date = DEFAULT_ANCHOR, gateway: FhirGateway | None = None
) -> ImportReport:
    """Import `source` (a folder with the format's CSV and images) into `out`; load into `gateway` if given."""
    started = time.perf_counter()
    timeline = Timeline(anchor)
    report = ImportReport(dataset=fmt, source=str(source), out=str(out), anchor=anchor.isoformat())
    patients = FORMATS[fmt](source, timeline, report)
    out.mkdir(parents=True, exist_ok=True)
    bundles = []
    for patient in patients:
        patient.images = [i for i in patient.images if _write_image(out, patient, i, timeline, report)]
        if not patient.images:
            continue
        bundles.append(write_bundle(out, patient, transaction_bundle(patient, timeline)))
        for image in patient.images:
            write_case_file(out, patient, image, timeline)
        _count(patient, report)
    if gateway is not None:
        report.load = load_bundles(gateway, bundles)
    report.elapsed_s = round(time.perf_counter() - started, 2)
    write_report(out, report)
    return report


def _write_image(
    out: Path, patient: PatientRecord, image: ImageRecord, timeline: Timeline, report: ImportReport
) -> bool:
    """Write the DICOM file and read it back as the consult will; a file that fails is removed and counted."""
    target = image_path(out, image)
    study_date = timeline.date_of(image.day)
    tags = RadiographTags(
        patient_id=patient.identifier,
        sex=patient.gender,
        age_years=age_on(patient.birth_date, study_date) if patient.birth_date else None,
        study_date=study_date,
        study_time=TIME_OF_DAY["image"],
        modality=image.modality,
        view=image.view,
        supine=image.supine,
        description=f"Chest {image.view}{' supine' if image.supine else ''}".strip(),
    )
    try:
        write_radiograph(image.source, target, tags, dicom_uids(image.case_id))
        for warning in check_chest_radiograph(read_radiograph(target)):
            report.warnings[f"image check: {warning}"] += 1
    except (ImageLoadError, NotAChestRadiograph, OSError, ValueError) as error:
        target.unlink(missing_ok=True)
        report.skip_row(image.row, f"image not usable as a chest radiograph: {error}")
        return False
    return True




def _count(patient: PatientRecord, report: ImportReport) -> None:
    report.patients += 1
    report.images += len(patient.images)
    report.cases += len(patient.images)
    report.notes += len(patient.notes)
    report.observations += len(patient.measurements)
    for measurement in patient.measurements:
        report.observations_by_analyte[measurement.analyte] += 1
        if measurement.from_note:
            report.values_from_notes[measurement.analyte] += 1
    for image in patient.images:
        visible = [m for m in patient.measurements if m.day <= image.day]
        report.case_records.append({
            "id": image.case_id,
            "patient": patient.identifier,
            "source_patient": patient.source_id,
            "day": image.day,
            "observations_visible": len(visible),
            "analytes_visible": sorted({m.analyte for m in visible}),
            "notes_visible": sum(n.day <= image.day for n in patient.notes),
        })


def load_bundles(gateway: FhirGateway, bundles: list[Path]) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    created = failed = 0
    for path in bundles:
        result = load_bundle_file(gateway, path)
        statuses[result.status] += 1
        created += result.created
        failed += result.failed
    # Entries are PUTs to fixed ids: "written" counts creates and in-place updates alike.
    return {"server": gateway.base_url, "bundles_loaded": statuses["loaded"],
            "bundles_already_present": statuses["skipped"], "resources_written": created,
            "resources_failed": failed}
