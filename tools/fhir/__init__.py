"""FHIR record tools: they read any FHIR R4 server through fhirclient."""

from __future__ import annotations

from langchain_core.tools import BaseTool

from medconsult.tools.base import ToolContext
from medconsult.tools.fhir.allergies import AllergiesTool
from medconsult.tools.fhir.clinical_notes import ClinicalNotesTool
from medconsult.tools.fhir.conditions import ConditionsTool
from medconsult.tools.fhir.diagnostic_reports import DiagnosticReportsTool
from medconsult.tools.fhir.encounters import EncountersTool
from medconsult.tools.fhir.find_patient import FindPatientTool
from medconsult.tools.fhir.imaging_studies import ImagingStudiesTool
from medconsult.tools.fhir.medications import MedicationsTool
from medconsult.tools.fhir.observations import ObservationsTool
from medconsult.tools.fhir.patient_summary import PatientSummaryTool


def fhir_tools(context: ToolContext) -> list[BaseTool]:
    """Entry point `medconsult.tools: fhir`."""
    classes = (
        FindPatientTool,
        PatientSummaryTool,
        ConditionsTool,
        MedicationsTool,
        AllergiesTool,
        ObservationsTool,
        EncountersTool,
        DiagnosticReportsTool,
        ImagingStudiesTool,
        ClinicalNotesTool,
    )
    return [cls(context=context) for cls in classes]
