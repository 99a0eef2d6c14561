"""curb65: CURB-65 severity of community-acquired pneumonia from the record (Lim 2003)."""

from __future__ import annotations

from medconsult.clinical.scores import CURB65_INPUTS, Inputs, ScoreResult, curb65
from medconsult.tools.calculators.common import ScoreTool


class Curb65Tool(ScoreTool):
    name: str = "curb65"
    missing = "CURB-65 score"
    description: str = (
        "CURB-65 for community-acquired pneumonia: confusion, BUN > 19 mg/dL, respiratory rate >= 30, SBP < 90 or "
        "DBP <= 60, age >= 65, from the latest values within 48 h before the reference time. Reports each "
        "criterion with its FHIR source, the possible range when inputs are missing, and the risk group with "
        "30-day mortality and place of care when the range determines it."
    )
    input_names = CURB65_INPUTS

    def calculate(self, inputs: Inputs) -> ScoreResult:
        return curb65(inputs)
