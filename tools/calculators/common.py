"""What the calculator tools share: reading the inputs from FHIR, the result models and their evidence.

A calculator tool reads its inputs with medconsult.clinical.gather (latest values within a recency window before
the reference time, with their FHIR references), computes the score with a pure function of
medconsult.clinical.scores, and returns the result with a one-line summary. Server errors propagate so that the
graph records the gap; missing inputs do not fail the tool, they widen the reported range.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from pydantic import BaseModel

from medconsult.clinical.gather import DEFAULT_WINDOW_HOURS, Gathered, gather_inputs
from medconsult.clinical.scores import EgfrResult, Inputs, ScoreResult
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult
from medconsult.tools.fhir.common import PatientArgs


class Reading(BaseModel):
    """When the record was read and how recent an input had to be."""

    reference_time: str
    window_hours: float


class ScoreReport(ToolResult, Reading, ScoreResult):
    def evidence(self) -> list[Evidence]:
        """One statement: the score, its criteria by status, and the risk group. Each criterion's detail, values and
        FHIR references stay in the result (and the report's scores table); the values are in the record's own
        lab and vital lines, which every prompt carries already."""
        return [Evidence(kind="score", text=score_statement(self), value=self.points)]


class EgfrReport(ToolResult, Reading, EgfrResult):
    def evidence(self) -> list[Evidence]:
        """One statement: the detail already names creatinine, age and sex; it cites the creatinine result."""
        text = f"eGFR (CKD-EPI 2021) {self.detail}"
        if self.category:
            text += f", KDIGO {self.category}"
        creatinine = next((i.resource for i in self.inputs if i.name == "creatinine"), None)
        return [Evidence(kind="score", text=text, resource=creatinine, value=self.egfr, unit=self.unit)]


def score_statement(result: ScoreResult) -> str:
    """Score, possible range, criteria and risk group in one line, e.g. "CURB-65 1 (possible range 1-3); met: age
    >= 65 (+1); not met: urea, blood pressure; unknown: confusion, respiratory_rate; risk group undetermined".

    Criteria absent from the record without a measured value (no comorbidity coded) are not listed. The source is
    in the result and the report's scores table: the statement goes into every prompt, where it would cost tokens."""
    if result.points is None:
        return f"{result.score_name} not computed: {result.undetermined}"
    text = f"{result.score_name} {result.points}"
    if not result.complete:
        text += f" (possible range {result.minimum}-{result.maximum})"
    met = [f"{c.name} ({'+' if c.points >= 0 else ''}{c.points})" for c in result.criteria if c.status == "met"]
    not_met = [c.name for c in result.criteria if c.status == "not met" and c.resources]
    for label, names in (("met", met), ("not met", not_met), ("unknown", [m.name for m in result.missing])):
        if names:
            text += f"; {label}: {', '.join(names)}"
    if result.interpretation is not None:
        text += f"; {result.interpretation.risk_group}"
        if result.interpretation.mortality:
            text += f", 30-day mortality {result.interpretation.mortality}"
    elif result.assumed_normal_interpretation is not None:
        text += f"; risk group undetermined, {result.assumed_normal_interpretation.risk_group} if unknowns are normal"
    elif result.undetermined:
        text += "; risk group undetermined"
    return text


def score_summary(result: ScoreResult) -> str:
    """e.g. "CURB-65 2 (range 2-3: confusion unknown), risk group undetermined: intermediate risk or high risk, ..."."""
    if result.points is None:
        return f"{result.score_name} not computed: {result.undetermined}"
    if all(c.status == "unknown" for c in result.criteria):
        return f"{result.score_name} not determined: no input available (range {result.minimum}-{result.maximum})"
    text = f"{result.score_name} {result.points}"
    if not result.complete:
        text += f" (range {result.minimum}-{result.maximum}: {', '.join(m.name for m in result.missing)} unknown)"
    if result.interpretation is not None:
        return f"{text}, {result.interpretation.risk_group}"
    text += f", {result.undetermined}" if result.undetermined else ""
    if result.assumed_normal_interpretation is not None:
        text += f"; {result.assumed_normal_interpretation.risk_group} with missing values taken as normal"
    return text


class CalculatorTool(MedTool):
    """Reads `input_names` for the patient and computes the result; subclasses say what to compute."""

    args_schema: type[BaseModel] = PatientArgs
    stage = Stage.SCORES
    input_names: ClassVar[tuple[str, ...]]
    window_hours: ClassVar[float] = DEFAULT_WINDOW_HOURS

    def gather(self, args: PatientArgs) -> Gathered:
        return gather_inputs(self.context.fhir, args.patient_id, self.input_names, as_of=args.as_of,
                             window_hours=self.window_hours)


class ScoreTool(CalculatorTool):
    result_model = ScoreReport

    @abstractmethod
    def calculate(self, inputs: Inputs) -> ScoreResult:
        """The score of the gathered inputs."""

    def execute(self, args: PatientArgs) -> ScoreReport:
        gathered = self.gather(args)
        result = self.calculate(gathered.inputs)
        return ScoreReport(summary=score_summary(result), reference_time=gathered.reference_time,
                           window_hours=gathered.window_hours, **result.model_dump())

