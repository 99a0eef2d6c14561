"""The plan's safety review: the record's allergies, medications, eGFR and pregnancy against the drugs planned.

The rules are deterministic (medconsult.safety); this module only reads their inputs out of the case's tool
results and the drugs out of the drafted plan, so that what is checked is exactly what the report shows.
"""

from __future__ import annotations

from medconsult.agents.schemas import TreatmentPlan
from medconsult.clinical.codes import ANALYTES, UnitError, to_canonical
from medconsult.records import ToolRecord
from medconsult.safety import PlannedDrug, RecordItem, SafetyContext, parse_drugs
from medconsult.tools.calculators.egfr_ckd_epi_2021 import EgfrCkdEpi2021Tool
from medconsult.tools.fhir.allergies import AllergiesTool
from medconsult.tools.fhir.conditions import ConditionsTool
from medconsult.tools.fhir.medications import MedicationsTool
from medconsult.tools.fhir.observations import ObservationsTool
from medconsult.tools.fhir.patient_summary import PatientSummaryTool
from medconsult.tools.runner import latest_result, records_of

DRUG_CATEGORIES = ("antimicrobial", "other medication")
PREGNANCY_WORDS = ("pregnan", "gestation")


def safety_context(records: list[ToolRecord], population: str = "adult") -> SafetyContext:
    allergies = latest_result(records, AllergiesTool)
    return SafetyContext(
        population=population,
        **body_weight(records),
        allergies=[
            RecordItem(text=a.get("substance") or "", resource=a.get("resource"), criticality=a.get("criticality"),
                       reactions=a.get("reactions") or [])
            for a in (allergies or {}).get("allergies", [])
        ],
        allergies_known=allergies is not None,
        medications=[
            RecordItem(text=m.get("medication") or "", resource=m.get("resource"))
            for m in (latest_result(records, MedicationsTool) or {}).get("medications", [])
        ],
        **_egfr(latest_result(records, EgfrCkdEpi2021Tool)),
        **_pregnancy(latest_result(records, ConditionsTool)),
        age_years=(latest_result(records, PatientSummaryTool) or {}).get("age_years"),
    )


def drugs_in_actions(plan: TreatmentPlan, regimen_drugs: set[str]) -> list[PlannedDrug]:
    """Known drugs the plan's medication actions name beyond the regimen (a model may add one), and any
    antimicrobial action naming no known drug, so that it is reported as not checked rather than passed."""
    drugs: list[PlannedDrug] = []
    named = set(regimen_drugs)
    for index, action in enumerate(plan.actions):
        if action.category not in DRUG_CATEGORIES:
            continue
        found = [n for n in parse_drugs(f"{action.action} {action.rationale}") if n not in named]
        drugs += [PlannedDrug(name=n, action_index=index) for n in found]
        named |= set(found)
        if not found and action.category == "antimicrobial" and not regimen_drugs and not parse_drugs(action.action):
            drugs.append(PlannedDrug(name=action.action, action_index=index))  # reviewed as "not checked"
    return drugs


def body_weight(records: list[ToolRecord]) -> dict:
    """The latest body weight among the vital signs read: {"weight_kg", "weight_resource"}, or {} when none."""
    weights = [
        item for r in records_of(records, ObservationsTool)
        for item in r.result.get("observations", []) if item.get("loinc") in ANALYTES["body_weight"].loinc
    ]
    for item in sorted(weights, key=lambda i: i.get("effective") or "", reverse=True):
        try:
            kg = to_canonical(ANALYTES["body_weight"], float(item["value"]), item.get("unit"))
        except (TypeError, ValueError, UnitError):
            continue
        return {"weight_kg": round(kg, 1), "weight_resource": item.get("resource")}
    return {}


def patient_population(records: list[ToolRecord], stated: str | None) -> str:
    """The record's age decides (under 18: paediatric); else the case's stated population; else adult."""
    age = (latest_result(records, PatientSummaryTool) or {}).get("age_years")
    if age is not None:
        return "paediatric" if age < 18 else "adult"
    return stated or "adult"


def _egfr(result: dict | None) -> dict:
    if not result or result.get("egfr") is None:
        return {}
    creatinine = next((i.get("resource") for i in result.get("inputs", []) if i.get("name") == "creatinine"), None)
    return {"egfr": result["egfr"], "egfr_resource": creatinine}


def _pregnancy(conditions: dict | None) -> dict:
    for condition in (conditions or {}).get("conditions", []):
        text = (condition.get("display") or "").lower()
        if any(word in text for word in PREGNANCY_WORDS):
            return {"pregnant": True, "pregnancy_resource": condition.get("resource")}
    return {}
