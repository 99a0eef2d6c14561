"""fhir_diagnostic_reports: laboratory panels, imaging and other reports with their conclusions."""

from __future__ import annotations

import base64
import binascii

from fhirclient.models.diagnosticreport import DiagnosticReport
from pydantic import BaseModel, Field

from medconsult.fhir.values import LOINC, code_in, concept_text, fhir_date, reference
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult
from medconsult.tools.fhir.common import PatientArgs

TEXT_KEPT = 1500  # characters of a report's text shown; the whole report stays on the server


class ReportArgs(PatientArgs):
    limit: int = Field(8, ge=1, le=50, description="at most this many reports, most recent first")


class ReportItem(BaseModel):
    resource: str
    display: str | None
    loinc: str | None
    category: list[str]
    status: str | None
    effective: str | None
    conclusion: str | None
    results: list[str]  # Observation references the report groups
    text: str | None = None  # presentedForm as plain text, when the server holds one


class DiagnosticReportsResult(ToolResult):
    reports: list[ReportItem]
    total_found: int

    def evidence(self) -> list[Evidence]:
        """Reports with a conclusion or text; a bare lab panel adds nothing its observations do not say."""
        return [
            Evidence(
                kind="report",
                text=f"{r.display or 'report'} ({r.status or 'status unknown'}) on {(r.effective or '?')[:10]}: "
                + (f"conclusion: {r.conclusion}" if r.conclusion else f"text: {r.text}"),
                resource=r.resource,
            )
            for r in self.reports
            if r.conclusion or r.text
        ]


class DiagnosticReportsTool(MedTool):
    name: str = "fhir_diagnostic_reports"
    description: str = "Diagnostic reports of a patient (lab panels, imaging reports) with conclusions, newest first."
    args_schema: type[BaseModel] = ReportArgs
    result_model = DiagnosticReportsResult
    stage = Stage.RECORD
    missing = "diagnostic reports"

    def execute(self, args: ReportArgs) -> DiagnosticReportsResult:
        params = {"patient": args.patient_id, "_sort": "-date", "_count": "100"}
        if args.as_of is not None:
            params["date"] = f"le{args.as_of.isoformat()}T23:59:59Z"
        found = [_item(r) for r in self.context.fhir.search(DiagnosticReport, params, limit=500)]
        found.sort(key=lambda r: r.effective or "", reverse=True)
        items = found[: args.limit]
        summary = f"{len(items)} most recent of {len(found)} diagnostic report(s)"
        return DiagnosticReportsResult(summary=summary, reports=items, total_found=len(found))


def _item(report: DiagnosticReport) -> ReportItem:
    return ReportItem(
        resource=reference(report),
        display=concept_text(report.code),
        loinc=code_in(report.code, LOINC),
        category=[c for c in (concept_text(x) for x in report.category or []) if c],
        status=report.status,
        effective=fhir_date(report.effectiveDateTime)
        or (fhir_date(report.effectivePeriod.start) if report.effectivePeriod else None),
        conclusion=report.conclusion,
        results=[r.reference for r in report.result or [] if r.reference],
        text=_presented_text(report),
    )


def _presented_text(report: DiagnosticReport) -> str | None:
    for attachment in report.presentedForm or []:
        if attachment.data and (attachment.contentType or "").startswith("text/"):
            return decode_text(attachment.data)[:TEXT_KEPT]
    return None


def decode_text(data: str) -> str:
    """Base64 attachment data as text; undecodable bytes are replaced rather than failing the whole read."""
    try:
        return base64.b64decode(data).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return "(attachment text not decodable)"
