"""crb65: CRB-65, CURB-65 without urea, for pneumonia assessed without blood tests (Lim 2003; NICE CG191)."""

from __future__ import annotations

from medconsult.clinical.scores import CRB65_INPUTS, Inputs, ScoreResult, crb65
from medconsult.tools.calculators.common import ScoreTool


class Crb65Tool(ScoreTool):
    name: str = "crb65"
    missing = "CRB-65 score"
    description: str = (
        "CRB-65 for community-acquired pneumonia: confusion, respiratory rate >= 30, SBP < 90 or DBP <= 60, "
        "age >= 65, from the latest values within 48 h before the reference time; criteria with FHIR sources, "
        "range when inputs are missing, NICE risk group when determined."
    )
    input_names = CRB65_INPUTS

    def calculate(self, inputs: Inputs) -> ScoreResult:
        return crb65(inputs)
