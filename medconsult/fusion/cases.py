"""Every labelled case the fusion model and the reference library may use, with whatever modalities it has.

- Kermany (CC BY 4.0): paediatric radiographs, normal / bacterial / viral; no record text, no measurements.
- Hannover (CC BY 3.0): adult COVID-19 radiographs with labs; no record text.
- ieee8023 development part (CC BY-NC-SA, optional): adult radiographs of many causes, masked notes, age, vitals
  and labs. The project works without it; what it adds is marked `noncommercial`.

Never the sealed evaluation set: only the folders named here are read. Record text is the importers' masked notes
(sentences naming a cause withheld), read only up to the image's day, so a later event cannot leak the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medconsult.clinical.etiology import ETIOLOGIES, etiology_class
from medconsult.fusion.paediatric import CLASSES as PAEDIATRIC_CLASSES
from medconsult.fusion.paediatric import FOLDER as KERMANY_FOLDER
from medconsult.fusion.paediatric import read_manifest
from medconsult.importers import hannover, ieee8023
from medconsult.importers.model import ImportReport, PatientRecord
from medconsult.importers.timeline import DEFAULT_ANCHOR, Timeline, age_on

HANNOVER_FOLDER = "cxr_hannover_covid"
IEEE8023_FOLDER = "cxr_ieee8023_ncsa"
PAEDIATRIC_AGE_BAND = "1-5 years"  # Kermany: children aged one to five (the source's cohort description)


@dataclass(frozen=True)
class ReferenceCase:
    case_id: str
    patient_group: str  # never split across training and testing; never retrieved for itself
    source: str  # data set
    population: str  # "adult" or "paediatric"
    label: str  # one of ETIOLOGIES
    finding: str  # the source's label text, shown with a retrieved case
    image: Path
    history: str = ""  # masked notes up to the image's day
    age: int | None = None
    age_band: str | None = None
    measurements: dict[str, float] = field(default_factory=dict)  # analyte -> latest value up to the image's day
    noncommercial: bool = False


def reference_cases(data_dir: Path, *, include_noncommercial: bool = True) -> list[ReferenceCase]:
    """All usable labelled cases under `data_dir`; folders that are absent are skipped."""
    cases: list[ReferenceCase] = []
    if (data_dir / KERMANY_FOLDER / "manifest.csv").is_file():
        cases += kermany_cases(data_dir)
    if (data_dir / HANNOVER_FOLDER / "data.csv").is_file():
        cases += adult_cases(data_dir / HANNOVER_FOLDER, "hannover")
    if include_noncommercial and (data_dir / IEEE8023_FOLDER / "metadata.csv").is_file():
        cases += adult_cases(data_dir / IEEE8023_FOLDER, "ieee8023")
    return cases


def kermany_cases(data_dir: Path) -> list[ReferenceCase]:
    images = read_manifest(data_dir)
    return [
        ReferenceCase(
            case_id=f"kermany-{path.stem}", patient_group=f"kermany-{group}", source="kermany",
            population="paediatric", label=PAEDIATRIC_CLASSES[label], finding=PAEDIATRIC_CLASSES[label],
            image=path, age_band=PAEDIATRIC_AGE_BAND,
        )
        for path, label, group in zip(images.files, images.labels, images.groups, strict=True)
    ]


def adult_cases(folder: Path, dataset: str) -> list[ReferenceCase]:
    """One case per usable image whose label reads as an etiology class (an unspecified "Pneumonia" is left out)."""
    timeline = Timeline(DEFAULT_ANCHOR)
    report = ImportReport(dataset=dataset, source=str(folder), out="", anchor=DEFAULT_ANCHOR.isoformat())
    reader = {"hannover": hannover.read_patients, "ieee8023": ieee8023.read_patients}[dataset]
    cases = []
    for patient in reader(folder, timeline, report):
        for image in patient.images:
            finding = image.label.get("finding") or ("COVID-19" if dataset == "hannover" else "")
            label = etiology_class(finding)
            if label not in ETIOLOGIES:
                continue
            cases.append(_adult_case(patient, image, dataset, finding, label, timeline))
    return cases


def _adult_case(patient: PatientRecord, image, dataset: str, finding: str, label: str, timeline: Timeline):
    until = image.day if image.label.get("offset_stated", True) else max(
        [m.day for m in patient.measurements] + [n.day for n in patient.notes] + [image.day]
    )
    latest: dict[str, tuple[int, float]] = {}
    for m in patient.measurements:
        if m.day <= until and (m.analyte not in latest or m.day >= latest[m.analyte][0]):
            latest[m.analyte] = (m.day, m.value)
    age = age_on(patient.birth_date, timeline.date_of(image.day)) if patient.birth_date else None
    return ReferenceCase(
        case_id=image.case_id, patient_group=patient.source_id, source=dataset, population="adult",
        label=label, finding=finding, image=Path(image.source),
        history=" ".join(n.text for n in sorted(patient.notes, key=lambda n: n.day) if n.day <= until),
        age=age, age_band=age_band(age), measurements={k: v for k, (_, v) in latest.items()},
        noncommercial=dataset == "ieee8023",
    )


def age_band(age: int | None) -> str | None:
    if age is None:
        return None
    if age < 1:
        return "<1 year"
    if age <= 5:
        return PAEDIATRIC_AGE_BAND
    if age < 18:
        return "6-17 years"
    if age < 40:
        return "18-39 years"
    if age < 65:
        return "40-64 years"
    return "65+ years"


def population_of(age: int | None) -> str | None:
    """adult / paediatric from an age; None when it is unknown."""
    if age is None:
        return None
    return "paediatric" if age < 18 else "adult"
