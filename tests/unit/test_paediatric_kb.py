"""Children in the knowledge base, the plan's regimens and the safety review: doses by weight with their ceilings,
no adult dose for a child, and no antibiotic for a viral infection."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from medconsult.agents.deterministic.regimens import candidate_regimens, describe, regimen_drugs
from medconsult.agents.deterministic.safety_review import patient_population, safety_context
from medconsult.agents.schemas import CitedFact, Differential, RankedDiagnosis
from medconsult.knowledge import load_knowledge
from medconsult.knowledge.schema import Condition, Regimen, WeightDose
from medconsult.records import ToolRecord
from medconsult.safety import PlannedDrug, SafetyContext, review_plan


def _differential(name: str) -> Differential:
    return Differential(summary="s", diagnoses=[RankedDiagnosis(
        diagnosis=name, likelihood="high", evidence=[CitedFact(fact="F1", stance="supports")],
        reasoning="r", discriminating_test="t",
    )])


def _record(tool: str, result: dict) -> ToolRecord:
    return ToolRecord(id=f"{tool}:1", tool=tool, args={}, ok=True, result=result, started_at="2026-01-01T00:00:00",
                      duration_s=0.1)


def _weight(kg: float) -> ToolRecord:
    item = {"loinc": "29463-7", "display": "Body weight", "value": kg, "unit": "kg", "resource": "Observation/w1",
            "effective": "2020-03-02"}
    return _record("fhir_observations", {"summary": "1", "category": "vital-signs", "total_found": 1,
                                         "observations": [item]})


def test_a_dose_by_weight_is_capped_at_its_maxima():
    amoxicillin = WeightDose(mg_per_kg=45, doses_per_day=2, max_mg_per_dose=2000, max_mg_per_day=4000)
    assert amoxicillin.dose_mg(14) == 630  # a three-year-old of 14 kg
    assert amoxicillin.dose_mg(60) == 2000  # 2,700 mg by weight, capped
    tight = WeightDose(mg_per_kg=50, doses_per_day=4, max_mg_per_dose=2000, max_mg_per_day=6000)
    assert tight.dose_mg(40) == 1500  # the day's ceiling binds before the dose's


def test_a_paediatric_condition_refuses_a_drug_without_a_dose_by_weight():
    kb = load_knowledge()
    data = kb.condition("paediatric_cap").model_dump()
    data["regimens"][0]["components"][0]["options"][0]["per_kg"] = None
    with pytest.raises(ValidationError, match="dose by weight"):
        Condition.model_validate(data)
    supportive = kb.regimen("paediatric_viral_lrti.any.supportive").model_dump()
    with pytest.raises(ValidationError, match="supportive"):
        Regimen.model_validate({**supportive, "line": "first-line"})  # a drug regimen needs its drugs


def test_a_child_is_offered_paediatric_regimens_and_an_adult_the_adult_ones():
    child = [r.id for r in candidate_regimens(_differential("Bacterial pneumonia"), [], population="paediatric")]
    adult = [r.id for r in candidate_regimens(_differential("Bacterial pneumonia"), [])]
    assert child and all(r.startswith("paediatric_cap.") for r in child)
    assert adult and not any(r.startswith("paediatric") for r in adult)
    viral = candidate_regimens(_differential("Viral pneumonia"), [], population="paediatric")
    assert [r.id for r in viral] == ["paediatric_viral_lrti.any.supportive"]
    assert viral[0].drugs() == [] and any("Seek help" in a for a in viral[0].advice)
    assert describe(viral[0]).startswith("No antibiotic: supportive care")


def test_the_plan_line_works_out_the_dose_or_says_the_weight_is_missing():
    regimen = candidate_regimens(_differential("Pneumonia"), [], population="paediatric")[0]
    assert regimen.id == "paediatric_cap.outpatient.amoxicillin"
    assert "45 mg/kg per dose (max 2000 mg per dose, 4000 mg per day)" in describe(regimen)
    assert "weight not recorded" in describe(regimen)
    assert "amoxicillin 630 mg oral twice daily" in describe(regimen, 14)


def test_the_population_comes_from_the_record_age_then_the_case():
    three = _record("fhir_patient_summary", {"age_years": 3})
    assert patient_population([three], "adult") == "paediatric"  # the record's age decides
    assert patient_population([], "paediatric") == "paediatric"
    assert patient_population([], None) == "adult"


def test_the_safety_review_checks_doses_by_weight_for_a_child():
    regimen = candidate_regimens(_differential("Pneumonia"), [], population="paediatric")[0]
    by_weight = lambda findings: [f for f in findings if f.rule == "weight-dose"]  # noqa: E731
    unweighed = by_weight(review_plan(regimen_drugs(regimen), safety_context([], "paediatric")))
    assert [f.severity for f in unweighed] == ["warn"]
    assert "Weight not recorded" in unweighed[0].message and "45 mg/kg per dose" in unweighed[0].message
    weighed = by_weight(review_plan(regimen_drugs(regimen), safety_context([_weight(14)], "paediatric")))
    assert "630 mg per dose" in weighed[0].message and weighed[0].evidence == ["Observation/w1"]
    adult_dose = [PlannedDrug(name="amoxicillin", dose="1 g", frequency="three times daily")]
    blocked = by_weight(review_plan(adult_dose, SafetyContext(population="paediatric")))
    assert [f.severity for f in blocked] == ["block"] and "adult fixed dose" in blocked[0].message
    assert by_weight(review_plan(adult_dose, SafetyContext())) == []  # an adult: no dose by weight needed


def test_the_leading_diagnosis_regimens_come_first_so_a_viral_child_is_offered_no_antibiotic_first():
    viral_first = Differential(summary="s", diagnoses=[
        _differential("Viral pneumonia").diagnoses[0], _differential("Bacterial pneumonia").diagnoses[0],
    ])
    offered = [r.id for r in candidate_regimens(viral_first, [], population="paediatric")]
    assert offered[0] == "paediatric_viral_lrti.any.supportive" and len(offered) > 1
    bacterial_first = Differential(summary="s", diagnoses=list(reversed(viral_first.diagnoses)))
    assert candidate_regimens(bacterial_first, [], population="paediatric")[0].id.startswith("paediatric_cap.")
