"""qsofa: quick SOFA, bedside screen for poor outcome in suspected infection (Seymour 2016; Sepsis-3)."""

from __future__ import annotations

from medconsult.clinical.scores import QSOFA_INPUTS, Inputs, ScoreResult, qsofa
from medconsult.tools.calculators.common import ScoreTool


class QsofaTool(ScoreTool):
    name: str = "qsofa"
    missing = "qSOFA score"
    description: str = (
        "qSOFA for suspected infection: respiratory rate >= 22, altered mentation (GCS < 15 or recorded "
        "delirium/confusion), SBP <= 100, from the latest values within 48 h before the reference time; "
        "criteria with FHIR sources and the range when inputs are missing."
    )
    input_names = QSOFA_INPUTS

    def calculate(self, inputs: Inputs) -> ScoreResult:
        return qsofa(inputs)
