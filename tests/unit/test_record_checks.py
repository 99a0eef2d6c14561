"""Exact record checks (evals/record_checks.py) and the case files of every bundled suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from conftest import DATA_DIR
from medconsult.cases import load_case_file
from medconsult.evals.record_checks import Check, score_checks
from medconsult.evals.suites import BUNDLED, bundled_suites, case_files

CREATININE = {
    "name": "latest serum creatinine",
    "kind": "number",
    "expected": 1.3,
    "unit": "mg/dL",
    "tolerance": 0.05,
    "near": ["creatinine"],
}
LISINOPRIL = {"name": "active medication", "kind": "text", "expected": "lisinopril", "any_of": ["Zestril"]}
NO_PENICILLIN_ALLERGY = {
    "name": "no penicillin allergy",
    "kind": "absent",
    "expected": "penicillin allergy",
    "any_of": ["allergic to penicillin", "allergy to penicillin"],
}
EGFR = {"name": "eGFR", "kind": "number", "expected": 76.3, "unit": "mL/min/{1.73_m2}", "tolerance": 1.0}


def passed(check: dict, text: str) -> bool:
    return score_checks([check], text)[0].passed


# --- Numbers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Latest serum creatinine 1.3 mg/dL on 2018-09-29.",
        "Creatinine: 1.30 mg/dL",
        "- **Creatinine** 1.32 mg/dl (normal)",
        "| Creatinine | **1.3** | mg/dL |",
        "Creatinine rose from 0.9 mg/dL to 1.3mg/dL.",
    ],
)
def test_number_with_its_unit_passes(text: str) -> None:
    assert passed(CREATININE, text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Latest creatinine 1.8 mg/dL.", "wrong value"),
        ("Creatinine 1.3 mmol/L", "another unit"),
        ("Creatinine 115 µmol/L (1.3)", "another unit, the bare number has none"),
        ("Creatinine 11.3 mg/dL", "1.3 inside 11.3"),
        ("Creatinine 1.36 mg/dL", "outside the tolerance"),
        ("Creatinine 1.3", "no unit"),
        ("Creatinine within reference range 0.7-1.3 mg/dL", "upper end of a range"),
        ("Bilirubin 1.3 mg/dL\nCreatinine not measured", "the value belongs to another line's lab"),
        ("", "empty report"),
    ],
)
def test_wrong_or_unattributed_number_fails(text: str, why: str) -> None:
    assert not passed(CREATININE, text), why


def test_tolerance_boundary_and_decimals() -> None:
    assert passed(CREATININE, "creatinine 1.35 mg/dL")  # |1.35 - 1.3| == tolerance, despite floating point
    exact = {**CREATININE, "tolerance": 0}
    assert passed(exact, "creatinine 1.300 mg/dL")
    assert not passed(exact, "creatinine 1.35 mg/dL")


@pytest.mark.parametrize(
    "text",
    [
        "eGFR 76 mL/min/1.73 m2 (CKD-EPI 2021)",
        "eGFR 76.3 ml/min/1.73m²",
        "GFR 77 mL/min per 1.73 m^2",
        "eGFR 76.3 mL/min/{1.73_m2}",  # UCUM verbatim
    ],
)
def test_calculator_unit_spellings(text: str) -> None:
    assert passed(EGFR, text)


def test_calculator_value_in_bare_ml_min_fails() -> None:
    assert not passed(EGFR, "eGFR 76 mL/min")


def test_failure_detail_names_what_was_found() -> None:
    result = score_checks([CREATININE], "Creatinine 1.8 mg/dL")[0]
    assert (result.passed, result.kind, result.expected) == (False, "number", 1.3)
    assert "1.8" in result.detail


# --- Text and absent ------------------------------------------------------------------------------------------


def test_missing_medication_fails() -> None:
    assert not passed(LISINOPRIL, "Active medications: hydrochlorothiazide 25 mg, memantine.")


@pytest.mark.parametrize("text", ["Takes LISINOPRIL 10 mg daily", "Zestril 10 mg", "**Lisinopril** (active)"])
def test_medication_or_synonym_passes(text: str) -> None:
    assert passed(LISINOPRIL, text)


def test_text_matches_on_word_boundaries() -> None:
    nut = {"name": "allergy", "kind": "text", "expected": "nut"}
    assert passed(nut, "Allergy to nuts")
    assert not passed(nut, "Allergy to peanut; nutrition normal")


def test_absent_check_fails_when_the_text_claims_it() -> None:
    assert not passed(NO_PENICILLIN_ALLERGY, "Allergies: penicillin allergy (rash).")
    assert not passed(NO_PENICILLIN_ALLERGY, "No fever. The patient is allergic to penicillin.")


@pytest.mark.parametrize(
    "text",
    [
        "Allergies: none recorded.",
        "No penicillin allergy is recorded.",
        "The patient is not allergic to penicillin.",
        "Penicillin allergy: none.",
        "",
    ],
)
def test_absent_check_passes_without_an_affirmative_claim(text: str) -> None:
    assert passed(NO_PENICILLIN_ALLERGY, text)


# --- The model ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "x", "kind": "number", "expected": 1.3},  # no unit
        {"name": "x", "kind": "number", "expected": "high", "unit": "mg/dL"},
        {"name": "x", "kind": "text", "expected": 3.0},
        {"name": "x", "kind": "guess", "expected": "a"},
        {"name": "x", "kind": "text", "expected": "a", "synonyms": ["b"]},  # unknown field
    ],
)
def test_invalid_checks_are_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Check.model_validate(bad)


def test_score_checks_keeps_order_and_accepts_models() -> None:
    results = score_checks([Check.model_validate(LISINOPRIL), CREATININE], "lisinopril; creatinine 1.3 mg/dL")
    assert [r.name for r in results] == ["active medication", "latest serum creatinine"]
    assert all(r.passed for r in results)


# --- Every bundled suite's case files -------------------------------------------------------------------------


def bundled_case_files() -> list[Path]:
    return [path for suite in bundled_suites() for path in case_files(BUNDLED / suite)]


def test_the_record_suite_is_bundled() -> None:
    assert "synthea-records" in bundled_suites()
    assert len(case_files(BUNDLED / "synthea-records")) >= 8


@pytest.mark.parametrize("path", bundled_case_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_bundled_case_file_loads_and_its_checks_validate(path: Path) -> None:
    case = load_case_file(path, DATA_DIR)
    assert case.id == path.stem
    checks = (case.label or {}).get("checks")
    if checks is not None:
        assert checks, "an empty checks list scores nothing"
        models = [Check.model_validate(c) for c in checks]
        assert len({m.name for m in models}) == len(models), "check names are unique within a case"
