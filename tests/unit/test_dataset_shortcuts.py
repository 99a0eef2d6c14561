"""No agent may read where a case comes from: no data set's name or source in identifiers, system URIs, ids, file
names or prompts (every Hannover patient has COVID-19), and a synthetic date is presented as one.

The imported bundles go through the real loader into an in-memory store; the real record and score tools read them
as the consult graph does; what the model would be shown (fact texts, the tools' raw JSON, the consult system
prompt, the ReAct opening messages) is searched for the data sets' names.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date
from pathlib import Path

import pytest

from conftest import DATA_DIR
from fakes import BundleStore
from medconsult.agents.evidence import build_facts, consult_system_prompt
from medconsult.cases import load_case_file
from medconsult.config import Settings
from medconsult.fhir.loader import load_bundle_file
from medconsult.graphs.react import opening_messages
from medconsult.graphs.stages import stage_calls
from medconsult.importers.pipeline import import_dataset
from medconsult.tools.base import Stage, StageInputs, ToolContext
from medconsult.tools.calculators import calculator_tools
from medconsult.tools.fhir import fhir_tools
from medconsult.tools.registry import ToolRegistry
from medconsult.tools.runner import run_tool

SOURCES = {"hannover": DATA_DIR / "cxr_hannover_covid", "ieee8023": DATA_DIR / "cxr_ieee8023_ncsa"}
# Written independently of the importers: any trace of a source in what the model reads.
SOURCE_WORDS = re.compile(r"ieee|8023|hannover|mhh|dataset|data set|cohen|github|urn:medconsult:dataset", re.I)
CASES_PER_SOURCE = 4


def _imported(tmp_path: Path, name: str) -> list[Path]:
    if not SOURCES[name].is_dir():
        pytest.skip(f"the {name} folder is not present")
    out = tmp_path / name
    import_dataset(name, SOURCES[name], out)
    return sorted(out.glob("*.yaml"))[:CASES_PER_SOURCE]


def _shown_to_the_model(case_path: Path, settings: Settings) -> list[str]:
    """The texts a consult of this case puts before the model."""
    case = load_case_file(case_path, DATA_DIR).to_case()
    store = BundleStore(extra_parameters=True)
    for bundle in (case_path.parent / "fhir").glob("*.json"):
        load_bundle_file(store, bundle)
    context = ToolContext(settings)
    context.fhir = store
    tools = {t.name: t for t in [*fhir_tools(context), *calculator_tools(context)]}
    found = asyncio.run(run_tool(tools["fhir_find_patient"], {"query": case.patient}, timeout_s=30))
    assert found.ok and len(found.result["matches"]) == 1, found
    inputs = [StageInputs(settings, found.result["matches"][0]["resource"].removeprefix("Patient/"), case.as_of)]
    calls = [c for stage in (Stage.RECORD, Stage.SCORES) for c in stage_calls(tools.values(), stage, inputs)]
    records = [found] + [asyncio.run(run_tool(tool, call.args, timeout_s=30)) for tool, call in calls]
    assert all(r.ok for r in records), [r.error for r in records if not r.ok]
    registry = ToolRegistry(tools=tools)
    facts = build_facts(records, registry.result_models())
    react = [m.content for m in opening_messages(case, registry, 6)]
    raw = [json.dumps(r.result) for r in records if r.tool == "fhir_find_patient"]  # ReAct sees its JSON
    return [consult_system_prompt(facts, [], case.as_of, case.synthetic_dates), *react, *raw]


@pytest.mark.parametrize("source", ["hannover", "ieee8023"])
def test_nothing_the_model_reads_names_the_source(tmp_path: Path, settings: Settings, source: str):
    for case_path in _imported(tmp_path, source):
        shown = _shown_to_the_model(case_path, settings)
        leaks = {m.group() for text in shown for m in SOURCE_WORDS.finditer(text)}
        assert leaks == set(), (case_path.stem, leaks)
        assert "synthetic" in shown[0] and "synthetic" in shown[2], "the date must be presented as synthetic"


@pytest.mark.parametrize("source", ["hannover", "ieee8023"])
def test_imported_patients_carry_a_pseudonymous_mrn(tmp_path: Path, source: str):
    for case_path in _imported(tmp_path, source):
        case = load_case_file(case_path, DATA_DIR)
        assert re.fullmatch(r"MRN-[0-9A-F]{10}", case.patient) and case.synthetic_dates
        assert case.label["patient"].startswith(f"{source}-")  # the source's patient, for evaluation only
        bundle = json.loads(next((case_path.parent / "fhir").glob(f"{case.label['patient']}.json")).read_text())
        patient = bundle["entry"][0]["resource"]
        assert patient["identifier"] == [{"system": "urn:medconsult:mrn", "value": case.patient}]
        assert "meta" not in patient and not SOURCE_WORDS.search(json.dumps(patient))


def test_a_real_calendar_date_is_presented_as_one():
    prompt = consult_system_prompt([], [], date(2018, 9, 29), False)
    assert "2018-09-29" in prompt and "synthetic" not in prompt
