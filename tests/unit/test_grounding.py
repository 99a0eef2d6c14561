from __future__ import annotations

import pytest

from fakes import DEMOGRAPHICS, LEUKOCYTES, PNEUMONIA
from medconsult.agents.deterministic.grounding import GroundingReport, verify_grounding
from medconsult.agents.evidence import build_facts
from medconsult.agents.schemas import Differential, TreatmentPlan
from medconsult.records import Fact, ToolRecord
from medconsult.tools.fhir.conditions import ConditionsResult
from medconsult.tools.fhir.observations import ObservationsResult
from medconsult.tools.fhir.patient_summary import PatientSummaryResult


def fact(number: int, text: str, kind: str = "lab", value: float | None = None, unit: str | None = None) -> Fact:
    return Fact(id=f"F{number}", kind=kind, text=text, value=value, unit=unit, result_id="tool:1", tool="tool")


def differential(*reasonings: str, summary: str = "Acute respiratory illness.",
                 cited: tuple[str, ...] = ("F1",)) -> Differential:
    return Differential(
        summary=summary,
        diagnoses=[
            {"diagnosis": f"Diagnosis {i}", "likelihood": "high", "reasoning": reasoning,
             "evidence": [{"fact": f, "stance": "supports"} for f in cited], "discriminating_test": "Chest X-ray"}
            for i, reasoning in enumerate(reasonings)
        ],
    )


def plan(*actions: tuple[str, str], cautions: tuple[str, ...] = (), evidence: tuple[str, ...] = ()) -> TreatmentPlan:
    return TreatmentPlan(
        working_diagnosis="Community-acquired pneumonia",
        actions=[{"action": action, "category": "antimicrobial", "priority": "today", "rationale": rationale,
                  "evidence": list(evidence)} for action, rationale in actions],
        cautions=list(cautions),
    )


def in_text(facts: list[Fact], text: str) -> GroundingReport:
    return verify_grounding(None, None, facts, {"note": text})


def _tool_record(tool: str, result: dict) -> ToolRecord:
    return ToolRecord(id=f"{tool}:1", tool=tool, args={}, ok=True, result=result, error=None,
                      started_at="2026-01-01T00:00:00+00:00", duration_s=0.1)


@pytest.fixture
def record_facts() -> list[Fact]:
    """The catalogue the graph builds from the canned FHIR results: leukocytes 14.2 (ref 4.5-11), pneumonia,
    male 80 years."""
    records = [
        _tool_record("fhir_observations", {"summary": "1 result", "category": "laboratory",
                                           "observations": [LEUKOCYTES], "total_found": 1}),
        _tool_record("fhir_conditions", {"summary": "1 condition", "conditions": [PNEUMONIA]}),
        _tool_record("fhir_patient_summary", DEMOGRAPHICS),
    ]
    models = {
        "fhir_observations": ObservationsResult,
        "fhir_conditions": ConditionsResult,
        "fhir_patient_summary": PatientSummaryResult,
    }
    return build_facts(records, models)


def _id_of(facts: list[Fact], starts: str) -> str:
    return next(f.id for f in facts if f.text.startswith(starts))


# --- The headline: a fabricated value is caught where it was written --------------------------------------------
def test_a_planted_lab_value_is_flagged_with_its_field_and_the_recorded_value(record_facts: list[Fact]) -> None:
    wbc = _id_of(record_facts, "Leukocytes")
    draft = differential(
        "Coded pneumonia in an 80-year-old man.",
        "WBC 18.5 x10^3/uL and lactate 4.1 mmol/L suggest sepsis.",
        cited=(wbc,),
    )

    report = verify_grounding(draft, None, record_facts)

    flags = {flag.claim: flag for flag in report.flags}
    assert set(flags) == {"WBC 18.5 x10^3/uL", "lactate 4.1 mmol/L"}
    assert flags["WBC 18.5 x10^3/uL"].location == "differential.diagnoses[1].reasoning"
    assert flags["WBC 18.5 x10^3/uL"].reason == f"value differs: record says 14.2 10*3/uL ({wbc})"
    assert flags["WBC 18.5 x10^3/uL"].statement == "WBC 18.5 x10^3/uL and lactate 4.1 mmol/L suggest sepsis."
    assert flags["lactate 4.1 mmol/L"].reason == "no tool result has this value"
    assert {flag.kind for flag in report.flags} == {"number"}
    assert report.checked_numbers == 3  # the age in diagnosis 0, then the two values
    assert report.unsupported == 2 and report.model_dump()["unsupported"] == 2


def test_the_recorded_value_passes_where_the_fabricated_one_fails(record_facts: list[Fact]) -> None:
    draft = differential("WBC 14.2 x10^3/uL with pneumonia since 2018-09-28.")
    assert verify_grounding(draft, None, record_facts).flags == []


# --- Correct values in other notations ----------------------------------------------------------------------
NOTATIONS = [
    # (what the fact says, its value and unit, what the narrative writes, a wrong value in the same notation)
    ("C-reactive protein 86 mg/L on 2020-03-02", 86.0, "mg/L", "CRP 8.6 mg/dL", "CRP 9.6 mg/dL"),
    ("C-reactive protein 86 mg/L on 2020-03-02", 86.0, "mg/L", "C-reactive protein of 86 mg/L", "CRP of 68 mg/L"),
    ("Body temperature 38.9 Cel on 2020-03-02", 38.9, "Cel", "febrile at 38.9°C", "febrile at 39.9°C"),
    ("Body temperature 38.9 Cel on 2020-03-02", 38.9, "Cel", "temperature 38.9 C", "temperature 37.9 C"),
    ("Leukocytes 14 10*3/uL on 2018-09-28", 14.0, "10*3/uL", "14,000/mm3 white cells", "18,000/mm3 white cells"),
    ("Leukocytes 14 10*3/uL on 2018-09-28", 14.0, "10*3/uL", "WBC 14,000", "WBC 18,000"),
    ("Leukocytes 14 10*3/uL on 2018-09-28", 14.0, "10*3/uL", "leukocytes 14.0 x10^9/L", "leukocytes 14.9 x10^9/L"),
    ("male, 80 years (born 1938-04-09)", 80.0, "a", "an 80-year-old man", "a 70-year-old man"),
    ("Oxygen saturation in Arterial blood 89 % on 2020-03-02", 89.0, "%", "SpO2 89%", "SpO2 85%"),
    ("Creatinine 1.3 mg/dL on 2020-03-02", 1.3, "mg/dL", "creatinine 115 umol/L", "creatinine 150 umol/L"),
    ("Body Mass Index 27.3 kg/m2 on 2018-09-29", 27.3, "kg/m2", "BMI 27.3", "BMI 23.7"),
    ("eGFR (CKD-EPI 2021) creatinine 1.3 mg/dL: 56.7 mL/min/1.73 m2", 56.7, "mL/min/1.73 m2", "eGFR 57", "eGFR 75"),
    ("Blood Pressure Diastolic Blood Pressure 98.1 mm[Hg], Systolic Blood Pressure 172 mm[Hg] on 2018-09-29",
     None, None, "BP 172/98 mmHg", "BP 150/98 mmHg"),
    ("CURB-65 2 (possible range 2-3; missing: confusion)", 2.0, None, "a CURB-65 of 2", "a CURB-65 of 3"),
]


@pytest.mark.parametrize(("text", "value", "unit", "written", "wrong"), NOTATIONS)
def test_a_recorded_value_in_another_notation_passes_and_a_different_one_fails(
    text: str, value: float | None, unit: str | None, written: str, wrong: str
) -> None:
    facts = [fact(1, text, value=value, unit=unit)]

    passing = in_text(facts, f"Findings: {written}.")
    failing = in_text(facts, f"Findings: {wrong}.")

    assert passing.checked_numbers >= 1 and passing.flags == []
    assert [flag.kind for flag in failing.flags] == ["number"]
    assert failing.flags[0].reason.startswith("value differs: record says")


def test_curb65_is_checked_against_the_score_fact() -> None:
    written = differential("Low risk: CURB-65 of 2, so treat at home.")
    assert verify_grounding(written, None, [fact(1, "CURB-65 2 (possible range 2-3)", "score", 2)]).flags == []
    [flag] = verify_grounding(written, None, [fact(1, "CURB-65 1 (possible range 1-3)", "score", 1)]).flags
    assert flag.claim == "CURB-65 of 2" and flag.reason == "value differs: record says 1 (F1)"


def test_an_analyte_named_before_a_value_is_matched_against_that_analyte_only() -> None:
    facts = [fact(1, "C-reactive protein 86 mg/L on 2020-03-02", value=86, unit="mg/L"),
             fact(2, "Platelets 120 10*3/uL on 2020-03-02", value=120, unit="10*3/uL")]
    [flag] = in_text(facts, "CRP 120 on admission.").flags
    assert flag.reason == "value differs: record says 86 mg/L (F1)"


def test_a_value_of_another_analyte_in_the_same_unit_does_not_support_an_analyte_the_record_lacks() -> None:
    facts = [fact(1, "Potassium 4.15 mmol/L on 2018-09-29", value=4.15, unit="mmol/L")]
    [flag] = in_text(facts, "Lactate 4.1 mmol/L.").flags
    assert flag.reason == "no tool result has this value"
    assert in_text(facts, "Potassium 4.15 mmol/L, written elsewhere as 4.15 mmol/L.").flags == []


# --- Numbers that are not measurements ----------------------------------------------------------------------
def test_doses_durations_and_targets_in_the_plan_are_not_checked() -> None:
    draft = plan(
        ("Amoxicillin 1 g orally three times daily for 5 days", "First-line for low-severity CAP."),
        ("Clarithromycin 500 mg twice daily x 7 days; paracetamol 1 g every 6 hours", "Atypical cover."),
        ("Reassess within 48 hours; chest X-ray at 6 weeks", "Exclude an underlying lesion."),
        ("Oxygen 2 L/min, titrate to SpO2 94-98%", "Keep SpO2 above 92%."),
        ("Vancomycin 15-20 mg/kg IV; hydrocortisone 200 mg/day; fluids 30 mL/kg", "Step 2 of the pathway."),
        ("Repeat WBC count at 48 hours and CRP level at 72 h", "Creatinine at 1 week if on a nephrotoxin."),
        cautions=("Oxygen 2 L/min via nasal cannula", "Smoker for 40 years, a 6-year history of COPD"),
    )
    report = verify_grounding(None, draft, [fact(1, "Pneumonia (active, onset 2018-09-28)", "condition")])
    assert report.checked_numbers == 0 and report.flags == []


def test_names_with_digits_and_list_numbering_are_not_values() -> None:
    facts = [fact(1, "Pneumonia (active, onset 2018-09-28)", "condition")]
    text = ("1. COVID-19 or H1N1 influenza [condition F1]; KDIGO G3a; IL-6 not measured. 2. CURB-65 and qSOFA "
            "not computed. See the 3rd item.")
    report = in_text(facts, text)
    assert report.checked_numbers == 0 and report.flags == []
    [flag] = in_text(facts, "CD4 count 50 cells/uL.").flags  # a name with digits, then a measurement
    assert flag.claim == "CD4 count 50 cells/uL"


def test_dates_and_years_must_appear_in_the_record() -> None:
    facts = [fact(1, "Pneumonia (active, onset 2018-09-28)", "condition")]
    assert in_text(facts, "Pneumonia since 2018-09-28, first coded in 2018.").flags == []
    flags = in_text(facts, "Pneumonia since 2015-03-01, first coded in 2015.").flags
    assert [(f.claim, f.reason) for f in flags] == [
        ("2015-03-01", "no tool result has this date"),
        ("2015", "no tool result has this year"),
    ]


# --- Citations ----------------------------------------------------------------------------------------------
def test_a_citation_to_a_fact_that_does_not_exist_is_flagged(record_facts: list[Fact]) -> None:
    wbc = _id_of(record_facts, "Leukocytes")
    draft = differential("Leukocytosis supports a bacterial cause.", cited=(wbc, "F99"))
    actions = plan(("Start antibiotics", "Bacterial pneumonia."), evidence=("F42", wbc))

    report = verify_grounding(draft, actions, record_facts)

    assert report.checked_citations == 4
    assert [(f.location, f.claim, f.reason, f.kind) for f in report.flags] == [
        ("differential.diagnoses[0].evidence[1]", "F99", "cites F99, which does not exist", "citation"),
        ("plan.actions[0].evidence[0]", "F42", "cites F42, which does not exist", "citation"),
    ]


def test_a_value_right_in_the_record_but_not_in_the_cited_fact_is_flagged_on_the_citation() -> None:
    facts = [fact(1, "Leukocytes 14.2 10*3/uL on 2018-09-28", value=14.2, unit="10*3/uL"),
             fact(2, "Leukocytes 7.7 10*3/uL on 2016-09-17", value=7.7, unit="10*3/uL")]
    assert verify_grounding(differential("WBC 7.7 x10^3/uL.", cited=("F2",)), None, facts).flags == []

    [flag] = verify_grounding(differential("WBC 7.7 x10^3/uL.", cited=("F1",)), None, facts).flags

    assert flag.kind == "citation" and flag.location == "differential.diagnoses[0].evidence[0]"
    assert flag.reason == "cited fact F1 does not state this: it says 14.2 10*3/uL"


# --- Findings -----------------------------------------------------------------------------------------------
CRP_NORMAL = "C-reactive protein 3 mg/L on 2020-03-02 (ref 0-5 mg/L)"


def test_elevated_is_flagged_when_the_reference_range_says_normal() -> None:
    facts = [fact(1, CRP_NORMAL, value=3, unit="mg/L")]

    [flag] = verify_grounding(differential("Elevated CRP and cough favour pneumonia."), None, facts).flags

    assert flag.kind == "finding" and flag.location == "differential.diagnoses[0].reasoning"
    assert flag.claim == "Elevated CRP"
    assert "within its reference range 0-5 mg/L" in flag.reason and "(F1)" in flag.reason
    assert verify_grounding(differential("CRP is normal; no elevated CRP."), None, facts).flags == []


def test_findings_follow_the_records_own_flag_and_lists_of_analytes(record_facts: list[Fact]) -> None:
    wbc = _id_of(record_facts, "Leukocytes")  # 14.2 with reference range 4.5-11: high
    facts = record_facts + [fact(9, "Procalcitonin 0.05 ng/mL on 2018-09-28 [L]", value=0.05, unit="ng/mL")]

    assert in_text(facts, "Leukocytosis; elevated WBC count; WBC is high.").flags == []
    flags = in_text(facts, "Leukopenia. Normal white cell count, elevated leukocytes and procalcitonin.").flags

    assert [(f.claim, f.kind) for f in flags] == [
        ("Normal white cell count", "finding"),
        ("elevated procalcitonin", "finding"),
        ("Leukopenia", "finding"),
    ]
    assert flags[0].reason == f"record says otherwise: Leukocytes 14.2 10*3/uL is above its reference range " \
        f"4.5-11 10*3/uL ({wbc})"
    assert flags[1].reason == "record says otherwise: Procalcitonin 0.05 ng/mL is flagged [L] (F9)"


def test_a_finding_word_the_record_itself_uses_is_history_not_a_reading() -> None:
    facts = [fact(1, "Hemoglobin 14.6 g/dL on 2016-09-17 (ref 13.5-17.5 g/dL)", value=14.6, unit="g/dL")]
    assert [f.claim for f in in_text(facts, "Anemia on the blood count.").flags] == ["Anemia"]
    facts.append(fact(2, "Anemia (disorder) (active, onset 1992-05-02)", "condition"))
    assert in_text(facts, "Anemia on the blood count.").flags == []


def test_a_finding_without_a_range_or_flag_in_the_record_is_not_judged() -> None:
    facts = [fact(1, "Lymphocytes 0.6 10*3/uL on 2020-03-02", value=0.6, unit="10*3/uL")]
    assert in_text(facts, "The high lymphocyte count is consistent with pneumonia.").flags == []


# --- Realistic drafts ---------------------------------------------------------------------------------------
# Facts as the demo case's catalogue states them (Synthea patient, 80-year-old man with pneumonia).
DEMO_FACTS = [
    fact(1, "male, 80 years (born 1938-04-09)", "demographics", 80, "a"),
    fact(3, "Pneumonia (active, onset 2018-09-28)", "condition"),
    fact(11, "Stroke (active, onset 1980-08-30)", "condition"),
    fact(19, "Hydrochlorothiazide 25 MG (active, prescribed 1956-06-02)", "medication"),
    fact(26, "Body Mass Index 27.3 kg/m2 on 2018-09-29; stable: 27.3 -> 27.3 kg/m2 since 2014-09-06 (5 results)",
         "vital", 27.3, "kg/m2"),
    fact(27, "Blood Pressure Diastolic Blood Pressure 98.1 mm[Hg], Systolic Blood Pressure 172 mm[Hg] on "
         "2018-09-29", "vital"),
    fact(28, "Oral temperature 37.3 Cel on 2015-12-02; stable: 37.3 -> 37.3 Cel since 2012-06-06 (2 results)",
         "vital", 37.3, "Cel"),
    fact(30, "Urea Nitrogen 14.9 mg/dL on 2018-09-29; falling: 17.4 -> 14.9 mg/dL since 2014-09-06 (5 results)",
         "lab", 14.9, "mg/dL"),
    fact(31, "Creatinine 0.95 mg/dL on 2018-09-29; rising: 0.794 -> 0.95 mg/dL since 2014-09-06 (5 results)",
         "lab", 0.95, "mg/dL"),
    fact(33, "Sodium 141 mmol/L on 2018-09-29; stable: 141 -> 141 mmol/L since 2014-09-06 (5 results)",
         "lab", 141, "mmol/L"),
    fact(44, "Leukocytes [#/volume] in Blood by Automated count 4.02 10*3/uL on 2016-09-17; falling: 7.73 -> "
         "4.02 10*3/uL since 2011-08-20 (2 results)", "lab", 4.02, "10*3/uL"),
    fact(46, "Hemoglobin [Mass/volume] in Blood 14.6 g/dL on 2016-09-17; stable: 16.1 -> 14.6 g/dL since "
         "2011-08-20 (2 results)", "lab", 14.6, "g/dL"),
    fact(55, "CRB-65 blood pressure: not met (0) - systolic BP 172.2 mmHg not < 90; diastolic BP 98.08 mmHg not "
         "<= 60", "score"),
    fact(57, "CURB-65 1 (possible range 1-3; missing: confusion, respiratory_rate); risk group undetermined: low "
         "risk, intermediate risk or high risk, depending on confusion and respiratory_rate", "score", 1),
    fact(61, "eGFR (CKD-EPI 2021) creatinine 0.9503 mg/dL, age 80 years, male: 80.9 mL/min/1.73 m2, KDIGO G2 "
         "(mildly decreased)", "score", 80.9, "mL/min/1.73 m2"),
    fact(63, "PSI 90 (possible range 90-225; missing: confusion); risk group undetermined: class III, class IV "
         "or class V, depending on confusion; class III if missing values are normal", "score", 90),
]


def _demo_draft(reasoning: str) -> tuple[Differential, TreatmentPlan]:
    draft = Differential(
        summary="80-year-old man admitted 2018-09-28 with pneumonia; BP 172/98 mmHg, BMI 27.3, eGFR 81.",
        diagnoses=[
            {"diagnosis": "Community-acquired pneumonia", "likelihood": "high", "reasoning": reasoning,
             "evidence": [{"fact": "F3", "stance": "supports"}, {"fact": "F57", "stance": "supports"},
                          {"fact": "F31", "stance": "supports"}],
             "discriminating_test": "CRB 65 blood pressure: not met (0) - systolic BP 172.2 mmHg not ‹ 90"},
            {"diagnosis": "Aspiration pneumonia", "likelihood": "moderate",
             "reasoning": "Stroke (onset 1980-08-30) raises aspiration risk; age 80 years.",
             "evidence": [{"fact": "F11", "stance": "supports"}], "discriminating_test": "Swallow assessment"},
        ],
    )
    management = TreatmentPlan(
        working_diagnosis="Pneumonia (active, onset 2018-09-28)",
        actions=[
            {"action": "Amoxicillin 1 g orally three times daily for 5 days", "category": "antimicrobial",
             "priority": "today", "rationale": "CURB-65 1 (NICE CG191 2019); PSI class III.",
             "evidence": ["F57", "F63"]},
            {"action": "Reassess within 48 hours; chest X-ray at 6 weeks", "category": "follow-up",
             "priority": "routine", "rationale": "Age 80 years: exclude an underlying lesion.", "evidence": ["F1"]},
        ],
        cautions=["eGFR 80.9 mL/min/1.73 m2: no renal dose adjustment", "Hydrochlorothiazide 25 mg: sodium 141"],
    )
    return draft, management


def test_a_realistic_grounded_draft_has_no_flags() -> None:
    draft, management = _demo_draft(
        "Coded pneumonia since 2018-09-28; CURB-65 of 1 and PSI 90. Creatinine rose from 0.794 to 0.95 mg/dL, "
        "BUN 14.9 mg/dL, Na 141 mmol/L, Hb 14.6 g/dL; WBC 4.02 x10^3/uL in 2016."
    )
    report = verify_grounding(draft, management, DEMO_FACTS)
    assert report.flags == []
    assert report.checked_numbers >= 20 and report.checked_citations == 7


def test_a_realistic_draft_with_planted_errors_gets_exactly_those_flags() -> None:
    draft, management = _demo_draft(
        "Coded pneumonia since 2018-09-28; CURB-65 of 2 and PSI 90. Creatinine 1.4 mg/dL, temperature 39.5 °C, "
        "Hb 14.6 g/dL; leukocytosis with WBC 18,000 in 2016."
    )
    report = verify_grounding(draft, management, DEMO_FACTS)
    assert [(f.claim, f.reason) for f in report.flags] == [
        ("CURB-65 of 2", "value differs: record says 1 (F57)"),
        ("Creatinine 1.4 mg/dL", "value differs: record says 0.95 mg/dL (F31), 0.794 (F31), 0.9503 mg/dL (F61)"),
        ("temperature 39.5 °C", "value differs: record says 37.3 Cel (F28)"),
        ("WBC 18,000", "value differs: record says 4.02 10*3/uL (F44), 7.73 (F44)"),
    ]
    assert {f.location for f in report.flags} == {"differential.diagnoses[0].reasoning"}
