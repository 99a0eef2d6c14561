"""The ReAct baseline: free tool choice through one union schema, the case's as_of imposed, measurements after."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from fakes import DEMOGRAPHICS, LEUKOCYTES, PNEUMONIA, FakeToolCallingModel
from medconsult.agents.react_baseline import step_model
from medconsult.cases import Case
from medconsult.config import Settings
from medconsult.evals.agent_runs import run_react
from medconsult.runner import Services
from medconsult.tools.base import MedTool, ToolContext, ToolResult
from medconsult.tools.fhir.allergies import AllergiesResult
from medconsult.tools.fhir.common import PatientArgs
from medconsult.tools.fhir.conditions import ConditionArgs, ConditionsResult
from medconsult.tools.fhir.find_patient import FindPatientArgs, FindPatientResult
from medconsult.tools.fhir.medications import MedicationArgs, MedicationsResult
from medconsult.tools.fhir.observations import ObservationArgs, ObservationsResult
from medconsult.tools.fhir.patient_summary import PatientSummaryResult
from medconsult.tools.registry import ToolRegistry

PENICILLIN_ANAPHYLAXIS = {"summary": "1 allergy", "allergies": [{
    "resource": "AllergyIntolerance/a1", "substance": "Penicillin V", "category": ["medication"],
    "criticality": "high", "reactions": ["anaphylaxis"], "clinical_status": "active"}]}


class Recorded(MedTool):
    canned: Any = None
    seen: list = []

    def execute(self, args: BaseModel) -> ToolResult:
        self.seen.append(args.model_dump(mode="json"))
        return self.result_model.model_validate(self.canned)


def _tool(name: str, schema: type[BaseModel], model: type[ToolResult], canned: dict) -> Recorded:
    cls = type(f"Recorded_{name}", (Recorded,), {"result_model": model, "__module__": __name__})
    return cls(name=name, description=f"{name} tool", args_schema=schema, context=ToolContext(Settings()),
               canned=canned, seen=[])


def registry(allergies: dict | None = None) -> ToolRegistry:
    tools = [
        _tool("fhir_find_patient", FindPatientArgs, FindPatientResult,
              {"summary": "found", "matches": [{"resource": "Patient/p1"}], "matched_by": "identifier"}),
        _tool("fhir_patient_summary", PatientArgs, PatientSummaryResult, DEMOGRAPHICS),
        _tool("fhir_conditions", ConditionArgs, ConditionsResult, {"summary": "1", "conditions": [PNEUMONIA]}),
        _tool("fhir_medications", MedicationArgs, MedicationsResult, {"summary": "0", "medications": []}),
        _tool("fhir_allergies", PatientArgs, AllergiesResult, allergies or {"summary": "0", "allergies": []}),
        _tool("fhir_observations", ObservationArgs, ObservationsResult,
              {"summary": "1", "category": "laboratory", "total_found": 1, "observations": [LEUKOCYTES]}),
    ]
    return ToolRegistry(tools={t.name: t for t in tools})


def step(tool: str, arguments: dict | None = None, answer: dict | None = None) -> dict:
    action = {"tool": tool, "answer": answer} if tool == "final_answer" else {"tool": tool, "arguments": arguments}
    return {"thought": f"next: {tool}", "action": action}


def answer(reasoning: str = "Leukocytes 14.2 10*3/uL and a pneumonia on the problem list.",
           action: str = "Amoxicillin 1 g orally three times daily") -> dict:
    return {"summary": "Likely bacterial pneumonia.",
            "diagnoses": [{"diagnosis": "Bacterial pneumonia", "likelihood": "high", "reasoning": reasoning},
                          {"diagnosis": "COVID-19", "likelihood": "low", "reasoning": "no test"}],
            "plan": [{"action": action, "category": "antimicrobial", "rationale": "community-acquired pneumonia"}]}


async def _run(tmp_path: Path, monkeypatch, tools: ToolRegistry, script: list, max_steps: int = 6) -> dict:
    monkeypatch.setattr("medconsult.evals.agent_runs.discover_tools", lambda context: tools)
    settings = Settings(state_dir=tmp_path / "state", react_max_steps=max_steps)
    case = Case(id="r1", patient="MRN-1", question="Cough and fever?", as_of=date(2018, 9, 29))
    model = FakeToolCallingModel(script=script)
    outputs = await run_react(case, settings, Services("http://127.0.0.1:9/fhir", model, "fake"), tmp_path / "out")
    return {"outputs": outputs.model_dump(mode="json"), "model": model}


def test_every_tool_is_a_choice_and_tools_with_the_same_arguments_share_a_branch():
    schema = step_model(list(registry().tools.values())).model_json_schema()
    branches = schema["$defs"]
    tools = [b["properties"]["tool"] for b in branches.values() if "tool" in b.get("properties", {})]
    names = {n for t in tools for n in t.get("enum", [t.get("const")])}
    assert names == {*registry().tools, "final_answer"}
    shared = next(t["enum"] for t in tools if "enum" in t)
    assert set(shared) == {"fhir_allergies", "fhir_patient_summary"}  # both take just a patient id
    first = schema["properties"]["action"]["oneOf"][0]["$ref"].split("/")[-1]
    assert branches[first]["properties"]["tool"]["const"] == "fhir_find_patient"  # the order a clinician works in
    assert all("as_of" not in json.dumps(b) for b in branches.values())  # the harness sets it


async def test_the_agent_chooses_its_tools_and_the_case_date_is_imposed(tmp_path: Path, monkeypatch):
    tools = registry()
    run = await _run(tmp_path, monkeypatch, tools, [
        step("fhir_find_patient", {"query": "MRN-1"}),
        step("fhir_observations", {"patient_id": "p1"}),
        step("final_answer", answer=answer()),
    ])
    outputs = run["outputs"]
    assert [c["tool"] for c in outputs["trajectory"]] == ["fhir_find_patient", "fhir_observations"]
    assert tools.get("fhir_observations").seen[0]["as_of"] == "2018-09-29"
    assert outputs["differential"]["diagnoses"][0]["diagnosis"] == "Bacterial pneumonia"
    assert outputs["grounding"]["checked_numbers"] >= 1 and outputs["grounding"]["flags"] == []
    trace = [json.loads(line) for line in (tmp_path / "out/trace.jsonl").read_text().splitlines()]
    assert [e["name"] for e in trace if e["kind"] == "tool"] == ["fhir_find_patient", "fhir_observations"]
    assert sum(e["kind"] == "llm" for e in trace) == 3
    observed = str(run["model"].calls[-1][-1].content)
    assert observed.startswith("Observation from fhir_observations") and "14.2" in observed
    assert "Bacterial pneumonia" in (tmp_path / "out/report.md").read_text()


async def test_a_value_the_agent_never_saw_is_counted_as_fabricated(tmp_path: Path, monkeypatch):
    run = await _run(tmp_path, monkeypatch, registry(), [
        step("fhir_find_patient", {"query": "MRN-1"}),
        step("fhir_observations", {"patient_id": "p1"}),
        step("final_answer", answer=answer(reasoning="Leukocytes 18.5 10*3/uL.")),
    ])
    flags = run["outputs"]["grounding"]["flags"]
    assert [f["kind"] for f in flags] == ["number"] and "18.5" in json.dumps(flags)


async def test_an_unsafe_answer_is_measured_by_the_safety_review_it_never_saw(tmp_path: Path, monkeypatch):
    """Penicillin anaphylaxis on record; the agent never looked and proposes amoxicillin: a block, before = after."""
    run = await _run(tmp_path, monkeypatch, registry(PENICILLIN_ANAPHYLAXIS), [
        step("fhir_find_patient", {"query": "MRN-1"}),
        step("final_answer", answer=answer()),
    ])
    outputs = run["outputs"]
    blocks = [f for f in outputs["safety_findings"] if f["severity"] == "block"]
    assert blocks and blocks[0]["drug"] == "amoxicillin" and blocks[0]["rule"] == "allergy"
    assert outputs["first_draft_findings"] == outputs["safety_findings"]
    assert "fhir_allergies" not in [c["tool"] for c in outputs["trajectory"]]  # the harness read it, untraced


async def test_after_the_step_limit_only_the_final_answer_is_offered(tmp_path: Path, monkeypatch):
    """One tool call allowed: a second tool call does not validate against the final-only schema and is not run;
    the repair turn answers."""
    run = await _run(tmp_path, monkeypatch, registry(), [
        step("fhir_find_patient", {"query": "MRN-1"}),
        step("fhir_observations", {"patient_id": "p1"}),
        step("final_answer", answer=answer()),
    ], max_steps=1)
    outputs = run["outputs"]
    assert [c["tool"] for c in outputs["trajectory"]] == ["fhir_find_patient"]
    assert outputs["differential"]["diagnoses"][0]["diagnosis"] == "Bacterial pneumonia"


async def test_invalid_arguments_come_back_as_an_observation_not_a_crash(tmp_path: Path, monkeypatch):
    run = await _run(tmp_path, monkeypatch, registry(), [
        step("fhir_observations", {"patient_id": "Patient/p1/x"}),
        step("final_answer", answer=answer()),
    ])
    observed = str(run["model"].calls[-1][-1].content)
    assert observed.startswith("Observation: error: invalid arguments for fhir_observations")
    assert run["outputs"]["trajectory"] == []


async def test_a_model_that_never_answers_ends_with_a_reason(tmp_path: Path, monkeypatch):
    run = await _run(tmp_path, monkeypatch, registry(), ["not json", "not json", "not json", "not json"])
    outputs = run["outputs"]
    assert outputs["differential"] is None and "failed" in outputs["gaps"][0]["reason"]
    assert "No answer" in (tmp_path / "out/report.md").read_text()


async def test_an_antibiotic_the_answer_does_not_name_is_reported_as_not_checked(tmp_path: Path, monkeypatch):
    run = await _run(tmp_path, monkeypatch, registry(PENICILLIN_ANAPHYLAXIS), [
        step("fhir_find_patient", {"query": "MRN-1"}),
        step("final_answer", answer=answer(action="Administer antibiotics")),
    ])
    findings = run["outputs"]["safety_findings"]
    assert [(f["rule"], f["drug"]) for f in findings] == [("unknown-drug", "Administer antibiotics")]


def test_the_model_names_images_by_alias_and_never_reads_the_case_id_or_a_path():
    from medconsult.agents.react_baseline import image_aliases, tool_arguments
    from medconsult.graphs.react import opening_messages
    from medconsult.tools.imaging.load_image import LoadImageArgs, LoadImageTool

    path = "/data/cases/ieee8023/images/ieee8023-183-d0.dcm"
    case = Case(id="ieee8023-183-d0", patient="MRN-0123456789", images=[path], as_of=date(2020, 3, 2),
                synthetic_dates=True)
    tool = LoadImageTool(context=ToolContext(Settings()))
    shown = "\n".join(m.content for m in opening_messages(case, ToolRegistry(tools={tool.name: tool}), 6))
    assert "image-1.dcm" in shown and "ieee8023" not in shown and "/data" not in shown
    assert "synthetic" in shown and "MRN-0123456789" in shown
    arguments = tool_arguments(tool, LoadImageArgs(path="image-1.dcm"), case.as_of, image_aliases(case))
    assert arguments == {"path": path}
