"""sirs: systemic inflammatory response syndrome criteria (Bone 1992)."""

from __future__ import annotations

from medconsult.clinical.scores import SIRS_INPUTS, Inputs, ScoreResult, sirs
from medconsult.tools.calculators.common import ScoreTool


class SirsTool(ScoreTool):
    name: str = "sirs"
    missing = "SIRS criteria"
    description: str = (
        "SIRS criteria met (0-4): temperature > 38 or < 36 °C, heart rate > 90, respiratory rate > 20 or "
        "PaCO2 < 32 mmHg, white cells > 12 or < 4 x10^3/uL or bands > 10%, from the latest values within 48 h "
        "before the reference time; criteria with FHIR sources and the range when inputs are missing."
    )
    input_names = SIRS_INPUTS

    def calculate(self, inputs: Inputs) -> ScoreResult:
        return sirs(inputs)
