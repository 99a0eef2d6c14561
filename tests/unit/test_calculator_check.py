"""The independent eGFR / CURB-65 recomputation and its comparison with the calculator tools' results.

The project's calculators on the safety-traps bundles are compared with this recomputation in
test_safety_traps_suite.py (test_project_calculators_agree_with_the_recomputation), where the bundles are served
to the real tools without a server.
"""

from __future__ import annotations

from datetime import date

import pytest

from medconsult.clinical.scores import ckd_epi_2021 as project_ckd_epi_2021
from medconsult.evals.calculator_check import (
    bundle_resources,
    calculator_agreement,
    ckd_epi_2021,
    recompute_calculators,
    tool_results,
)
from medconsult.records import ToolRecord

AS_OF = date(2025, 1, 21)
DAY_BEFORE = "2025-01-20T11:00:00Z"
LOINC = "http://loinc.org"


# ---- the equation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("creatinine", "age", "female", "expected"),
    [
        (0.70, 50, True, 105.3),  # Scr = k: 142 x 0.9938^50 x 1.012
        (0.90, 50, False, 104.0),  # Scr = k: 142 x 0.9938^50
        (1.80, 60, False, 42.6),  # Scr/k = 2: 142 x 2^-1.200 x 0.9938^60
        (0.35, 40, True, 132.4),  # Scr/k = 0.5: 142 x 0.5^-0.241 x 0.9938^40 x 1.012
        (2.30, 78, True, 21.2),  # strap-03: 142 x (2.3/0.7)^-1.200 x 0.9938^78 x 1.012
    ],
)
def test_ckd_epi_2021_worked_examples(creatinine: float, age: int, female: bool, expected: float) -> None:
    assert ckd_epi_2021(creatinine, age, female) == pytest.approx(expected, abs=0.05)


def test_equation_matches_the_project_formula_over_a_grid() -> None:
    """Same published equation written twice: they must agree to rounding everywhere an adult can be."""
    for creatinine in (0.3, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5, 2.3, 4.0, 8.0):
        for age in (18, 35, 50, 65, 80, 95):
            for female in (True, False):
                ours = ckd_epi_2021(creatinine, age, female)
                assert project_ckd_epi_2021(creatinine, age, female) == pytest.approx(ours, abs=0.01)


# ---- reading the record -------------------------------------------------------------------------------------------


def patient(gender: str = "female", born: str = "1946-09-02") -> dict:
    return {"resourceType": "Patient", "id": "p", "gender": gender, "birthDate": born}


def observation(code: str, value: float, unit: str, when: str = DAY_BEFORE, **extra: object) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": LOINC, "code": code}]},
            "effectiveDateTime": when, "valueQuantity": {"value": value, "code": unit}, **extra}


def blood_pressure(systolic: float, diastolic: float, when: str = DAY_BEFORE) -> dict:
    """A panel (LOINC 85354-9) with systolic and diastolic components, as vital-signs profiles write it."""
    parts = [("8480-6", systolic), ("8462-4", diastolic)]
    components = [{"code": {"coding": [{"system": LOINC, "code": c}]}, "valueQuantity": {"value": v, "code": "mm[Hg]"}}
                  for c, v in parts]
    panel = {"coding": [{"system": LOINC, "code": "85354-9"}]}
    return {"resourceType": "Observation", "status": "final", "code": panel, "effectiveDateTime": when,
            "component": components}


def record(*observations: dict, conditions: tuple[dict, ...] = (), person: dict | None = None) -> dict:
    return {
        "Patient": [person or patient()],
        "Observation": list(observations),
        "Condition": list(conditions),
    }


def presentation(rr: float = 24, bun: dict | None = None, bp: tuple[float, float] = (124, 66)) -> list[dict]:
    return [
        observation("9279-1", rr, "/min"),
        bun or observation("3094-0", 41, "mg/dL"),
        blood_pressure(*bp),
        observation("2160-0", 2.3, "mg/dL"),
    ]


def test_recomputes_egfr_and_curb65_from_the_record() -> None:
    recomputed = recompute_calculators(record(*presentation()), AS_OF)
    assert recomputed == {"egfr_ckd_epi_2021": 21.2, "curb65": 2}  # urea (BUN 41 > 19) and age 78


def test_creatinine_in_umol_per_litre_is_converted() -> None:
    creatinine = observation("2160-0", 203.3, "umol/L")  # 2.3 mg/dL x 88.4
    assert recompute_calculators(record(creatinine), AS_OF)["egfr_ckd_epi_2021"] == pytest.approx(
        21.2, abs=0.05
    )


def test_unknown_creatinine_unit_is_not_guessed() -> None:
    assert (
        recompute_calculators(record(observation("2160-0", 2.3, "g/L")), AS_OF)["egfr_ckd_epi_2021"] is None
    )


def test_latest_value_in_the_window_wins_and_later_values_are_hidden() -> None:
    observations = [
        observation("2160-0", 1.1, "mg/dL", when="2025-01-16T08:00:00Z"),
        observation("2160-0", 2.3, "mg/dL"),
        observation("2160-0", 5.0, "mg/dL", when="2025-01-22T08:00:00Z"),  # after as_of
    ]
    assert recompute_calculators(record(*observations), AS_OF)["egfr_ckd_epi_2021"] == pytest.approx(
        21.2, abs=0.05
    )


def test_values_outside_the_windows_leave_the_result_missing() -> None:
    old_creatinine = observation("2160-0", 2.3, "mg/dL", when="2025-01-13T08:00:00Z")  # 8 days
    old_rate = observation("9279-1", 24, "/min", when="2025-01-19T08:00:00Z")  # more than 48 h
    recomputed = recompute_calculators(record(old_creatinine, old_rate, *presentation()[1:3]), AS_OF)
    assert recomputed == {"egfr_ckd_epi_2021": None, "curb65": None}


def test_entered_in_error_values_are_ignored() -> None:
    wrong = observation("2160-0", 9.0, "mg/dL", when="2025-01-21T08:00:00Z", status="entered-in-error")
    recomputed = recompute_calculators(record(*presentation(), wrong), AS_OF)
    assert recomputed["egfr_ckd_epi_2021"] == pytest.approx(21.2, abs=0.05)


@pytest.mark.parametrize(
    ("urea", "points"),
    [
        (observation("22664-7", 7.0, "mmol/L"), 1),  # urea 7.0 mmol/L: not > 7, only age counts
        (observation("22664-7", 7.5, "mmol/L"), 2),
        (observation("3094-0", 19, "mg/dL"), 1),  # BUN 19 mg/dL: not > 19
        (observation("3094-0", 20, "mg/dL"), 2),
    ],
)
def test_urea_threshold_in_either_unit(urea: dict, points: int) -> None:
    assert recompute_calculators(record(*presentation(bun=urea)), AS_OF)["curb65"] == points


def test_all_five_criteria() -> None:
    gcs = observation("9269-2", 13, "{score}")
    recomputed = recompute_calculators(record(*presentation(rr=32, bp=(85, 50)), gcs), AS_OF)
    assert recomputed["curb65"] == 5


def test_confusion_counts_only_when_coded() -> None:
    delirium = {"resourceType": "Condition", "clinicalStatus": {"coding": [{"code": "active"}]},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "2776000"}]},
                "onsetDateTime": DAY_BEFORE}
    resolved = {**delirium, "abatementDateTime": "2024-06-01", "onsetDateTime": "2024-05-20"}
    assert recompute_calculators(record(*presentation()), AS_OF)["curb65"] == 2  # nothing coded: 0
    assert recompute_calculators(record(*presentation(), conditions=(delirium,)), AS_OF)["curb65"] == 3
    assert recompute_calculators(record(*presentation(), conditions=(resolved,)), AS_OF)["curb65"] == 2
    gcs_normal = observation("9269-2", 15, "{score}")
    assert recompute_calculators(record(*presentation(), gcs_normal), AS_OF)["curb65"] == 2


def test_one_low_pressure_decides_without_the_other() -> None:
    systolic_only = [o for o in presentation() if o["code"]["coding"][0]["code"] != "85354-9"]
    low = systolic_only + [observation("8480-6", 85, "mm[Hg]")]
    normal = systolic_only + [observation("8480-6", 125, "mm[Hg]")]
    assert recompute_calculators(record(*low), AS_OF)["curb65"] == 3
    assert recompute_calculators(record(*normal), AS_OF)["curb65"] is None  # diastolic unknown


def test_age_and_sex_come_from_the_patient() -> None:
    man = patient(gender="male", born="1975-01-22")  # 49 on as_of, one day before his 50th birthday
    recomputed = recompute_calculators(record(*presentation(), person=man), AS_OF)
    assert recomputed["egfr_ckd_epi_2021"] == pytest.approx(round(ckd_epi_2021(2.3, 49, False), 1))
    assert recomputed["curb65"] == 1
    unknown = recompute_calculators(record(*presentation(), person={"resourceType": "Patient"}), AS_OF)
    assert unknown == {"egfr_ckd_epi_2021": None, "curb65": None}


def test_bundle_resources_groups_by_type() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [{"resource": patient()}, {"resource": observation("9279-1", 20, "/min")}],
    }
    assert {k: len(v) for k, v in bundle_resources(bundle).items()} == {"Patient": 1, "Observation": 1}


# ---- agreement ----------------------------------------------------------------------------------------------------


RECOMPUTED = {"egfr_ckd_epi_2021": 21.2, "curb65": 2}


def rows_by_tool(rows: list[dict]) -> dict[str, dict]:
    return {r["calculator"]: r for r in rows}


def test_matching_results_agree() -> None:
    rows = rows_by_tool(
        calculator_agreement(RECOMPUTED, {"egfr_ckd_epi_2021": {"egfr": 21.9}, "curb65": {"points": 2}})
    )
    assert rows["egfr_ckd_epi_2021"]["agree"] is True  # within 1 mL/min/1.73 m2
    assert rows["curb65"] == {"calculator": "curb65", "field": "points", "recomputed": 2, "tool": 2, "tolerance": 0.0,
                              "difference": 0.0, "agree": True, "note": ""}


def test_deliberately_wrong_tool_results_are_caught() -> None:
    """e.g. an eGFR computed with the male constants for a woman, and a CURB-65 that missed the urea."""
    wrong = {"egfr_ckd_epi_2021": {"egfr": round(ckd_epi_2021(2.3, 78, False), 1)}, "curb65": {"points": 1}}
    rows = rows_by_tool(calculator_agreement(RECOMPUTED, wrong))
    assert rows["egfr_ckd_epi_2021"]["agree"] is False and rows["egfr_ckd_epi_2021"]["difference"] == 7.2
    assert rows["curb65"]["agree"] is False and rows["curb65"]["difference"] == -1
    assert "tolerance" in rows["curb65"]["note"]


def test_just_outside_the_egfr_tolerance_disagrees() -> None:
    rows = rows_by_tool(calculator_agreement(RECOMPUTED, {"egfr_ckd_epi_2021": {"egfr": 22.3}}))
    assert rows["egfr_ckd_epi_2021"]["agree"] is False


def test_missing_sides_are_not_compared_but_a_missing_tool_value_is_a_disagreement() -> None:
    tools = {"egfr_ckd_epi_2021": {"egfr": 40.0}, "curb65": {"points": None}}
    rows = rows_by_tool(calculator_agreement({"egfr_ckd_epi_2021": None, "curb65": 2}, tools))
    assert rows["egfr_ckd_epi_2021"]["agree"] is None  # the record lacks an input: nothing to check
    assert rows["curb65"]["agree"] is False  # the record had every input, the tool gave nothing
    absent = rows_by_tool(calculator_agreement(RECOMPUTED, {}))
    assert [r["agree"] for r in absent.values()] == [None, None]


def test_tool_results_from_graph_records_or_their_json() -> None:
    record = ToolRecord(id="curb65:1", tool="curb65", args={}, ok=True, result={"points": 2}, started_at="t",
                        duration_s=0.1)
    failed = {"tool": "egfr_ckd_epi_2021", "ok": False, "result": None}
    other = {"tool": "qsofa", "ok": True, "result": {"points": 1}}
    assert tool_results([record, failed, other]) == {"curb65": {"points": 2}}
    assert tool_results([record.model_dump(), failed]) == {"curb65": {"points": 2}}
