"""The safety-traps suite: every trap its labels name is caught by the safety review from the bundle's own record.

No server: the bundles go through the real loader into an in-memory store that answers the few searches the
record and calculator tools make; the real tools then read the record (as the graph's intake, record and score
steps call them), `safety_context` turns their results into the review's inputs, and `review_plan` reviews the
knowledge-base regimens the plan step would offer at the patient's severity.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import DATA_DIR
from fakes import BundleStore, fhir_codes
from medconsult.agents.deterministic.regimens import candidate_regimens, regimen_drugs
from medconsult.agents.deterministic.safety_review import safety_context
from medconsult.agents.schemas import CitedFact, Differential, RankedDiagnosis
from medconsult.cases import CaseFile, load_case_file
from medconsult.clinical.codes import ANALYTES
from medconsult.config import Settings
from medconsult.evals.calculator_check import bundle_resources, calculator_agreement, recompute_calculators
from medconsult.evals.suites import prepare_suite, read_manifest, resolve_suite
from medconsult.fhir.loader import load_bundle_file
from medconsult.graphs.stages import stage_calls
from medconsult.knowledge import SelectedRegimen
from medconsult.records import ToolRecord
from medconsult.safety import SafetyContext, SafetyFinding, parse_drugs, review_plan
from medconsult.tools.base import Stage, StageInputs, ToolContext
from medconsult.tools.calculators import calculator_tools
from medconsult.tools.fhir import fhir_tools
from medconsult.tools.runner import run_tool

SUITE = resolve_suite("safety-traps")
CASE_IDS = [p.stem for p in prepare_suite(SUITE, DATA_DIR, SUITE, gateway=None)]
# What safety_context reads, and the scores the plan's severity comes from.
READ_TOOLS = {"fhir_patient_summary", "fhir_conditions", "fhir_medications", "fhir_allergies",
              "egfr_ckd_epi_2021", "curb65", "crb65", "psi_port"}
CAP = Differential(summary="Community-acquired pneumonia.", diagnoses=[RankedDiagnosis(
    diagnosis="Community-acquired pneumonia", likelihood="high", evidence=[CitedFact(fact="F1", stance="supports")],
    reasoning="Fever, cough and raised inflammatory markers.", discriminating_test="Chest radiograph",
)])
DATED = ("onsetDateTime", "recordedDate", "effectiveDateTime", "authoredOn")
PRESENTATION = ("temperature", "heart_rate", "respiratory_rate", "spo2", "systolic_bp", "diastolic_bp", "bun",
                "creatinine", "leukocytes", "crp")


# ---- the case as the graph sees it ------------------------------------------------------------------------------


def case_file(case_id: str) -> CaseFile:
    return load_case_file(SUITE / f"{case_id}.yaml", DATA_DIR)


def bundle_path(case_id: str) -> Path:
    return SUITE / "fhir" / f"{case_id}.json"


def loaded_store(case_id: str) -> BundleStore:
    store = BundleStore()
    result = load_bundle_file(store, bundle_path(case_id))
    assert result.status == "loaded" and result.failed == 0
    return store


def tool_records(case_id: str, settings: Settings) -> list[ToolRecord]:
    """fhir_find_patient as intake calls it, then the record and score steps the review and severity read."""
    context = ToolContext(settings)
    context.fhir = loaded_store(case_id)  # replaces the cached server connection
    tools = {t.name: t for t in [*fhir_tools(context), *calculator_tools(context)]}
    case = case_file(case_id)
    found = _run(tools["fhir_find_patient"], {"query": case.patient})
    matches = found.result["matches"]
    assert found.result["matched_by"] == "identifier" and len(matches) == 1
    inputs = [StageInputs(settings, matches[0]["resource"].removeprefix("Patient/"), case.as_of)]
    calls = [c for stage in (Stage.RECORD, Stage.SCORES) for c in stage_calls(tools.values(), stage, inputs)]
    records = [_run(tool, call.args) for tool, call in calls if tool.name in READ_TOOLS]
    assert all(r.ok for r in records), [r.error for r in records if not r.ok]
    return [found, *records]


def _run(tool: Any, args: dict) -> ToolRecord:
    return asyncio.run(run_tool(tool, args, timeout_s=30))


_RECORDS: dict[str, list[ToolRecord]] = {}


@pytest.fixture
def records(request: pytest.FixtureRequest, settings: Settings) -> list[ToolRecord]:
    case_id = request.node.callspec.params["case_id"]
    if case_id not in _RECORDS:
        _RECORDS[case_id] = tool_records(case_id, settings)
    return _RECORDS[case_id]


def offered_regimens(records: list[ToolRecord]) -> list[SelectedRegimen]:
    """The regimens the plan step offers for CAP at the severity the scores give (its first draft)."""
    return candidate_regimens(CAP, records)


def regimen_with(drug: str, regimens: list[SelectedRegimen]) -> SelectedRegimen:
    holding = [r for r in regimens if drug in {n for d in regimen_drugs(r) for n in parse_drugs(d.name)}]
    assert holding, f"{drug} is not in any regimen offered at this severity: the temptation would not arise"
    return holding[0]


def findings_for(drug: str, regimen: SelectedRegimen, context: SafetyContext) -> list[SafetyFinding]:
    return [f for f in review_plan(regimen_drugs(regimen), context) if f.drug == drug]


# ---- the suite's files ------------------------------------------------------------------------------------------


def test_suite_is_bundled_and_lists_six_cases() -> None:
    manifest = read_manifest(SUITE)
    assert manifest.fhir_bundles == ["fhir"] and not manifest.import_
    assert len(CASE_IDS) == 6
    assert sorted(p.stem for p in (SUITE / "fhir").glob("*.json")) == CASE_IDS


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_case_file_and_bundle_agree(case_id: str) -> None:
    case = case_file(case_id)
    assert case.id == case_id and case.as_of is not None and case.question
    assert case.label["finding"] == "Community-acquired pneumonia"
    assert case.label["traps"] and all(
        {"rule", "severity", "drug_or_class", "why"} <= set(t) for t in case.label["traps"]
    )
    assert case.images
    if DATA_DIR.is_dir():  # public samples from the shared data folder
        assert all(Path(p).is_file() for p in case.images)
    bundle = json.loads(bundle_path(case_id).read_text())
    assert bundle["type"] == "transaction"
    for entry in bundle["entry"]:  # PUTs to fixed ids: loading twice changes nothing
        resource = entry["resource"]
        assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
        assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
    resources = bundle_resources(bundle)
    [patient] = resources["Patient"]
    assert case.patient in {i["value"] for i in patient["identifier"]}
    pneumonia = [c for c in resources["Condition"] if "233604007" in fhir_codes(c["code"])]
    assert [c["onsetDateTime"][:10] for c in pneumonia] == [(case.as_of - timedelta(days=1)).isoformat()]
    dated = [r.get(f) for rs in resources.values() for r in rs for f in DATED if r.get(f)]
    assert max(dated)[:10] < case.as_of.isoformat(), "nothing in the bundle is hidden by as_of"


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_presentation_is_coded_as_the_analyte_table_expects(case_id: str) -> None:
    """Every vital and laboratory value of the presentation carries the analyte's LOINC code and canonical unit."""
    as_of = case_file(case_id).as_of
    observations = bundle_resources(json.loads(bundle_path(case_id).read_text()))["Observation"]
    coded = {
        (coding["code"], (holder.get("valueQuantity") or {}).get("code"), obs["effectiveDateTime"][:10])
        for obs in observations
        for holder in [obs, *obs.get("component", [])]
        for coding in holder["code"]["coding"]
    }
    day_before = (as_of - timedelta(days=1)).isoformat()
    for key in PRESENTATION:
        analyte = ANALYTES[key]
        assert (analyte.loinc[0], analyte.unit, day_before) in coded, key


# ---- the traps ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_every_trap_is_caught_with_its_rule(case_id: str, records: list[ToolRecord]) -> None:
    context, regimens = safety_context(records), offered_regimens(records)
    for trap in case_file(case_id).label["traps"]:
        drug = parse_drugs(trap["drug_or_class"])[0]
        found = findings_for(drug, regimen_with(drug, regimens), context)
        caught = [f for f in found if f.rule == trap["rule"] and f.severity == trap["severity"]]
        assert caught, f"{case_id}: {drug} not caught by {trap['rule']} ({trap['severity']}): {found}"
        assert all(f.evidence for f in caught), "a trap finding cites the record it rests on"


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_the_safe_alternative_is_not_blocked(case_id: str, records: list[ToolRecord]) -> None:
    safe = case_file(case_id).label["safe_alternative"]
    [regimen] = [r for r in offered_regimens(records) if r.id == safe["regimen"]]
    context = safety_context(records)
    assert not [f for f in review_plan(regimen_drugs(regimen), context) if f.severity == "block"]
    assert findings_for(safe["drug"], regimen, context) == []


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_context_reads_the_trap_from_the_record(case_id: str, records: list[ToolRecord]) -> None:
    """The review's inputs come from the tools' results, with their FHIR references (not from the label)."""
    context = safety_context(records)
    assert context.allergies_known and context.age_years is not None and context.egfr is not None
    rules = {t["rule"] for t in case_file(case_id).label["traps"]}
    if "allergy" in rules:
        assert [a.criticality for a in context.allergies] == ["high"]
        assert context.allergies[0].reactions == ["Anaphylaxis"]
    if "interaction" in rules:
        assert context.medications and all(
            m.resource.startswith("MedicationRequest/") for m in context.medications
        )
    if "renal" in rules:
        assert 20 <= context.egfr < 25 and context.egfr_resource.startswith("Observation/")
    if "pregnancy" in rules:
        assert context.pregnant and context.pregnancy_resource.startswith("Condition/")
    else:
        assert context.pregnant is None


# ---- the project's calculators against the independent recomputation ---------------------------------------------


EXPECTED = {  # (eGFR, CURB-65) worked by hand from the bundle values
    "strap-01-penicillin-anaphylaxis": (93.9, 0),
    "strap-02-warfarin-amiodarone": (70.9, 2),
    "strap-03-severe-renal-impairment": (21.2, 2),
    "strap-04-pregnancy": (123.8, 0),
    "strap-05-citalopram-qt": (80.7, 1),
    "strap-06-ceftriaxone-anaphylaxis": (60.8, 3),
}


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_project_calculators_agree_with_the_recomputation(case_id: str, records: list[ToolRecord]) -> None:
    resources = bundle_resources(json.loads(bundle_path(case_id).read_text()))
    recomputed = recompute_calculators(resources, case_file(case_id).as_of)
    assert (recomputed["egfr_ckd_epi_2021"], recomputed["curb65"]) == pytest.approx(
        EXPECTED[case_id], abs=0.05
    )
    results = {r.tool: r.result for r in records if r.ok}
    assert results["curb65"]["complete"], "GCS 15 is on record, so no CURB-65 criterion is unknown"
    rows = calculator_agreement(recomputed, results)
    assert [r["calculator"] for r in rows] == ["egfr_ckd_epi_2021", "curb65"]
    assert all(r["agree"] is True for r in rows), rows


def test_bundles_reload_idempotently() -> None:
    store = BundleStore()
    for case_id in CASE_IDS:
        load_bundle_file(store, bundle_path(case_id))
    before = dict(store.resources)
    for case_id in CASE_IDS:
        load_bundle_file(store, bundle_path(case_id))
    assert store.resources == before
    assert all(r["subject"]["reference"].startswith("Patient/") for r in before.values() if "subject" in r)
