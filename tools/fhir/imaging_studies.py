"""fhir_imaging_studies: the patient's imaging studies (modality, date, body site, series and instances)."""

from __future__ import annotations

from typing import Any

from fhirclient.models.imagingstudy import ImagingStudy
from pydantic import BaseModel, Field

from medconsult.config import Settings
from medconsult.fhir.values import fhir_date, on_or_before, reference
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult
from medconsult.tools.fhir.common import PatientArgs


class ImagingStudyArgs(PatientArgs):
    limit: int = Field(10, ge=1, le=50, description="at most this many studies, most recent first")


class ImagingStudyItem(BaseModel):
    resource: str
    started: str | None
    status: str | None
    modalities: list[str]
    body_sites: list[str]
    description: str | None
    series: int
    instances: int
    study_uid: str | None


class ImagingStudiesResult(ToolResult):
    studies: list[ImagingStudyItem]

    def evidence(self) -> list[Evidence]:
        return [
            Evidence(
                kind="imaging-study",
                text=f"{'/'.join(s.modalities) or 'imaging'} study of {', '.join(s.body_sites) or 'unknown site'} "
                f"on {(s.started or '?')[:10]} ({s.series} series, {s.instances} instance(s))"
                + (f": {s.description}" if s.description else ""),
                resource=s.resource,
            )
            for s in self.studies
        ]


class ImagingStudiesTool(MedTool):
    name: str = "fhir_imaging_studies"
    description: str = "Imaging studies of a patient (DICOM modality, body site, date, series), newest first."
    args_schema: type[BaseModel] = ImagingStudyArgs
    result_model = ImagingStudiesResult
    stage = Stage.RECORD
    missing = "imaging studies"

    def consult_options(self, settings: Settings) -> dict[str, Any]:
        return {"limit": 3}

    def execute(self, args: ImagingStudyArgs) -> ImagingStudiesResult:
        found = [_item(s) for s in self.context.fhir.search(ImagingStudy, {"patient": args.patient_id})]
        found = [s for s in found if on_or_before(s.started, args.as_of)]
        found.sort(key=lambda s: s.started or "", reverse=True)
        items = found[: args.limit]
        summary = f"{len(items)} imaging stud{'y' if len(items) == 1 else 'ies'}"
        if items:
            summary += f", latest {(items[0].started or '?')[:10]} ({'/'.join(items[0].modalities) or '?'})"
        return ImagingStudiesResult(summary=summary, studies=items)


def _item(study: ImagingStudy) -> ImagingStudyItem:
    series = study.series or []
    modalities = {c.code for c in study.modality or [] if c.code} | {s.modality.code for s in series if s.modality}
    sites = {s.bodySite.display or s.bodySite.code for s in series if s.bodySite}
    uid = next((i.value for i in study.identifier or [] if i.system == "urn:dicom:uid"), None)
    return ImagingStudyItem(
        resource=reference(study),
        started=fhir_date(study.started),
        status=study.status,
        modalities=sorted(m for m in modalities if m),
        body_sites=sorted(s for s in sites if s),
        description=study.description,
        series=study.numberOfSeries or len(series),
        instances=study.numberOfInstances or sum(len(s.instance or []) for s in series),
        study_uid=uid.removeprefix("urn:oid:") if uid else None,
    )
