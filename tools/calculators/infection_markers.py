"""infection_markers: procalcitonin, CRP and white-cell differential read as a bacterial or viral pattern."""

from __future__ import annotations

from medconsult.clinical.markers import MARKER_INPUTS, MarkerResult, interpret_markers
from medconsult.tools.base import Evidence, ToolResult
from medconsult.tools.calculators.common import CalculatorTool, Reading
from medconsult.tools.fhir.common import PatientArgs


class MarkersReport(ToolResult, Reading, MarkerResult):
    def evidence(self) -> list[Evidence]:
        overall = Evidence(kind="score", text=f"infection markers: {self.pattern} ({self.rationale})")
        return [overall] + [
            Evidence(kind="score", text=f"{s.finding}: {s.meaning}",  # sources: in the result and the report
                     resource=s.resources[0] if s.resources else None)
            for s in self.statements
        ]


class InfectionMarkersTool(CalculatorTool):
    name: str = "infection_markers"
    missing = "infection-marker interpretation"
    description: str = (
        "Procalcitonin, CRP, white cells, neutrophils and lymphocytes within 48 h before the reference time, "
        "each read against its published threshold (ProHOSP procalcitonin algorithm, NICE CRP cut-offs), and a "
        "conservative overall pattern: favours bacterial, favours viral, indeterminate or insufficient data."
    )
    result_model = MarkersReport
    input_names = MARKER_INPUTS

    def execute(self, args: PatientArgs) -> MarkersReport:
        gathered = self.gather(args)
        result = interpret_markers(gathered.inputs)
        findings = "; ".join(s.finding for s in result.statements if s.weight != "context")
        summary = f"infection markers {result.pattern}" + (f": {findings}" if findings else "")
        return MarkersReport(summary=summary, reference_time=gathered.reference_time,
                             window_hours=gathered.window_hours, **result.model_dump())
