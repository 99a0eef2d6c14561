"""The synthea-records suite's expected answers, re-derived from the raw Synthea bundles (no server, no FHIR tools).

Each check names its `source`; this test reads the patient's bundle JSON directly and recomputes the answer as the
record stood at the end of the case's `as_of` day (UTC, as the FHIR tools cut it): the latest result of a LOINC code
with its UCUM unit, the medication requests with status active authored by then, the allergies recorded by then,
and the CKD-EPI 2021 eGFR from the latest creatinine, age in whole years and sex.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from conftest import DATA_DIR
from medconsult.cases import CaseFile, load_case_file
from medconsult.evals.record_checks import Check
from medconsult.evals.suites import BUNDLED, case_files, read_manifest

BUNDLES = DATA_DIR / "fhir_synthea_r4" / "bundles"
SUITE = BUNDLED / "synthea-records"
LOINC, RXNORM, SNOMED = (
    "http://loinc.org",
    "http://www.nlm.nih.gov/research/umls/rxnorm",
    "http://snomed.info/sct",
)
UCUM = "http://unitsofmeasure.org"
CREATININE_CODES = ("2160-0", "38483-4")
EGFR_UNIT = "mL/min/{1.73_m2}"
EGFR_WINDOW = timedelta(days=7)  # the calculator uses a creatinine from the 7 days before the end of as_of

pytestmark = pytest.mark.skipif(not BUNDLES.is_dir(), reason=f"Synthea bundles not found at {BUNDLES}")

Resource = dict[str, Any]


@cache
def bundles_by_mrn() -> dict[str, dict[str, list[Resource]]]:
    """Resources of each patient bundle by type, keyed by the patient's identifier values."""
    found: dict[str, dict[str, list[Resource]]] = {}
    for path in sorted(BUNDLES.glob("*.json")):
        by_type: dict[str, list[Resource]] = {}
        for entry in json.loads(path.read_text())["entry"]:
            by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
        for patient in by_type.get("Patient", []):
            for identifier in patient.get("identifier", []):
                found[identifier["value"]] = by_type
    return found


def cases() -> list[Path]:
    return case_files(SUITE)


def load(path: Path) -> CaseFile:
    return load_case_file(path, DATA_DIR)


def code_of(concept: Resource, system: str) -> str | None:
    return next((c["code"] for c in concept.get("coding", []) if c.get("system") == system), None)


def display(concept: Resource) -> str:
    return (concept.get("text") or concept["coding"][0].get("display", "")).lower()


def by_day(value: str | None, as_of: date) -> bool:
    """On or before the end of `as_of`; Synthea writes UTC times, so the date part decides."""
    return value is not None and value[:10] <= as_of.isoformat()


def latest_observation(record: dict[str, list[Resource]], codes: tuple[str, ...], as_of: date) -> Resource:
    found = [
        o
        for o in record.get("Observation", [])
        if code_of(o["code"], LOINC) in codes
        and o["status"] == "final"
        and by_day(o["effectiveDateTime"], as_of)
    ]
    assert found, f"no {codes} result by {as_of}"
    last = max(o["effectiveDateTime"] for o in found)
    values = {o["valueQuantity"]["value"] for o in found if o["effectiveDateTime"] == last}
    assert len(values) == 1, f"{codes}: several different results at {last}"
    return next(o for o in found if o["effectiveDateTime"] == last)


def active_medications(record: dict[str, list[Resource]], as_of: date) -> dict[str, str]:
    return {
        code_of(m["medicationCodeableConcept"], RXNORM): display(m["medicationCodeableConcept"])
        for m in record.get("MedicationRequest", [])
        if m["status"] == "active" and by_day(m["authoredOn"], as_of)
    }


def allergies(record: dict[str, list[Resource]], as_of: date) -> dict[str, str]:
    return {
        code_of(a["code"], SNOMED): display(a["code"])
        for a in record.get("AllergyIntolerance", [])
        if by_day(a.get("recordedDate") or a.get("onsetDateTime"), as_of)
    }


def ckd_epi_2021(creatinine_mg_dl: float, age: int, female: bool) -> float:
    """Inker LA et al. NEJM 2021: 142 x min(Scr/k,1)^a x max(Scr/k,1)^-1.200 x 0.9938^age (x 1.012 female)."""
    kappa, alpha, sex_factor = (0.7, -0.241, 1.012) if female else (0.9, -0.302, 1.0)
    ratio = creatinine_mg_dl / kappa
    return 142 * min(ratio, 1) ** alpha * max(ratio, 1) ** -1.2 * 0.9938**age * sex_factor


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def egfr(record: dict[str, list[Resource]], as_of: date) -> float:
    creatinine = latest_observation(record, CREATININE_CODES, as_of)
    assert creatinine["valueQuantity"]["code"] == "mg/dL"
    taken = datetime.fromisoformat(creatinine["effectiveDateTime"]).replace(tzinfo=None)
    assert datetime.combine(as_of, datetime.max.time()) - taken <= EGFR_WINDOW, (
        "creatinine too old for the tool"
    )
    patient = record["Patient"][0]
    age = age_on(date.fromisoformat(patient["birthDate"]), as_of)
    assert age >= 18, "CKD-EPI is for adults"
    return ckd_epi_2021(creatinine["valueQuantity"]["value"], age, patient["gender"] == "female")


def decimals(value: float) -> int:
    text = repr(float(value))
    return 0 if text.endswith(".0") else len(text.split(".")[1])


def assert_number(check: Check, raw: float, shown: float) -> None:
    """The stated value is the record's rounded to its decimals; the raw value and the tool's display both pass."""
    expected = float(check.expected)
    assert round(raw, decimals(expected)) == expected, f"{check.name}: record has {raw}, case says {expected}"
    assert abs(raw - expected) <= check.tolerance, f"{check.name}: the record's own value {raw} would fail"
    assert abs(shown - expected) <= check.tolerance + 1e-9, f"{check.name}: the tool shows {shown}"


def assert_named(check: Check, records: dict[str, str], code: str) -> None:
    assert code in records, f"{check.name}: code {code} not in the record by then: {records}"
    assert any(term.lower() in records[code] for term in check.terms()), f"{check.name}: {records[code]!r}"


def verify(check: Check, record: dict[str, list[Resource]], as_of: date) -> None:
    kind, _, arg = (check.source or "").partition(":")
    if kind == "observation":
        quantity = latest_observation(record, (arg,), as_of)["valueQuantity"]
        assert (quantity["system"], quantity["code"]) == (UCUM, check.unit), f"{check.name}: unit"
        raw = quantity["value"]
        assert_number(check, raw, float(f"{raw:.3g}"))  # the observations tool prints 3 significant digits
    elif kind == "egfr-ckd-epi-2021":
        assert check.unit == EGFR_UNIT
        raw = egfr(record, as_of)
        assert_number(check, raw, float(round(raw)))  # the calculator's summary prints a whole number
    elif kind == "medication":
        assert_named(check, active_medications(record, as_of), arg)
    elif kind == "allergy":
        assert_named(check, allergies(record, as_of), arg)
    elif kind == "no-allergy":
        assert not allergies(record, as_of)
    elif kind == "medication-absent":  # prescribed later: a report naming it has read past as_of
        assert not [m for m in active_medications(record, as_of).values() if arg in m], check.name
        assert [m for m in active_medications(record, date.max).values() if arg in m], check.name
    elif kind == "allergy-absent":
        assert not [a for a in allergies(record, as_of).values() if arg in a], check.name
    else:
        pytest.fail(f"{check.name}: unknown source {check.source!r}")


def test_the_suite_loads_the_synthea_bundles() -> None:
    manifest = read_manifest(SUITE)
    assert manifest.fhir_bundles == ["{data}/fhir_synthea_r4/bundles"]
    assert 8 <= len(cases()) <= 12
    assert len({load(p).patient for p in cases()}) >= 5, "several patients"


@pytest.mark.parametrize("path", cases(), ids=lambda p: p.stem)
def test_expected_answers_match_the_raw_bundle(path: Path) -> None:
    case = load(path)
    assert case.as_of and case.question and case.label
    record = bundles_by_mrn().get(case.patient)
    assert record is not None, f"no bundle for patient {case.patient}"
    deceased = record["Patient"][0].get("deceasedDateTime")
    assert deceased is None or case.as_of.isoformat() < deceased[:10], "as_of after the death"
    assert all(Path(i).is_file() for i in case.images)
    assert "not this patient's own" in (case.description or ""), "say the radiograph is a stand-in"
    checks = [Check.model_validate(c) for c in case.label["checks"]]
    for check in checks:
        verify(check, record, case.as_of)
    # The question asks for every active medication and every allergy: the checks must list all of them.
    sources = [c.source or "" for c in checks]
    listed_medications = {s.removeprefix("medication:") for s in sources if s.startswith("medication:")}
    assert listed_medications == set(active_medications(record, case.as_of))
    listed_allergies = {s.removeprefix("allergy:") for s in sources if s.startswith("allergy:")}
    assert listed_allergies == set(allergies(record, case.as_of))
    assert listed_allergies or "no-allergy" in sources
