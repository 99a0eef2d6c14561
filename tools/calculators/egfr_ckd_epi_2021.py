"""egfr_ckd_epi_2021: estimated GFR by the race-free CKD-EPI 2021 creatinine equation (Inker 2021)."""

from __future__ import annotations

from medconsult.clinical.scores import EGFR_INPUTS, egfr
from medconsult.tools.calculators.common import CalculatorTool, EgfrReport
from medconsult.tools.fhir.common import PatientArgs


class EgfrCkdEpi2021Tool(CalculatorTool):
    name: str = "egfr_ckd_epi_2021"
    missing = "eGFR (CKD-EPI 2021)"
    description: str = (
        "Estimated GFR (mL/min/1.73 m2) by the CKD-EPI 2021 creatinine equation without race, from the latest "
        "serum creatinine within 7 days before the reference time and the patient's age and sex; with the KDIGO "
        "GFR category and the creatinine's FHIR reference."
    )
    result_model = EgfrReport
    input_names = EGFR_INPUTS
    window_hours = 7 * 24.0  # kidney function for dosing: a creatinine from the past week still informs

    def execute(self, args: PatientArgs) -> EgfrReport:
        gathered = self.gather(args)
        result = egfr(gathered.inputs)
        if result.egfr is None:
            summary = f"eGFR {result.detail}"
        else:
            summary = f"eGFR {result.egfr:.0f} mL/min/1.73 m2 (CKD-EPI 2021), KDIGO {result.category}"
        return EgfrReport(summary=summary, reference_time=gathered.reference_time,
                          window_hours=gathered.window_hours, **result.model_dump())
