"""psi_port: Pneumonia Severity Index (PORT score), risk classes I-V (Fine 1997)."""

from __future__ import annotations

from medconsult.clinical.scores import PSI_INPUTS, Inputs, ScoreResult, psi
from medconsult.tools.calculators.common import ScoreTool


class PsiPortTool(ScoreTool):
    name: str = "psi_port"
    missing = "PSI/PORT class"
    description: str = (
        "Pneumonia Severity Index (PSI/PORT): age, sex, nursing home, comorbidities from the active problem "
        "list, vital signs and laboratory values within 48 h before the reference time. Gives the points with "
        "missing values taken as normal (as in the derivation) and the possible range, risk class I-V with "
        "30-day mortality and place of care, and each criterion with its FHIR source."
    )
    input_names = PSI_INPUTS

    def calculate(self, inputs: Inputs) -> ScoreResult:
        return psi(inputs)
