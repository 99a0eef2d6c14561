"""What both fusion tools share: their arguments, and reading the case (radiograph and record) the encoders embed.

The record is read as it stood at `as_of`: age from the birth date, vitals and labs measured within 48 hours
(the calculators' rule), and the clinical notes dated on or before it. Note text is embedded as data: it moves a
vector, it never reaches an instruction.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fhirclient.models.documentreference import DocumentReference
from fhirclient.models.patient import Patient
from pydantic import BaseModel, Field, field_validator

from medconsult.clinical.gather import gather_inputs
from medconsult.fhir.values import fhir_date, on_or_before
from medconsult.fusion.modalities import ANALYTE_SCALES
from medconsult.imaging.io import check_chest_radiograph, read_radiograph
from medconsult.importers.model import MRN_SYSTEM
from medconsult.tools.base import ToolContext
from medconsult.tools.fhir.clinical_notes import note_text

if TYPE_CHECKING:  # the service loads torch and the reference library: only when a fusion tool runs, not when the
    # consult graph imports these tool classes to name them
    from medconsult.fusion.service import CaseView, FusionService

HISTORY_CHARS = 4000  # the text encoder reads 256 word pieces; more is never seen


class FusionArgs(BaseModel):
    image: str | None = Field(None, description="path of the chest radiograph (DICOM, PNG or JPEG)", max_length=1024)
    patient_id: str | None = Field(
        None, description="FHIR Patient id: adds the record's history, age, vitals and labs", max_length=128
    )
    as_of: date | None = Field(None, description="read the record as it stood at the end of this day")
    population: Literal["adult", "paediatric"] | None = Field(
        None, description="adult or paediatric; default: from the patient's age"
    )

    @field_validator("patient_id")
    @classmethod
    def _bare_id(cls, value: str | None) -> str | None:
        return value.strip().removeprefix("Patient/") if value else value


class RecordRead(BaseModel):
    """What was read from the record, with references, so the clinician sees what the estimate rests on."""

    age: int | None = None
    notes: list[str] = Field(default_factory=list)  # references of the notes embedded
    measurements: dict[str, float] = Field(default_factory=dict)
    references: list[str] = Field(default_factory=list)


def service(context: ToolContext) -> FusionService:
    """One service per tool context: the encoders load once per command, not once per call."""
    from medconsult.fusion.service import FusionService

    cached = context.__dict__.get("_fusion_service")
    if cached is None:
        cached = context.__dict__["_fusion_service"] = FusionService(context.settings)
    return cached


def case_view(context: ToolContext, args: FusionArgs) -> tuple[CaseView, RecordRead]:
    from medconsult.fusion.service import CaseView

    if args.image is None and args.patient_id is None:
        raise ValueError("give an image, a patient_id, or both")
    image = None
    if args.image is not None:
        radiograph = read_radiograph(Path(args.image))  # a clear error for a missing or corrupt file
        check_chest_radiograph(radiograph)  # refuses what is clearly not a chest radiograph
        image = radiograph.path
    record, history, mrn = RecordRead(), "", None
    if args.patient_id:
        record, history = _read_record(context, args.patient_id, args.as_of)
        mrn = _mrn(context, args.patient_id)
    view = CaseView(image=image, history=history, age=record.age, measurements=record.measurements,
                    population=args.population, exclude_mrn=mrn)
    return view, record


def _read_record(context: ToolContext, patient_id: str, as_of: date | None) -> tuple[RecordRead, str]:
    gathered = gather_inputs(context.fhir, patient_id, ["age", *ANALYTE_SCALES], as_of=as_of)
    age = gathered.inputs["age"].value
    measurements = {
        name: float(i.value) for name, i in gathered.inputs.items() if name in ANALYTE_SCALES and not i.missing
    }
    references = sorted({r for i in gathered.inputs.values() if not i.missing for r in i.references()})
    found = context.fhir.search(DocumentReference, {"patient": patient_id, "status": "current"}, limit=100)
    notes = sorted((d for d in found if on_or_before(fhir_date(d.date), as_of)), key=lambda d: fhir_date(d.date) or "")
    texts = [(f"DocumentReference/{d.id}", t) for d in notes if (t := note_text(d))]
    record = RecordRead(age=int(age) if age is not None else None, notes=[r for r, _ in texts],
                        measurements=measurements, references=references + [r for r, _ in texts])
    return record, " ".join(t for _, t in texts)[:HISTORY_CHARS]


def _mrn(context: ToolContext, patient_id: str) -> str | None:
    """The patient's MRN: the reference library never returns this patient's own cases."""
    patient = context.fhir.read(Patient, patient_id)
    return next((i.value for i in patient.identifier or [] if i.system == MRN_SYSTEM), None)
