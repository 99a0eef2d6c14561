"""EHR-context subgraph: the record steps run in parallel, each one FHIR tool call."""

from __future__ import annotations

from medconsult.graphs.steps import PatientStep, build_parallel_steps_graph

RECORD_STEPS = (
    PatientStep("demographics", "fhir_patient_summary", "demographics"),
    PatientStep("conditions", "fhir_conditions", "active conditions", lambda s: {"status": "active"}),
    PatientStep("medications", "fhir_medications", "current medications", lambda s: {"status": "active"}),
    PatientStep("allergies", "fhir_allergies", "allergies"),
    PatientStep(
        "labs",
        "fhir_observations",
        "laboratory results",
        lambda s: {"category": "laboratory", "limit": s.lab_results_limit, "within_days": s.record_recent_days},
    ),
    PatientStep(
        "vitals", "fhir_observations", "vital signs",
        lambda s: {"category": "vital-signs", "limit": 12, "within_days": s.record_recent_days},
    ),
    PatientStep("encounters", "fhir_encounters", "recent encounters", lambda s: {"limit": 3}),
    PatientStep("reports", "fhir_diagnostic_reports", "diagnostic reports"),
    PatientStep("imaging_studies", "fhir_imaging_studies", "imaging studies", lambda s: {"limit": 3}),
    PatientStep("notes", "fhir_clinical_notes", "clinical notes", lambda s: {"limit": 2}),
)


def build_ehr_graph():  # noqa: ANN201 - CompiledStateGraph
    return build_parallel_steps_graph("ehr_context", RECORD_STEPS)
