"""The clinician workspace in a real browser (Debian's chromium driven by playwright) against the real FHIR and
llama.cpp servers: sign in, open a case, watch its steps arrive, see the lung overlay, approve, ask a follow-up and
get a cited answer, download the report; meanwhile a second clinician in another browser context runs another case
and sees nothing of the first, and a `<script>` planted in that patient's note shows as text.

Screenshots of each step go to out/workspace-screenshots/ (the README shows one); the timings to
out/workspace-browser.json.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import DATA_DIR, DEMO_MRN, REPO
from records import load_patient_with_note
from workspace_server import served_workspace

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root chromium needs --no-sandbox; the last rule keeps it from reaching any host but this machine.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , "
    "EXCLUDE 127.0.0.1",
]
PASSWORD = "browser test password"
PLANTED = "<script>window.plantedRan = true</script>"
SHOTS = REPO / "out" / "workspace-screenshots"
CASE_TIMEOUT_MS = 600_000  # a whole consult with the 135M test model on two cores


def _plant_patient(fhir_url: str, tmp_path: Path) -> None:
    note = f"Fever and cough for two days. {PLANTED} Crackles at the left base."
    load_patient_with_note(fhir_url, tmp_path, mrn="browser-planted-1", note=note, note_type={"text": "Progress note"},
                           gender="female", birth_date="1961-02-03")


@pytest.fixture
def workspace_url(fhir_server, llm_server, tmp_path: Path):
    """`medconsult workspace` as a clinician would start it, on a free port, with two users and two case files."""
    _plant_patient(fhir_server.local_fhir_url, tmp_path)
    cases = tmp_path / "cases"
    cases.mkdir()
    radiograph = DATA_DIR / "cxr_hannover_covid" / "png" / "7afaaccc.png"
    (cases / "a-radiograph.yaml").write_text(
        f"id: browser-a\npatient: {DEMO_MRN}\nas_of: 2018-09-29\nimages: ['{radiograph}']\n"
        "question: 'Cough, fever and breathlessness: cause and management?'\n"
    )
    (cases / "b-planted.yaml").write_text(
        "id: browser-b\npatient: browser-planted-1\nas_of: 2020-03-02\nquestion: 'Fever and cough?'\n"
    )
    base_url, model = llm_server
    env = {**os.environ, "MEDCONSULT_FHIR_BASE_URL": fhir_server.local_fhir_url, "MEDCONSULT_LLM_BASE_URL": base_url,
           "MEDCONSULT_LLM_MODEL": model, "MEDCONSULT_STATE_DIR": str(tmp_path / "state"),
           "MEDCONSULT_DATA_DIR": str(DATA_DIR), "MEDCONSULT_WORKSPACE_CASE_DIRS": json.dumps([str(cases)]),
           "MEDCONSULT_WORKSPACE_PASSWORD": PASSWORD}
    with served_workspace(env, ["dr_a", "dr_b"], tmp_path / "workspace.log") as url:
        yield url


def _sign_in(page, url: str, user: str) -> None:  # playwright Page
    page.goto(f"{url}/")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Your cases")


def _start(page, case_label: str) -> float:
    """Start the case whose option contains `case_label`; seconds from the click to the first step on screen."""
    value = page.locator("select[name=case_file] option", has_text=case_label).get_attribute("value")
    page.select_option("select[name=case_file]", value)
    clicked = time.monotonic()
    page.click("#new-case button[type=submit]")
    page.wait_for_selector("#steps li", timeout=30_000)
    return time.monotonic() - clicked


def _wait_for_status(page, status: str) -> None:
    page.wait_for_selector(f'#status[data-status="{status}"]', timeout=CASE_TIMEOUT_MS)


def test_a_clinician_runs_signs_and_questions_a_case_in_the_browser(workspace_url: str):
    from playwright.sync_api import sync_playwright

    # A missing browser is a broken set-up, not a reason to pass: `make test` installs chromium with apt.
    assert Path(CHROMIUM).exists(), f"no chromium at {CHROMIUM}: run `make test`, which installs Debian's chromium"
    SHOTS.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        first, second = browser.new_context(accept_downloads=True), browser.new_context()
        page_a, page_b = first.new_page(), second.new_page()
        dialogs: list[str] = []
        for page in (page_a, page_b):
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

        _sign_in(page_a, workspace_url, "dr_a")
        _sign_in(page_b, workspace_url, "dr_b")
        timings["first_step_s"] = round(_start(page_a, "browser-a"), 2)
        page_a.screenshot(path=SHOTS / "1-steps-arriving.png", full_page=True)
        # A second clinician, another case, at the same time: it queues behind the first (one consult at a time).
        value = page_b.locator("select[name=case_file] option", has_text="browser-b").get_attribute("value")
        page_b.select_option("select[name=case_file]", value)
        page_b.click("#new-case button[type=submit]")
        page_b.wait_for_selector("#status")
        case_a = page_a.url.rsplit("/", 1)[1]

        _wait_for_status(page_a, "awaiting sign-off")
        page_a.wait_for_selector(".viewer img.mask", state="visible")
        page_a.wait_for_function("[...document.querySelectorAll('.viewer img')].every(i => i.complete && "
                                 "i.naturalWidth > 0)")  # the radiograph and its lung layer both load
        mask = page_a.locator(".viewer img.mask")
        page_a.screenshot(path=SHOTS / "2-draft-with-overlay.png", full_page=True)
        page_a.uncheck(".overlay-toggle")
        assert not mask.is_visible()
        page_a.check(".overlay-toggle")

        page_a.check("input[name=decision][value=approve]")
        page_a.click("#sign-off button[type=submit]")
        _wait_for_status(page_a, "signed")
        assert "approve" in page_a.locator("#decisions").inner_text()

        page_a.fill("#ask textarea[name=question]", "Why not a viral cause?")
        asked = time.monotonic()
        page_a.click("#ask button[type=submit]")
        page_a.wait_for_selector("[data-answer]", timeout=30_000)
        page_a.wait_for_function("document.querySelector('[data-answer]')?.textContent.length > 0 || "
                                 "document.querySelector('#chat .turn')", timeout=CASE_TIMEOUT_MS)
        timings["followup_first_text_s"] = round(time.monotonic() - asked, 2)
        page_a.wait_for_selector("#chat .turn", timeout=CASE_TIMEOUT_MS)
        turn = page_a.locator("#chat .turn").last
        assert "Why not a viral cause?" in turn.inner_text()
        cited = turn.locator("a.cite").first
        assert cited.count() == 1, turn.inner_html()
        page_a.screenshot(path=SHOTS / "3-follow-up.png", full_page=True)
        with page_a.expect_download() as download:
            page_a.click("a.download[href$='report.md']")
        report = Path(download.value.path()).read_text()
        assert "**Signed off: approve** by dr_a" in report

        cited.click()
        page_a.wait_for_selector("text=From tool")
        page_a.screenshot(path=SHOTS / "4-cited-fact.png", full_page=True)

        # The second clinician: their own case only, and the planted script is text on their screen.
        _wait_for_status(page_b, "awaiting sign-off")
        page_b.goto(f"{workspace_url}/")
        assert case_a not in page_b.content()
        assert page_b.goto(f"{workspace_url}/cases/{case_a}").status == 404
        page_b.go_back()
        page_b.click("table.cases a")
        facts = page_b.locator("a.cite").evaluate_all("links => links.map(l => l.getAttribute('href'))")
        note_pages = [*dict.fromkeys(facts)] + [f"{page_b.url}/facts/F{i}" for i in range(1, 40)]
        shown = None
        for href in note_pages:
            response = page_b.goto(href if href.startswith("http") else f"{workspace_url}{href}")
            if response.status == 200 and "Crackles at the left base" in page_b.content():
                shown = page_b
                break
        assert shown is not None, "the note's fact page"
        assert PLANTED in page_b.locator("p.fact").inner_text()  # shown as the text it is
        assert page_b.evaluate("window.plantedRan === undefined") and not dialogs
        page_b.screenshot(path=SHOTS / "5-planted-script-as-text.png", full_page=True)
        browser.close()
    (REPO / "out").mkdir(exist_ok=True)
    (REPO / "out" / "workspace-browser.json").write_text(json.dumps(timings, indent=2))
