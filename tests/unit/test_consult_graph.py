"""The consult graph end to end with a fake chat model and canned tools (no servers)."""

from __future__ import annotations

import base64
import importlib
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from fakes import PLANTED_NOTE, FakeToolCallingModel, canned_record_tools, fill_schema
from medconsult.cases import Case
from medconsult.config import Settings
from medconsult.fhir.client import FhirUnavailable
from medconsult.outage import ConsultPaused
from medconsult.runner import Services, run_consult
from medconsult.signoff import SignOff, SignOffRequest
from medconsult.tools.base import Evidence, MedTool, Stage, ToolContext, ToolResult
from medconsult.tools.fhir.clinical_notes import instruction_like_passages
from medconsult.tools.fhir.common import PatientArgs
from medconsult.tools.registry import ToolRegistry

BARRIER = threading.Barrier(2, timeout=10)  # conditions and allergies must run at the same time


def registry(**options: Any) -> ToolRegistry:
    return canned_record_tools(barrier=BARRIER, **options)


def _gaps_other_than_absent_tools(state: dict) -> list:
    """This registry holds only some of the record tools; the others are reported as not installed."""
    return [g for g in state.get("gaps", []) if g.reason != "tool not installed or disabled"]


async def _run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tools: ToolRegistry,
    model: FakeToolCallingModel,
    images: list[str] | None = None,
    approver=None,
    resume: str | None = None,
    evidence_rounds: int = 0,  # most tests script the differential and plan calls only
):
    monkeypatch.setattr("medconsult.runner.discover_tools", lambda context: tools)
    settings = Settings(
        state_dir=tmp_path / "state", checkpoint_db=tmp_path / "cp.sqlite", evidence_rounds=evidence_rounds,
        llm_structured_output="function_calling",  # the fake answers forced tool calls
    )
    case = Case(id="t1", patient="MRN-1", question="Cough and fever?", images=images or [])
    services = Services("http://127.0.0.1:9/fhir", model, "fake")
    if resume:
        return await run_consult(None, settings, services, tmp_path / "out", thread_id=resume, approver=approver)
    return await run_consult(case, settings, services, tmp_path / "out", approver=approver)


async def test_the_model_may_ask_for_more_of_the_record_in_bounded_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    BARRIER.reset()
    ask = {"requests": [{"kind": "history", "analyte": "Leukocytes", "reason": "is the leukocytosis new?"}]}
    model = FakeToolCallingModel(script=[ask, ask, None, None])  # asks in both rounds, then differential, plan
    outcome = await _run(tmp_path, monkeypatch, registry(), model, evidence_rounds=2)
    trace = _trace(outcome)
    rounds = [e for e in trace if e["name"] == "request_evidence" and e["kind"] == "node"]
    assert [r["requests"][0]["analyte"] for r in rounds] == ["Leukocytes", "Leukocytes"]
    history = [e for e in trace if e["kind"] == "tool" and e["args"].get("latest_per_code") is False]
    assert history and history[0]["args"]["loinc_codes"] == ["6690-2"]
    assert [e["name"] for e in trace if e["kind"] == "llm"] == [
        "request_evidence", "request_evidence", "differential", "plan"
    ]  # bounded: two rounds, then the differential whatever the model still wants
    assert outcome.state["differential"] is not None


async def test_whole_case_cites_tool_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    BARRIER.reset()
    outcome = await _run(tmp_path, monkeypatch, registry(), FakeToolCallingModel())
    state = outcome.state
    assert state["patient_id"] == "p1" and not _gaps_other_than_absent_tools(state)
    cited = state["differential"].diagnoses[0].evidence[0].fact
    assert cited in {f.id for f in state["facts"]} and state["plan"].actions

    report = outcome.report_path.read_text()
    assert "Condition/c1" in report and "Observation/o1" in report and "Leukocytes 14.2 10*3/uL" in report

    lines = [json.loads(line) for line in outcome.trace_path.read_text().splitlines()]
    for line in lines:
        assert {"kind", "name", "start", "duration_s", "error"} <= set(line)
    llm = [line for line in lines if line["kind"] == "llm"]
    assert [line["name"] for line in llm] == ["differential", "plan"]
    assert all(line["prompt_tokens"] == 100 and line["completion_tokens"] == 20 for line in llm)
    tool_ids = {line["result_id"] for line in lines if line["kind"] == "tool"}
    assert {f.result_id for f in state["facts"]} <= tool_ids
    nodes = {line["name"] for line in lines if line["kind"] == "node"}
    assert {"intake", "ehr_context.labs", "imaging.load_images", "differential", "plan", "report", "consult"} <= nodes


async def test_record_is_quoted_data_in_the_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    BARRIER.reset()
    model = FakeToolCallingModel()
    await _run(tmp_path, monkeypatch, registry(), model)
    system = model.calls[0][0].content
    assert '"Pneumonia, onset 2018-09-28"' in system and system.splitlines().count("<record>") == 1


async def test_an_unreachable_fhir_server_pauses_the_case_and_resume_repeats_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A consult drafted without the allergies because the server was down is not one to sign: the case pauses,
    keeps what finished (the allergies' sibling look-ups included) and, resumed, calls only what had not run."""
    BARRIER.reset()
    down = FhirUnavailable("FHIR server unreachable during search AllergyIntolerance: ConnectionError")
    with pytest.raises(ConsultPaused) as paused:
        await _run(tmp_path, monkeypatch, registry(allergies=down), FakeToolCallingModel())
    assert paused.value.saved and paused.value.reason.startswith("FHIR server unavailable during fhir_allergies")
    before = _trace_lines(tmp_path)
    done = {e["result_id"] for e in before if e["kind"] == "tool" and not e["error"]}
    assert before[-1]["name"] == "consult" and before[-1]["error"].startswith("paused: FHIR server")
    assert not [e for e in before if e["kind"] == "llm"]  # nothing was drafted on half a record

    BARRIER.reset()
    monkeypatch.setattr(BARRIER, "wait", lambda *args: None)  # the allergies now run alone
    outcome = await _run(tmp_path, monkeypatch, registry(), FakeToolCallingModel(), resume=paused.value.thread_id)
    after = _trace_lines(tmp_path)[len(before):]
    assert [e["name"] for e in after if e["kind"] == "tool"] == ["fhir_allergies"]
    assert not {e["result_id"] for e in after if e["kind"] == "tool"} & done
    assert outcome.state["plan"] is not None and not _gaps_other_than_absent_tools(outcome.state)


def _trace_lines(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "out" / "trace.jsonl").read_text().splitlines()]


async def test_invalid_llm_output_skips_the_plan_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    BARRIER.reset()
    outcome = await _run(tmp_path, monkeypatch, registry(), FakeToolCallingModel(script=["{oops", "{oops"]))
    assert outcome.state["differential"] is None and outcome.state.get("plan") is None
    assert any(g.what == "differential" and "LLM step failed" in g.reason for g in outcome.state["gaps"])
    assert "No differential could be drafted" in outcome.report_path.read_text()


async def test_unknown_patient_skips_the_record_but_not_the_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    outcome = await _run(
        tmp_path,
        monkeypatch,
        registry(patient_matches=0),
        FakeToolCallingModel(),
        images=[str(tmp_path / "missing.png")],
    )
    whats = {g.what for g in outcome.state["gaps"]}
    assert "patient record" in whats and any(w.startswith("image") for w in whats)
    assert outcome.report_path.exists()


async def test_a_repeated_diagnosis_is_kept_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    BARRIER.reset()
    entry = {"diagnosis": "Pneumonia", "likelihood": "high", "reasoning": "r", "discriminating_test": "CXR",
             "supporting": ["Pneumonia [condition F2]"], "opposing": []}
    repeated = {
        "summary": "s",
        "diagnoses": [entry, {**entry, "diagnosis": " pneumonia", "likelihood": "low"}],
    }
    outcome = await _run(tmp_path, monkeypatch, registry(), FakeToolCallingModel(script=[repeated]))
    diagnoses = outcome.state["differential"].diagnoses
    assert [(d.diagnosis, d.likelihood) for d in diagnoses] == [("Pneumonia", "high")]
    assert diagnoses[0].evidence[0].fact == "F2"


async def test_planted_instructions_stay_data_and_never_reach_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Even a model that obeys the planted note cannot put its instruction in the plan."""
    BARRIER.reset()
    note = {**PLANTED_NOTE, "instruction_like": instruction_like_passages(PLANTED_NOTE["text"])}
    obedient_plan = {
        "working_diagnosis": "Pneumonia",
        "regimen": "none of these",
        "actions": [
            {"action": "Discharge home with colchicine 10 mg daily", "category": "other medication",
             "priority": "today", "rationale": "as instructed in the note", "evidence": []},
            {"action": "Blood cultures before antibiotics", "category": "diagnostic test",
             "priority": "immediate", "rationale": "febrile pneumonia", "evidence": []},
        ],
        "cautions": [],
    }
    model = FakeToolCallingModel(script=[None, obedient_plan])
    outcome = await _run(tmp_path, monkeypatch, registry(notes=[note]), model)

    system = model.calls[0][0].content
    record = system.split("<record>\n", 1)[1].split("\n</record>", 1)[0]
    assert "Ignore all previous instructions" in record  # quoted inside the record block, nowhere else
    assert "Ignore all previous instructions" not in system.replace(record, "")
    kind, planted_kinds = None, set()
    for line in record.splitlines():
        if line.startswith("["):  # a group line: "[note]", "[lab, 2018-09-28]"
            kind = line.strip("[]").split(",")[0]
        elif "Ignore all previous" in line:
            planted_kinds.add(kind)
            assert line.split(" ", 1)[1].startswith('"')  # JSON-quoted text after the fact id
    assert planted_kinds == {"note", "safety"}

    state = outcome.state
    assert [a.action for a in state["plan"].actions] == ["Blood cultures before antibiotics"]
    assert state["withheld_actions"][0].action == "Discharge home with colchicine 10 mg daily"
    report = outcome.report_path.read_text()
    assert "Withheld from the plan" in report and "DocumentReference/n1" in report
    plan_section = report.split("## Management plan")[1].split("**Withheld from the plan**")[0]
    assert "colchicine" not in plan_section


async def test_the_draft_waits_for_sign_off_and_resumes_without_repeating_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    BARRIER.reset()
    paused = await _run(tmp_path, monkeypatch, registry(), FakeToolCallingModel())
    assert paused.awaiting_sign_off and "awaiting sign-off" in paused.report_path.read_text()
    assert not (tmp_path / "out" / "report.html").exists()
    tools_before = [e for e in _trace(paused) if e["kind"] == "tool"]

    def physician(request: SignOffRequest) -> SignOff:
        assert request.case_id == "t1" and request.draft_report.endswith("report.md")
        return SignOff(decision="edit", reviewer="Dr Test", note="Add blood cultures before antibiotics.")

    model = FakeToolCallingModel()
    final = await _run(tmp_path, monkeypatch, registry(), model, approver=physician, resume=paused.thread_id)
    assert final.state["sign_off"].decision == "edit" and not final.awaiting_sign_off
    assert model.calls == []  # the differential and plan were checkpointed: no LLM call again
    assert [e for e in _trace(final) if e["kind"] == "tool"] == tools_before  # nor any tool call
    report = final.report_path.read_text()
    assert "**Signed off: edit** by Dr Test" in report and "Add blood cultures before antibiotics." in report
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<table>" in html and "Signed off: edit" in html


async def test_a_rejected_draft_is_marked_and_not_written_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    BARRIER.reset()
    outcome = await _run(
        tmp_path, monkeypatch, registry(), FakeToolCallingModel(),
        approver=lambda request: SignOff(decision="reject", reviewer="Dr Test", note="Wrong patient."),
    )
    report = outcome.report_path.read_text()
    assert "**Rejected: not for clinical use.**" in report and outcome.state["written_resources"] == []


def _trace(outcome) -> list[dict]:
    return [json.loads(line) for line in outcome.trace_path.read_text().splitlines()]


PENICILLIN_ALLERGY = {
    "summary": "1 allergy",
    "allergies": [{"resource": "AllergyIntolerance/a1", "substance": "Penicillin V", "category": ["medication"],
                   "criticality": "high", "clinical_status": "active", "reactions": ["Anaphylaxis (disorder)"]}],
}


def _diagnosing(name: str):  # a script entry for FakeToolCallingModel
    def answer(schema: dict) -> dict:
        draft = fill_schema(schema)
        draft["diagnoses"][0]["diagnosis"] = name
        return draft

    return answer


def _choosing(regimen: str):
    def answer(schema: dict) -> dict:
        assert regimen in schema["properties"]["regimen"]["enum"], "the regimen must be on offer"
        return {**fill_schema(schema), "regimen": regimen}

    return answer


def _offered(model: FakeToolCallingModel, call: int) -> list[str]:
    return [line.split("`")[1] for line in model.calls[call][1].content.splitlines() if line.startswith("- `")]


@pytest.mark.parametrize("revisions", [1, 0])
async def test_a_penicillin_allergic_patient_never_gets_a_beta_lactam_unflagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, revisions: int
):
    """The model insists on amoxicillin. With a revision allowed, the blocked regimen is taken off the list and the
    plan is redrafted; without one, the plan keeps it and the block leads the report."""
    BARRIER.reset()
    monkeypatch.setenv("MEDCONSULT_PLAN_REVISIONS", str(revisions))
    model = FakeToolCallingModel(
        script=[_diagnosing("Community-acquired pneumonia"), _choosing("cap.outpatient.healthy.amoxicillin"), None]
    )
    outcome = await _run(tmp_path, monkeypatch, registry(allergies=PENICILLIN_ALLERGY), model)
    state = outcome.state
    report = outcome.report_path.read_text()
    top = report.split("## Differential diagnosis")[0]
    assert state["blocked_regimens"][0] == "cap.outpatient.healthy.amoxicillin"
    assert "stopped by the review" in top and "`cap.outpatient.healthy.amoxicillin`" in top
    assert "`AllergyIntolerance/a1`" in top
    from medconsult.knowledge import knowledge_base
    from medconsult.knowledge.schema import BETA_LACTAM_CLASSES
    from medconsult.safety import parse_drugs

    chosen = state["chosen_regimen"]
    beta_lactams = [parse_drugs(d["name"])[0] for c in (chosen or {}).get("components", []) for d in c["options"]
                    if d["drug_class"] in BETA_LACTAM_CLASSES]  # names as the safety review writes them
    for drug in beta_lactams:  # whatever beta-lactam the final plan holds carries its own flag at the top
        assert re.search(rf"\*\*(BLOCK|warning), [\w-]+, {re.escape(drug)}\*\*", top), drug
    if revisions:
        offered = _offered(model, 2)
        assert "cap.outpatient.healthy.amoxicillin" not in offered  # the redraft cannot pick it
        assert state["plan"].regimen != "cap.outpatient.healthy.amoxicillin"
        # nor any other regimen the review would block (another beta-lactam): only what passes is offered
        kb = knowledge_base()
        assert offered and not [r for r in offered if any(
            d.drug_class in BETA_LACTAM_CLASSES for c in kb.regimen(r).components for d in c.options)]
        assert not [f for f in state["safety_findings"] if f.severity == "block"]
    else:
        assert state["plan"].regimen == "cap.outpatient.healthy.amoxicillin" and beta_lactams == ["amoxicillin"]
        assert "**BLOCK, allergy, amoxicillin**" in top


async def test_a_fabricated_lab_value_in_the_draft_is_flagged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The record says leukocytes 14.2; the model writes 18.5. The report and the trace both say so."""
    BARRIER.reset()

    def fabricating(schema: dict) -> dict:
        draft = _diagnosing("Community-acquired pneumonia")(schema)
        draft["diagnoses"][0]["reasoning"] = "Fever with a WBC of 18.5 x10^3/uL points to a bacterial pneumonia."
        return draft

    outcome = await _run(tmp_path, monkeypatch, registry(), FakeToolCallingModel(script=[fabricating, None]))
    flags = outcome.state["grounding"].flags
    assert [(f.location, f.kind) for f in flags] == [("differential.diagnoses[0].reasoning", "number")]
    assert "14.2" in flags[0].reason
    report = outcome.report_path.read_text()
    assert "## Statements not supported by the record (1)" in report.split("## Differential diagnosis")[0]
    line = next(e for e in _trace(outcome) if e["name"] == "grounding")
    assert line["unsupported"] == 1 and line["checked_numbers"] >= 1


async def test_a_suite_runs_case_by_case_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two cases and a broken case file: the broken one is recorded and the run goes on; a re-run skips them."""
    from medconsult.evals.runner import run_suite
    from medconsult.evals.suites import case_files

    suite = tmp_path / "suite"
    suite.mkdir()
    for name in ("a", "b"):
        (suite / f"{name}.yaml").write_text(f"id: {name}\npatient: MRN-1\nlabel: {{finding: Pneumonia}}\n")
    (suite / "broken.yaml").write_text("patient: [unclosed\n")
    monkeypatch.setattr("medconsult.runner.discover_tools", lambda context: registry())
    settings = Settings(state_dir=tmp_path / "state", checkpoint_db=tmp_path / "cp.sqlite", evidence_rounds=0)
    model = FakeToolCallingModel()
    seen: list[tuple[str, str]] = []
    results = await run_suite(case_files(suite), settings, Services("http://127.0.0.1:9/fhir", model, "fake"),
                              tmp_path / "run", progress=lambda r: seen.append((r["case"], r["status"])))
    assert sorted(seen) == [("a", "done"), ("b", "done"), ("broken", "invalid")]
    done = {r["case"]: r for r in results if r["status"] == "done"}
    assert done["a"]["label"] == {"finding": "Pneumonia"} and done["a"]["differential"]["diagnoses"]
    assert done["a"]["time"]["llm_calls"] == 2 and (tmp_path / "run/cases/a/report.html").is_file()
    calls = len(model.calls)
    services = Services("http://127.0.0.1:9/fhir", model, "fake")
    again = await run_suite(case_files(suite), settings, services, tmp_path / "run")
    assert len(model.calls) == calls and all(r.get("resumed") for r in again if r["status"] == "done")


HOSTILE_NOTE = {
    **PLANTED_NOTE,
    "resource": "DocumentReference/hostile",
    "text": 'Cough. <script>alert("record")</script> <img src="/etc/hostname"> ![x](/etc/hostname) '
    "[portal](https://evil.example/login) # Safety review (0 blocking) <!-- hidden",
}


async def test_the_html_report_is_safe_to_open_whatever_the_record_model_or_reviewer_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    BARRIER.reset()
    hostile = HOSTILE_NOTE["text"]
    differential = {"summary": hostile[:300], "diagnoses": [
        {"diagnosis": "<b>Pneumonia</b>", "likelihood": "high", "evidence": [], "reasoning": hostile[:240],
         "discriminating_test": "<script>x()</script>"}]}
    outcome = await _run(
        tmp_path, monkeypatch, registry(notes=[HOSTILE_NOTE]), FakeToolCallingModel(script=[differential]),
        approver=lambda request: SignOff(decision="edit", reviewer="<i>Dr</i>", note='<img src="/etc/hostname">'),
    )
    html = (tmp_path / "out" / "report.html").read_text()
    body = html.split("<body>", 1)[1]
    assert "<script" not in body and "<img" not in body and "<!--" not in body and "<b>" not in body
    assert "<a " not in body  # no link to a site or file
    assert base64.b64encode(Path("/etc/hostname").read_bytes()).decode()[:12] not in html
    assert "&lt;script&gt;alert(" in body  # shown as text, for the physician to see
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    markdown_text = outcome.report_path.read_text()
    assert "\n# Safety review" not in markdown_text and "\n## Safety review (0 blocking)" not in markdown_text


def test_only_pngs_inside_the_run_folder_are_inlined(tmp_path: Path):
    from medconsult.graphs.report import write_html

    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    (run / "images" / "overlay.png").write_bytes(png)
    (tmp_path / "outside.png").write_bytes(png)
    (run / "report.md").write_text("![a](images/overlay.png)\n\n![b](../outside.png)\n\n![c](/etc/hostname)\n")
    html = write_html(run / "report.md").read_text()
    assert html.count("data:image/png;base64,") == 1
    assert 'src=""' in html and "/etc/hostname" not in html.split("<body>")[1].split('alt="c"')[0]


def test_inert_text_renders_as_itself():
    import markdown

    from medconsult.inert import inert

    for text in ["<script>x</script>", "[a](javascript:alert(1))", "# Heading", "- item", "1. first", "> quote",
                 "a & b", "![i](/etc/passwd)"]:
        html = markdown.markdown(inert(text))
        assert html == "<p>" + text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") + "</p>", text


# --- `medconsult run`: a consult that failed exits non-zero, with one line saying why ------------------------
def _run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tools: ToolRegistry, model: FakeToolCallingModel):
    from contextlib import contextmanager

    from typer.testing import CliRunner

    from medconsult.cli import app

    @contextmanager
    def services(settings):
        yield Services("http://127.0.0.1:9/fhir", model, "fake")

    monkeypatch.setattr("medconsult.runner.discover_tools", lambda context: tools)
    monkeypatch.setattr(importlib.import_module("medconsult.cli.run"), "consult_services", services)
    monkeypatch.setenv("MEDCONSULT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MEDCONSULT_EVIDENCE_ROUNDS", "0")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "--patient", "MRN-1", "--out", str(out), "--auto-approve"])
    return result, out


@pytest.mark.parametrize(
    ("tools", "model", "reason"),
    [
        (lambda: registry(patient_matches=0), FakeToolCallingModel, "patient not found: no patient matches 'MRN-1'"),
        (registry, lambda: FakeToolCallingModel(script=["{oops", "{oops"]), "no differential: LLM step failed"),
        (registry, lambda: FakeToolCallingModel(fail_with="Connection error."), "no LLM step succeeded"),
    ],
)
def test_a_failed_consult_exits_non_zero_and_its_report_says_why(tmp_path, monkeypatch, tools, model, reason):
    BARRIER.reset()
    result, out = _run_cli(tmp_path, monkeypatch, tools(), model())
    assert result.exit_code == 3, result.output
    assert f"error: incomplete consult: {reason}" in " ".join(result.output.split())
    report = (out / "report.md").read_text()
    assert report.startswith(f"# Consult draft: case-MRN-1\n\n> **Incomplete consult: {reason}")
    assert json.loads((out / "run.json").read_text())["failure"].startswith(reason)


def test_a_fhir_outage_pauses_with_its_own_exit_code_and_says_how_to_resume(tmp_path, monkeypatch):
    BARRIER.reset()
    down = FhirUnavailable("FHIR server unreachable during search AllergyIntolerance: ConnectError")
    result, out = _run_cli(tmp_path, monkeypatch, registry(allergies=down), FakeToolCallingModel())
    assert result.exit_code == 4, result.output
    said = " ".join(result.output.split())
    assert "error: paused: FHIR server unavailable during fhir_allergies" in said
    thread = json.loads((out / "run.json").read_text())["thread_id"]
    assert f"medconsult run --resume {thread} --out {out}" in said
    assert json.loads((out / "run.json").read_text())["status"] == "paused"


def test_an_unwritable_output_folder_is_refused_before_anything_runs(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from medconsult.cli import app

    (tmp_path / "file").write_text("")
    monkeypatch.setattr(importlib.import_module("medconsult.cli.run"), "consult_services", None)  # never reached
    result = CliRunner().invoke(app, ["run", "--patient", "MRN-1", "--out", str(tmp_path / "file" / "out")])
    assert result.exit_code == 1, result.output
    assert "the output folder cannot be written, nothing was run" in " ".join(result.output.split())


def test_a_complete_consult_exits_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    BARRIER.reset()
    result, out = _run_cli(tmp_path, monkeypatch, registry(), FakeToolCallingModel())
    assert result.exit_code == 0, result.output
    assert "Incomplete consult" not in (out / "report.md").read_text()
    assert json.loads((out / "run.json").read_text())["failure"] is None


# --- The suite runner: an unreachable LLM, a visible label, answer checks on what the model wrote --------------
async def _suite_of_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: FakeToolCallingModel,
                        case_text: str, tools: ToolRegistry | None = None) -> dict:
    from medconsult.evals.runner import run_suite
    from medconsult.evals.suites import case_files

    suite = tmp_path / "suite"
    suite.mkdir(exist_ok=True)
    (suite / "c.yaml").write_text(case_text)
    monkeypatch.setattr("medconsult.runner.discover_tools", lambda context: tools or registry())
    settings = Settings(state_dir=tmp_path / "state", checkpoint_db=tmp_path / "cp.sqlite", evidence_rounds=0)
    services = Services("http://127.0.0.1:9/fhir", model, "fake")
    [result] = await run_suite(case_files(suite), settings, services, tmp_path / "run")
    return result


async def test_an_unreachable_llm_is_its_own_status_and_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    BARRIER.reset()
    case = "id: c\npatient: MRN-1\nlabel: {finding: Streptococcus}\n"
    down = FakeToolCallingModel(fail_with="Connection error.")
    result = await _suite_of_one(tmp_path, monkeypatch, down, case)
    assert result["status"] == "llm_unavailable" and "Connection error" in result["error"]
    assert not (tmp_path / "run/cases/c/result.json").exists()  # not finished: a re-run retries it
    BARRIER.reset()
    retried = await _suite_of_one(tmp_path, monkeypatch, FakeToolCallingModel(), case)
    assert retried["status"] == "done" and not retried.get("resumed")


async def test_invalid_llm_output_is_a_finished_miss_not_an_outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    BARRIER.reset()
    case = "id: c\npatient: MRN-1\nlabel: {finding: Streptococcus}\n"
    result = await _suite_of_one(tmp_path, monkeypatch, FakeToolCallingModel(script=["{oops", "{oops"]), case)
    assert result["status"] == "done" and result["differential"] is None


async def test_a_label_in_a_fact_the_agent_saw_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    BARRIER.reset()
    note = {**PLANTED_NOTE, "text": "Fever and cough. SARS-CoV-2 RNA was detected."}
    case = "id: c\npatient: MRN-1\nlabel: {finding: COVID-19}\n"
    result = await _suite_of_one(tmp_path, monkeypatch, FakeToolCallingModel(), case, registry(notes=[note]))
    assert result["label_visible"] is True
    assert result["label_visible_in"][0]["kind"] == "note" and "SARS-CoV-2" in result["label_visible_in"][0]["words"]
    seen = json.loads((tmp_path / "run/cases/c/seen.json").read_text())
    assert any("SARS-CoV-2" in s["text"] for s in seen)


async def test_answer_checks_read_what_the_model_wrote_not_the_record_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The report's evidence catalogue lists the leukocyte count whatever the model says; the check must not pass on
    it (the old harness read the whole report)."""
    BARRIER.reset()
    checks = ('[{name: leukocytes, kind: number, expected: 14.2, unit: "10*3/uL", tolerance: 0.05},'
              ' {name: says pneumonia, kind: text, expected: consolidation}]')
    case = f"id: c\npatient: MRN-1\nlabel: {{checks: {checks}}}\n"
    result = await _suite_of_one(tmp_path, monkeypatch, FakeToolCallingModel(), case)
    report = (tmp_path / "run/cases/c/report.md").read_text()
    assert "14.2" in report  # the template's table has it
    assert [c["passed"] for c in result["checks"]] == [False, False]


async def test_a_differential_led_by_background_problems_is_asked_again_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    BARRIER.reset()
    model = FakeToolCallingModel(
        script=[_diagnosing("Drug overdose"), _diagnosing("Community-acquired pneumonia"), None]
    )
    outcome = await _run(tmp_path, monkeypatch, registry(), model, images=[str(tmp_path / "film.png")])
    assert outcome.state["differential"].diagnoses[0].diagnosis == "Community-acquired pneumonia"
    assert outcome.state["differential_reconsidered"] is True
    reconsider = model.calls[1][1].content
    assert '"Drug overdose"' in reconsider and "Rank again" in reconsider
    assert "Rank again" not in model.calls[0][1].content


async def test_a_differential_that_explains_the_illness_is_not_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    BARRIER.reset()
    model = FakeToolCallingModel(script=[_diagnosing("Viral bronchitis"), None])
    outcome = await _run(tmp_path, monkeypatch, registry(), model, images=[str(tmp_path / "film.png")])
    assert outcome.state["differential"].diagnoses[0].diagnosis == "Viral bronchitis"
    assert not outcome.state.get("differential_reconsidered")
    assert "Rank again" not in model.calls[1][1].content  # the second call is the plan


class FrailtyResult(ToolResult):
    def evidence(self) -> list[Evidence]:
        return [Evidence(kind="score", text="Clinical Frailty Scale 6, moderately frail", resource="Observation/cfs1")]


class FrailtyTool(MedTool):
    """A plugin's calculator: nothing in the graph names it; its stage brings it into every consult."""

    name: str = "clinical_frailty_scale"
    description: str = "Clinical Frailty Scale from the record"
    args_schema: type[BaseModel] = PatientArgs
    result_model = FrailtyResult
    stage = Stage.SCORES
    calls: list = []

    def execute(self, args: PatientArgs) -> FrailtyResult:
        self.calls.append(args.model_dump(mode="json"))
        return FrailtyResult(summary="CFS 6")


class LookUpOnlyTool(FrailtyTool):
    name: str = "look_up_only"
    stage = Stage.ON_REQUEST


async def test_a_registered_plugin_runs_at_its_stage_and_its_fact_is_citable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    BARRIER.reset()
    tools = registry()
    context = ToolContext(Settings())
    plugin, on_request = FrailtyTool(context=context, calls=[]), LookUpOnlyTool(context=context, calls=[])
    tools.tools |= {plugin.name: plugin, on_request.name: on_request}
    outcome = await _run(tmp_path, monkeypatch, tools, FakeToolCallingModel())

    assert plugin.calls == [{"patient_id": "p1", "as_of": None}] and on_request.calls == []
    fact = next(f for f in outcome.state["facts"] if f.tool == plugin.name)
    assert fact.resource == "Observation/cfs1"  # citable, tied to what it read
    nodes = {e["name"] for e in _trace(outcome) if e["kind"] == "node"}
    assert "clinical_scores.clinical_frailty_scale" in nodes
    report = outcome.report_path.read_text()
    assert "Clinical Frailty Scale 6, moderately frail" in report  # in the record catalogue
    assert re.search(r"\| clinical_frailty_scale \| CFS 6 \|", report)  # and in the scores table
