"""Suites: bundled names and folders, the manifest's case selection and bundles, clear errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conftest import DATA_DIR
from medconsult.cases import load_case_file
from medconsult.evals.suites import (
    SuiteError,
    bundled_suites,
    case_files,
    prepare_suite,
    read_manifest,
    resolve_suite,
)


def _suite(tmp_path: Path, manifest: str | None) -> Path:
    suite = tmp_path / "suite"
    suite.mkdir()
    for name in ("b", "a", "c"):
        (suite / f"{name}.yaml").write_text(f"id: {name}\npatient: MRN-{name}\n")
    (suite / "import-report.json").write_text("{}")
    if manifest is not None:
        (suite / "suite.yaml").write_text(manifest)
    return suite


def test_the_bundled_suites_are_found_by_name_and_a_folder_path_wins():
    assert {"ieee8023-dev", "synthea-records", "safety-traps"} <= set(bundled_suites())
    assert resolve_suite("safety-traps").name == "safety-traps"
    assert read_manifest(resolve_suite("ieee8023-dev")).import_.format == "ieee8023"


def test_an_unknown_suite_names_the_bundled_ones():
    with pytest.raises(SuiteError, match="no suite folder or bundled suite named 'nope'.*safety-traps"):
        resolve_suite("nope")


def test_a_plain_folder_runs_every_case_file_in_name_order(tmp_path: Path):
    suite = _suite(tmp_path, None)
    files = prepare_suite(suite, tmp_path, tmp_path / "imports", None)
    assert [p.name for p in files] == ["a.yaml", "b.yaml", "c.yaml"] and files == case_files(suite)


def test_the_manifest_selects_cases_in_its_order_and_names_missing_ones(tmp_path: Path):
    suite = _suite(tmp_path, "description: two\ncases: [c, a]\n")
    assert [p.stem for p in prepare_suite(suite, tmp_path, tmp_path / "imports", None)] == ["c", "a"]
    (suite / "suite.yaml").write_text("cases: [a, zz]\n")
    with pytest.raises(SuiteError, match="cases not found .*: zz"):
        prepare_suite(suite, tmp_path, tmp_path / "imports", None)


def test_a_missing_bundle_folder_or_data_set_is_a_clear_error(tmp_path: Path):
    suite = _suite(tmp_path, 'fhir_bundles: ["{data}/nowhere"]\n')
    with pytest.raises(SuiteError, match="bundle path .*nowhere does not exist"):
        prepare_suite(suite, tmp_path, tmp_path / "imports", None)
    (suite / "suite.yaml").write_text('import: {format: ieee8023, source: "{data}/absent"}\n')
    with pytest.raises(SuiteError, match="the ieee8023 data set is not at"):
        prepare_suite(suite, tmp_path, tmp_path / "imports", None)


def test_an_invalid_manifest_is_reported_with_its_path(tmp_path: Path):
    suite = _suite(tmp_path, "cases: [a]\nunknown_key: 1\n")
    with pytest.raises(SuiteError, match="suite.yaml"):
        read_manifest(suite)


async def test_a_retried_case_starts_a_fresh_checkpoint_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A case killed or crashed mid-way is retried from nothing, not from the state its last attempt left."""
    from medconsult.config import Settings
    from medconsult.evals import runner
    from medconsult.evals.agent_runs import AgentOutput

    threads: list[str] = []

    async def crashing_then_fine(case_file, settings, services, out, thread_id):
        threads.append(thread_id)
        if len(threads) == 1:
            raise RuntimeError("killed")
        return AgentOutput()

    monkeypatch.setitem(runner.AGENTS, "consult", crashing_then_fine)
    suite = _suite(tmp_path, "cases: [a]\n")
    services = runner.Services("http://127.0.0.1:9/fhir", None, "fake")
    settings = Settings(state_dir=tmp_path / "state")
    first = await runner.run_suite(case_files(suite)[:1], settings, services, tmp_path / "run")
    second = await runner.run_suite(case_files(suite)[:1], settings, services, tmp_path / "run")
    assert [first[0]["status"], second[0]["status"]] == ["error", "done"]
    assert len(set(threads)) == 2 and all(t.startswith("eval-run-a-") for t in threads)


IEEE = DATA_DIR / "cxr_ieee8023_ncsa"


@pytest.mark.skipif(not IEEE.is_dir(), reason="the non-commercial ieee8023 folder is not present")
def test_the_dev24_suite_is_one_image_per_patient_stratified_over_every_etiology_class(tmp_path: Path):
    """Re-derived from the imported cases: 24 cases, 24 patients, each class in proportion (at least one each), the
    older six-case suite included with the same images."""
    from medconsult.evals.scorers import scorable_class
    from medconsult.importers.pipeline import import_dataset

    import_dataset("ieee8023", IEEE, tmp_path)
    by_id = {p.stem: load_case_file(p, DATA_DIR) for p in tmp_path.glob("*.yaml")}
    chosen = read_manifest(resolve_suite("ieee8023-dev24")).cases
    assert len(chosen) == 24 and set(chosen) <= set(by_id)
    patients = [by_id[c].label["patient"] for c in chosen]
    assert len(set(patients)) == 24
    classes = Counter(scorable_class(by_id[c].label["finding"]) for c in chosen)
    assert classes == {"covid-19": 13, "bacterial": 5, "fungal": 3, "other": 1, "viral": 1, "normal": 1}
    pool = Counter(scorable_class(case.label["finding"]) for case in {c.label["patient"]: c for c in by_id.values()}
                   .values())
    assert pool == {"covid-19": 31, "bacterial": 10, "fungal": 6, "other": 2, "viral": 1, "normal": 1, None: 2}
    assert set(read_manifest(resolve_suite("ieee8023-dev")).cases) <= set(chosen)
    # A run done in parts (--limit K) stays stratified: every class by K = 15, none off its share by > 1.5 cases.
    assert {scorable_class(by_id[c].label["finding"]) for c in chosen[:15]} == set(classes)
    for k in range(1, 25):
        prefix = Counter(scorable_class(by_id[c].label["finding"]) for c in chosen[:k])
        assert all(abs(prefix[name] - k * count / 24) <= 1.5 for name, count in classes.items()), (k, prefix)


def test_the_paediatric_suite_holds_only_children_the_encoder_never_trained_on():
    """Re-derived from the data set's manifest and the encoder's metadata, without importing 4,963 images."""
    import csv
    import json

    from medconsult.fusion.bundle import DEFAULT_BUNDLE, METADATA
    from medconsult.importers.model import pseudonymous_mrn

    metadata = json.loads((DEFAULT_BUNDLE / METADATA).read_text())
    held, trained = set(metadata["calibration"]["patient_groups"]), set(metadata["training"]["patient_mrns"])
    rows = list(csv.DictReader((DATA_DIR / "cxr_kermany_pediatric_ccby" / "manifest.csv").open()))
    by_case = {f"{pseudonymous_mrn('kermany-' + r['patient'])}-{Path(r['image']).stem}": r for r in rows}
    chosen = read_manifest(resolve_suite("kermany-paediatric")).cases
    assert len(chosen) == 24 and set(chosen) <= set(by_case)
    assert all(by_case[c]["patient"] in held for c in chosen)
    assert not {pseudonymous_mrn("kermany-" + by_case[c]["patient"]) for c in chosen} & trained
    assert len({by_case[c]["patient"] for c in chosen}) == 24
    assert Counter(by_case[c]["label"] for c in chosen) == {"normal": 8, "bacterial": 8, "viral": 8}
    assert {by_case[c]["label"] for c in chosen[:3]} == {"normal", "bacterial", "viral"}
