"""The FHIR tools against the real server and the real Synthea record of the demo patient."""

from __future__ import annotations

import pytest

from conftest import DEMO_MRN
from medconsult.tools.base import ToolContext
from medconsult.tools.registry import discover_tools

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tools(fhir_server):
    return discover_tools(ToolContext(fhir_server, fhir_server.local_fhir_url)).tools


@pytest.fixture(scope="module")
def patient_id(tools) -> str:
    found = tools["fhir_find_patient"].invoke({"query": DEMO_MRN})
    assert found["matched_by"] == "identifier" and len(found["matches"]) == 1
    return found["matches"][0]["resource"].removeprefix("Patient/")


def test_find_patient_by_resource_id_too(tools, patient_id):
    assert tools["fhir_find_patient"].invoke({"query": f"Patient/{patient_id}"})["matched_by"] == "id"
    assert tools["fhir_find_patient"].invoke({"query": "no-such-mrn"})["matches"] == []


def test_record_as_of_the_pneumonia(tools, patient_id):
    args = {"patient_id": patient_id, "as_of": "2018-09-29"}
    summary = tools["fhir_patient_summary"].invoke(args)
    assert (summary["sex"], summary["age_years"], summary["deceased"]) == ("male", 80, False)
    conditions = tools["fhir_conditions"].invoke(args)["conditions"]
    pneumonia = [c for c in conditions if c["snomed"] == "233604007"]
    assert pneumonia and pneumonia[0]["resource"].startswith("Condition/")
    labs = tools["fhir_observations"].invoke({**args, "category": "laboratory", "limit": 50})["observations"]
    assert all(o["effective"][:10] <= "2018-09-29" for o in labs)
    creatinine = next(o for o in labs if o["loinc"] == "38483-4")
    assert creatinine["unit"] == "mg/dL" and isinstance(creatinine["value"], float)
    vitals = tools["fhir_observations"].invoke({**args, "category": "vital-signs"})["observations"]
    pressure = next(o for o in vitals if o["loinc"] == "55284-4")
    assert {c["loinc"] for c in pressure["components"]} == {"8480-6", "8462-4"}


def test_as_of_hides_what_happened_later(tools, patient_id):
    earlier = {"patient_id": patient_id, "as_of": "2012-06-10"}
    conditions = tools["fhir_conditions"].invoke(earlier)["conditions"]
    assert not any(c["snomed"] == "233604007" for c in conditions)  # pneumonia came in 2018
    assert tools["fhir_patient_summary"].invoke(earlier)["age_years"] == 74
    assert tools["fhir_patient_summary"].invoke({"patient_id": patient_id})["deceased"] is True


def test_only_the_latest_result_of_each_code(tools, patient_id):
    labs = tools["fhir_observations"].invoke({"patient_id": patient_id, "limit": 200})["observations"]
    codes = [o["loinc"] for o in labs]
    assert len(codes) == len(set(codes))
    assert any(o["measurements_of_code"] > 1 for o in labs)


def test_trends_list_earlier_results_of_the_code(tools, patient_id):
    args = {"patient_id": patient_id, "as_of": "2018-09-29", "category": "laboratory", "loinc_codes": ["38483-4"]}
    creatinine = tools["fhir_observations"].invoke(args)["observations"][0]
    earlier = creatinine["earlier"]
    assert 1 <= len(earlier) <= 4 and creatinine["measurements_of_code"] > len(earlier)
    dates = [creatinine["effective"], *(e["effective"] for e in earlier)]
    assert dates == sorted(dates, reverse=True)
    oldest = earlier[-1]["value"]
    direction = creatinine["trend"].split()[0]  # "rising from 0.794 since 2014-09-06", "stable since ..."
    change = (creatinine["value"] - oldest) / max(abs(oldest), abs(creatinine["value"]))
    assert direction == ("stable" if abs(change) < 0.1 else "rising" if change > 0 else "falling")


def test_encounters_reports_and_imaging_studies(tools, patient_id):
    args = {"patient_id": patient_id, "as_of": "2018-09-29"}
    encounters = tools["fhir_encounters"].invoke({**args, "limit": 3})["encounters"]
    starts = [e["start"] for e in encounters]
    assert len(encounters) == 3 and starts == sorted(starts, reverse=True) and starts[0][:10] <= "2018-09-29"
    assert any("Pneumonia" in e["reasons"] for e in encounters)  # the admission of 2018-09-28
    reports = tools["fhir_diagnostic_reports"].invoke(args)
    assert reports["reports"] and all(r["effective"][:10] <= "2018-09-29" for r in reports["reports"])
    assert all(ref.startswith("Observation/") for r in reports["reports"] for ref in r["results"])
    studies = tools["fhir_imaging_studies"].invoke(args)["studies"]
    assert studies and studies[0]["modalities"] == ["DX"] and studies[0]["instances"] >= 1
    assert tools["fhir_clinical_notes"].invoke(args)["notes"] == []  # Synthea R4 bundles hold no notes
