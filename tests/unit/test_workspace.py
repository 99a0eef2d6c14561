"""The clinician workspace over the consult graph, with a fake chat model and canned record tools (no servers):
sign-in, CSRF, a case's live steps, the evidence page, sign-off, downloads, isolation between clinicians, escaping."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from fakes import FakeToolCallingModel, canned_record_tools, fill_schema
from medconsult.config import Settings
from medconsult.runner import Services
from medconsult.workspace.app import create_app
from medconsult.workspace.auth import hash_password
from medconsult.workspace.security import check_binding
from medconsult.workspace.store import WorkspaceStore

PASSWORD = "correct horse battery"
HOSTILE = '<script>alert("record")</script>'
HOSTILE_NOTE = {
    "resource": "DocumentReference/n9",
    "type": "Progress note",
    "date": "2018-09-28",
    "author": [],
    "text": f"Cough for 3 days. {HOSTILE} Crackles at the right base.",
}


def _respond(schema: dict) -> dict:
    """The fake model: a differential with a hostile diagnosis name; a follow-up answer citing the leukocyte count,
    naming a fact that does not exist and a value the record does not hold."""
    draft = fill_schema(schema)
    if "diagnoses" in schema["properties"]:
        draft["diagnoses"][0]["diagnosis"] = "<img src=x onerror=alert(1)>"
    if "answer" in schema["properties"]:
        leukocytes = next(label for label in _enum(schema["properties"]["evidence"]) if "Leukocytes" in label)
        cited = leukocytes.rsplit(" ", 1)[1].rstrip("]")
        draft = {
            "answer": f"Leukocytes are raised ({cited}); see also F999. A CRP of 250 mg/L would suggest "
            "bacterial infection.",
            "evidence": [leukocytes],
        }
    return draft


def _enum(array_schema: dict) -> list[str]:
    items = array_schema["items"]
    return items.get("enum") or items["anyOf"][0]["enum"]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(
        "medconsult.runner.discover_tools", lambda context: canned_record_tools(notes=[HOSTILE_NOTE])
    )
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "c1.yaml").write_text("id: c1\npatient: MRN-1\nquestion: Cough and fever?\n")
    settings = Settings(
        state_dir=tmp_path / "state", checkpoint_db=tmp_path / "cp.sqlite", evidence_rounds=0,
        llm_structured_output="function_calling", workspace_case_dirs=[cases],
    )
    store = WorkspaceStore(settings.resolved_workspace_dir / "workspace.sqlite")
    for name in ("dr_a", "dr_b"):
        store.add_user(name, hash_password(PASSWORD))
    model = FakeToolCallingModel(script=[_respond] * 20)
    app = create_app(settings, Services("http://127.0.0.1:9/fhir", model, "fake"), store)
    with TestClient(app, base_url="http://127.0.0.1:8300") as client:
        yield client, store


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def _sign_in(client: TestClient, name: str) -> None:
    token = _csrf(client.get("/login").text)
    response = client.post("/login", data={"name": name, "password": PASSWORD, "csrf": token})
    assert response.status_code == 200 and "Your cases" in response.text  # followed the redirect


def _start_case(client: TestClient) -> str:
    page = client.get("/").text
    key = re.search(r'<option value="([0-9a-f]+)"', page).group(1)
    response = client.post("/cases", data={"case_file": key, "csrf": _csrf(page)}, follow_redirects=False)
    assert response.status_code == 303
    return response.headers["location"].rsplit("/", 1)[1]


def _drafted_case(client: TestClient, store: WorkspaceStore) -> str:
    """dr_a signs in and starts the case; its id once the draft awaits sign-off."""
    _sign_in(client, "dr_a")
    case_id = _start_case(client)
    _wait_for(store, case_id, "dr_a", "awaiting sign-off")
    return case_id


def _wait_for(store: WorkspaceStore, case_id: str, owner: str, status: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while (case := store.case(case_id, owner)).status != status:
        assert case.status != "failed", case.detail
        assert time.monotonic() < deadline, f"still {case.status}"
        time.sleep(0.1)


def test_every_page_but_sign_in_needs_a_session(workspace):
    client, _ = workspace
    for path in ("/", "/cases/anything", "/cases/anything/report.md"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login"
    token = _csrf(client.get("/login").text)
    wrong = client.post("/login", data={"name": "dr_a", "password": "wrong password!", "csrf": token})
    assert wrong.status_code == 401 and "Wrong name or password." in wrong.text
    unknown = client.post("/login", data={"name": "nobody", "password": PASSWORD, "csrf": _csrf(wrong.text)})
    assert unknown.status_code == 401


def test_a_post_without_its_token_or_from_another_site_is_refused(workspace):
    client, _ = workspace
    token = _csrf(client.get("/login").text)
    assert client.post("/login", data={"name": "dr_a", "password": PASSWORD}).status_code == 403
    forged = client.post("/login", data={"name": "dr_a", "password": PASSWORD, "csrf": token},
                         headers={"Origin": "http://evil.example"})
    assert forged.status_code == 403
    _sign_in(client, "dr_a")
    assert client.post("/cases", data={"case_file": "x", "csrf": "0" * 40}).status_code == 403


def test_a_session_cookie_holds_only_the_user_and_is_strict(workspace):
    client, _ = workspace
    token = _csrf(client.get("/login").text)
    response = client.post("/login", data={"name": "dr_a", "password": PASSWORD, "csrf": token},
                           follow_redirects=False)
    cookie = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and "medconsult_session" in v
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    payload = cookie.split("=", 1)[1].split(".", 1)[0]
    import base64

    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) == {"user": "dr_a"}


def test_every_response_carries_the_security_headers(workspace):
    client, _ = workspace
    headers = client.get("/login").headers
    assert "script-src 'self'" in headers["content-security-policy"] and "unsafe-inline" not in headers[
        "content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"


def test_a_case_streams_its_steps_waits_for_sign_off_and_is_signed(workspace):
    client, store = workspace
    case_id = _drafted_case(client, store)

    events = []
    with client.stream("GET", f"/cases/{case_id}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    steps = [e for e in events if e["type"] == "step"]
    assert steps[0] == {**steps[0], "phase": "start", "kind": "node", "name": "intake"}
    started = {(e["kind"], e["name"]) for e in steps if e["phase"] == "start"}
    ended = {(e["kind"], e["name"]) for e in steps if e["phase"] == "end"}
    assert ("tool", "fhir_find_patient") in started and ("llm", "differential") in ended
    assert {(k, n) for k, n in started if k == "node"} <= ended  # every node that started also ended
    assert [e["status"] for e in events if e["type"] == "status"][-1] == "awaiting sign-off"
    assert events[-1] == {"type": "end"}

    page = client.get(f"/cases/{case_id}").text
    assert 'id="sign-off"' in page and "Differential diagnosis" in page
    cited = re.search(rf'href="/cases/{case_id}/facts/(F\d+)"', page).group(1)
    fact = client.get(f"/cases/{case_id}/facts/{cited}")
    assert fact.status_code == 200 and "From tool" in fact.text

    signed = client.post(f"/cases/{case_id}/sign-off", data={"decision": "edit", "note": "Add blood cultures.",
                                                              "csrf": _csrf(page)})
    assert signed.status_code == 200
    _wait_for(store, case_id, "dr_a", "signed")
    [decision] = store.decisions(case_id)
    assert (decision.user, decision.decision, decision.note) == ("dr_a", "edit", "Add blood cultures.")
    report = client.get(f"/cases/{case_id}/report.md")
    assert report.status_code == 200 and "**Signed off: edit** by dr_a" in report.text
    assert "attachment" in report.headers["content-disposition"]
    assert client.get(f"/cases/{case_id}/report.html").status_code == 200
    again = client.post(f"/cases/{case_id}/sign-off", data={"decision": "approve", "csrf": _csrf(page)})
    assert again.status_code == 409  # signed once


def test_a_follow_up_is_answered_from_the_case_cited_and_checked(workspace):
    client, store = workspace
    case_id = _drafted_case(client, store)
    page = client.get(f"/cases/{case_id}").text
    report_before = client.get(f"/cases/{case_id}/report.md").text
    question = "Why not viral, given the white cell count?"
    asked = client.post(f"/cases/{case_id}/ask", data={"question": question, "csrf": _csrf(page)},
                        follow_redirects=False)
    assert asked.status_code == 303
    with client.stream("GET", f"/cases/{case_id}/events") as stream:
        events = [json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:")]
    started = [(e["kind"], e["name"]) for e in events if e["type"] == "step" and e["phase"] == "start"]
    assert started == [
        ("node", "look_up"),
        ("tool", "fhir_observations"),
        ("node", "followup"),
    ]  # back to the chart
    assert [e for e in events if e["type"] == "answered"] == [{"type": "answered", "error": None}]

    page = client.get(f"/cases/{case_id}").text
    chat = page.split('id="chat"')[1]
    assert question in chat and "Leukocytes are raised (" in chat
    assert re.search(rf'Leukocytes are raised \(<a class="cite" href="/cases/{case_id}/facts/F\d+"', chat)
    assert "F999" in chat and "cites F999, which does not exist" in chat  # text, not a link, and flagged
    assert "Unsupported (number): CRP of 250 mg/L" in chat
    assert client.get(f"/cases/{case_id}/report.md").text == report_before  # the draft is untouched
    trace = (Path(store.case(case_id, "dr_a").out_dir) / "trace.jsonl").read_text()
    assert '"name": "followup"' in trace  # the answer's LLM call joins the case's trace


def test_record_text_and_model_output_show_as_text(workspace):
    client, store = workspace
    case_id = _drafted_case(client, store)
    page = client.get(f"/cases/{case_id}").text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    notes = [f for f in re.findall(rf"/cases/{case_id}/facts/(F\d+)", page)]
    pages = [
        client.get(f"/cases/{case_id}/facts/{f}").text for f in {*notes, *(f"F{i}" for i in range(1, 30))}
    ]
    shown = [p for p in pages if "Crackles at the right base" in p]
    assert shown, "the note's fact page"
    assert all(HOSTILE not in p and "&lt;script&gt;" in p for p in shown)


def test_a_clinician_sees_nothing_of_another_clinicians_case(workspace):
    client, store = workspace
    case_id = _drafted_case(client, store)
    client.cookies.clear()
    _sign_in(client, "dr_b")
    assert case_id not in client.get("/").text
    for path in ("", "/events", "/report.md", "/facts/F1", "/results/x"):
        assert client.get(f"/cases/{case_id}{path}").status_code == 404
    token = _csrf(client.get("/").text)
    assert (
        client.post(f"/cases/{case_id}/sign-off", data={"decision": "approve", "csrf": token}).status_code
        == 404
    )
    assert store.decisions(case_id) == []


def test_only_loopback_serves_without_users_and_a_secret():
    check_binding("127.0.0.1", users=0, secret_configured=False)
    check_binding("::1", users=0, secret_configured=False)
    with pytest.raises(ValueError, match="no user can sign in"):
        check_binding("0.0.0.0", users=0, secret_configured=True)
    with pytest.raises(ValueError, match="MEDCONSULT_WORKSPACE_SECRET"):
        check_binding("10.1.2.3", users=2, secret_configured=False)
    check_binding("10.1.2.3", users=2, secret_configured=True)


def test_a_short_password_is_refused():
    with pytest.raises(ValueError, match="12 characters"):
        hash_password("short")


def _png(path: Path, colour: bool) -> Path:
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:300, 0:400]
    pixels = (
        np.stack([x * 255 // 400, y * 255 // 300, np.full_like(x, 128)], -1) if colour else x * 255 // 400
    )
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


async def test_uploads_are_refused_with_the_file_and_the_reason(tmp_path: Path):
    from starlette.datastructures import UploadFile

    from conftest import DATA_DIR
    from medconsult.workspace.patients import UploadRefused, save_radiographs

    def upload(path: Path, name: str | None = None) -> UploadFile:
        return UploadFile(file=path.open("rb"), filename=path.name if name is None else name)

    corrupt = tmp_path / "scan.dcm"
    corrupt.write_bytes((DATA_DIR / "dicom_cxr_samples" / "RG1_J2KI.dcm").read_bytes()[:200_000])
    chest = DATA_DIR / "cxr_hannover_covid" / "png" / "7afaaccc.png"
    cases = [
        ([upload(_png(tmp_path / "holiday.png", colour=True))], "holiday.png: .*colour"),
        ([upload(corrupt)], "scan.dcm: .*truncated"),
        ([upload(chest, "notes.txt")], "notes.txt: not a DICOM, PNG or JPEG"),
        ([upload(chest)] * 5, "at most 4 radiographs"),
        ([upload(chest)], "larger than the 0 MB limit"),
    ]
    for index, (files, reason) in enumerate(cases):
        folder = tmp_path / f"uploads-{index}"
        with pytest.raises(UploadRefused, match=reason):
            await save_radiographs(files, folder, max_bytes=1000 if "limit" in reason else 40 << 20)
        assert not folder.exists() or not any(folder.iterdir())  # nothing half-saved
    [saved] = await save_radiographs([upload(chest), upload(chest, "")], tmp_path / "good", 40 << 20)
    assert saved.path.parent == tmp_path / "good" and saved.path.read_bytes() == chest.read_bytes()


def test_a_case_from_a_found_patient_and_an_upload(
    workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    from medconsult.tools.fhir.find_patient import PatientMatch

    client, store = workspace
    found = [PatientMatch(resource="Patient/p1", name="Test <b>Patient</b>", identifiers=["urn:mrn|MRN-1"])]
    monkeypatch.setattr("medconsult.workspace.app.search_patients", lambda gateway, query: found)
    _sign_in(client, "dr_a")
    page = client.get("/patients", params={"q": "Test"}).text
    assert "Test &lt;b&gt;Patient&lt;/b&gt;" in page and 'name="patient" value="p1"' in page
    photo = _png(tmp_path / "holiday.png", colour=True)
    refused = client.post("/cases/patient", data={"patient": "p1", "question": "Cough?", "csrf": _csrf(page)},
                          files=[("images", ("holiday.png", photo.read_bytes(), "image/png"))])
    assert refused.status_code == 200 and "Nothing was started: holiday.png:" in refused.text
    assert 'value="Cough?"' in refused.text and store.cases("dr_a") == []  # the form kept, no case
    from conftest import DATA_DIR

    chest = (DATA_DIR / "cxr_hannover_covid" / "png" / "7afaaccc.png").read_bytes()
    started = client.post("/cases/patient", data={"patient": "p1", "question": "Cough?", "csrf": _csrf(page)},
                          files=[("images", ("chest.png", chest, "image/png"))], follow_redirects=False)
    assert started.status_code == 303
    [case] = store.cases("dr_a")
    assert (
        case.case.patient == "p1"
        and len(case.case.images) == 1
        and Path(case.case.images[0]).read_bytes() == chest
    )
    _wait_for(store, case.id, "dr_a", "awaiting sign-off")


def test_a_case_whose_llm_server_is_down_pauses_and_the_clinician_resumes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def down(schema: dict) -> dict:
        raise openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))

    monkeypatch.setattr("medconsult.runner.discover_tools", lambda context: canned_record_tools())
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "c1.yaml").write_text("id: c1\npatient: MRN-1\n")
    settings = Settings(state_dir=tmp_path / "state", checkpoint_db=tmp_path / "cp.sqlite", evidence_rounds=0,
                        llm_structured_output="function_calling", workspace_case_dirs=[cases])
    store = WorkspaceStore(settings.resolved_workspace_dir / "workspace.sqlite")
    store.add_user("dr_a", hash_password(PASSWORD))
    model = FakeToolCallingModel(script=[down, *[_respond] * 20])  # the first call finds the server down
    app = create_app(settings, Services("http://127.0.0.1:9/fhir", model, "fake"), store)
    with TestClient(app, base_url="http://127.0.0.1:8300") as client:
        _sign_in(client, "dr_a")
        case_id = _start_case(client)
        _wait_for(store, case_id, "dr_a", "paused")
        page = client.get(f"/cases/{case_id}").text
        assert "LLM server unavailable during differential" in page and "Resume the consult" in page
        trace = store.case(case_id, "dr_a").out_dir / "trace.jsonl"
        looked_up = [e["result_id"] for e in map(json.loads, trace.read_text().splitlines()) if e["kind"] == "tool"]
        resumed = client.post(f"/cases/{case_id}/resume", data={"csrf": _csrf(page)}, follow_redirects=False)
        assert resumed.status_code == 303
        _wait_for(store, case_id, "dr_a", "awaiting sign-off")
        again = client.post(f"/cases/{case_id}/resume", data={"csrf": _csrf(page)}, follow_redirects=False)
        assert again.status_code == 409  # nothing left to resume
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [e["result_id"] for e in events if e["kind"] == "tool"] == looked_up  # no look-up ran again
    assert [e["name"] for e in events if e["kind"] == "llm" and not e["error"]] == ["differential", "plan"]


def test_a_restarted_server_finishes_the_cases_it_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from medconsult.cases import Case

    monkeypatch.setattr("medconsult.runner.discover_tools", lambda context: canned_record_tools())
    settings = Settings(state_dir=tmp_path / "state", checkpoint_db=tmp_path / "cp.sqlite", evidence_rounds=0,
                        llm_structured_output="function_calling", workspace_case_dirs=[])
    store = WorkspaceStore(settings.resolved_workspace_dir / "workspace.sqlite")
    store.add_user("dr_a", hash_password(PASSWORD))
    left = store.add_case("dr_a", "left running", Case(id="c1", patient="MRN-1"), tmp_path / "out")
    store.set_status(left.id, "running")  # the server stopped mid-run, before any checkpoint
    app = create_app(settings, Services("http://127.0.0.1:9/fhir", FakeToolCallingModel(), "fake"), store)
    with TestClient(app):
        _wait_for(store, left.id, "dr_a", "awaiting sign-off")


def test_no_patient_data_reaches_the_logs(workspace, caplog: pytest.LogCaptureFixture):
    """Every logger at DEBUG through a whole case, a follow-up and a sign-off: no identifier, name or record text."""
    import logging

    client, store = workspace
    caplog.set_level(logging.DEBUG)
    case_id = _drafted_case(client, store)
    page = client.get(f"/cases/{case_id}").text
    client.post(f"/cases/{case_id}/ask", data={"question": "Why not viral, given the white cell count?",
                                               "csrf": _csrf(page)})
    with client.stream("GET", f"/cases/{case_id}/events") as stream:
        assert any('"answered"' in line for line in stream.iter_lines())  # the follow-up has finished
    assert client.post(f"/cases/{case_id}/sign-off", data={"decision": "approve", "csrf": _csrf(page)}).is_success
    _wait_for(store, case_id, "dr_a", "signed")
    logged = caplog.text
    assert case_id in logged  # the logs do say which case
    for private in (
        "MRN-1",
        "Test Patient",
        "Crackles",
        "Cough for 3 days",
        "Leukocytes",
        "white cell count",
        PASSWORD,
    ):
        assert private not in logged, private


async def test_a_full_queue_answers_busy_at_once_and_frees_when_a_run_ends(tmp_path: Path):
    from medconsult.workspace.runs import ConsultRuns

    store = WorkspaceStore(tmp_path / "workspace.sqlite")
    runs = ConsultRuns(Settings(state_dir=tmp_path), Services("http://127.0.0.1:9/fhir", None, "fake"), store,
                       max_parallel=1, max_queued=1)
    release = asyncio.Event()
    waiting = [asyncio.create_task(release.wait()) for _ in range(2)]  # one running, one queued
    runs._tasks.update({"a": waiting[0], "b": waiting[1]})
    assert runs.busy() and runs.busy().startswith("Busy: 2 consults")
    release.set()
    await asyncio.gather(*waiting)
    assert runs.busy() is None


def test_the_radiology_draft_shows_beside_the_two_films_it_compares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A follow-up film with its prior: the case page shows Findings, Comparison and Impression with their citations,
    the side-by-side image of both films, and what the check withheld."""
    from conftest import DATA_DIR
    from medconsult.tools.base import ToolContext
    from medconsult.tools.imaging import imaging_tools

    def tools(context):
        registry = canned_record_tools()
        registry.tools.update({t.name: t for t in imaging_tools(ToolContext(Settings(), work_dir=context.work_dir))
                               if t.name in ("load_image", "segment_lungs", "lung_zones", "compare_radiographs")})
        return registry

    monkeypatch.setattr("medconsult.runner.discover_tools", tools)
    films = DATA_DIR / "cxr_hannover_covid" / "png"
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "f1.yaml").write_text(
        f"id: f1\npatient: MRN-1\nas_of: '2020-03-06'\nimages: ['{films / 'e53ea41a.png'}']\n"
        f"priors: [{{path: '{films / '27a70642.png'}', date: '2020-03-02'}}]\n")
    settings = Settings(state_dir=tmp_path / "state", checkpoint_db=tmp_path / "cp.sqlite", evidence_rounds=0,
                        llm_structured_output="function_calling", workspace_case_dirs=[cases])
    store = WorkspaceStore(settings.resolved_workspace_dir / "workspace.sqlite")
    store.add_user("dr_a", hash_password(PASSWORD))
    app = create_app(settings, Services("http://127.0.0.1:9/fhir", FakeToolCallingModel(), "fake"), store)
    with TestClient(app, base_url="http://127.0.0.1:8300") as client:
        case_id = _drafted_case(client, store)
        page = client.get(f"/cases/{case_id}").text
        section = page.split('id="radiology"', 1)[1].split("</section>", 1)[0]
        for heading in ("Findings", "Comparison", "Impression"):
            assert f"<h3>{heading}" in section
        assert "with the film of 2020-03-02 (given with the case)" in section
        assert "current film of 2020-03-06 with the prior film of 2020-03-02" in section and "(measured)" in section
        assert re.search(r'<a class="cite cites" href="/cases/[^/]+/facts/F\d+"', section)
        image = re.search(r'<img src="(/cases/[^/]+/comparison/compare_radiographs:[0-9a-f]+\.png)"', section)
        response = client.get(image.group(1))
        assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
        assert "Withheld from the draft" in section  # the fake's filler statements
        assert client.get(f"/cases/{case_id}/comparison/load_image:0.png").status_code == 404
