"""Clinical-scores subgraph: every calculator runs in parallel on the FHIR record; the LLM does no arithmetic."""

from __future__ import annotations

from medconsult.graphs.steps import PatientStep, build_parallel_steps_graph

SCORE_STEPS = (
    PatientStep("curb65", "curb65", "CURB-65 score"),
    PatientStep("crb65", "crb65", "CRB-65 score"),
    PatientStep("qsofa", "qsofa", "qSOFA score"),
    PatientStep("sirs", "sirs", "SIRS criteria"),
    PatientStep("psi", "psi_port", "PSI/PORT class"),
    PatientStep("egfr", "egfr_ckd_epi_2021", "eGFR (CKD-EPI 2021)"),
    PatientStep("markers", "infection_markers", "infection-marker interpretation"),
)

SCORE_TOOLS = frozenset(step.tool for step in SCORE_STEPS)


def build_scores_graph():  # noqa: ANN201 - CompiledStateGraph
    return build_parallel_steps_graph("clinical_scores", SCORE_STEPS)
