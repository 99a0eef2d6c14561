"""The fault matrix: `medconsult run` against the real llama.cpp and FHIR servers, each fault injected from outside
the code (a process killed, a proxy that delays, fails, hangs, corrupts or loops, a locked database, a full device).

For each fault the case pauses (exit 4) or finishes with the gap stated; the message says what happened; what
finished is kept; and `--resume` finishes the case without repeating a tool call whose result was checkpointed or an
LLM step that had succeeded. Every test adds its observed row to the table written at the end (out/faults/, and
docs/fault-table.md and docs/reliability.md with MEDCONSULT_UPDATE_FAULT_TABLE=1: `make faults`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import DATA_DIR, DEMO_MRN, REPO
from fault_proxy import Fault, FaultProxy
from medconsult.config import Settings
from medconsult.llm.embedded import start_embedded
from medconsult.runner import saved_state
from medconsult.tracing import read_trace

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "medconsult")
RUN_TIMEOUT_S = 600  # the 135M test model on two cores; a run that needs longer has hung
PAUSED, INCOMPLETE = 4, 3
RECORD_SEARCHES = r"^GET /fhir/(?!Patient|metadata)"  # every record look-up after the patient is found
# Credentials the runs are given: no trace, report, checkpoint, log line or error message may hold them.
SECRETS = {"MEDCONSULT_LLM_API_KEY": "llm-key-sentinel-5e1d7a",
           "MEDCONSULT_FHIR_BEARER_TOKEN": "fhir-token-sentinel-c29b"}


@dataclass
class Row:
    fault: str
    injected: str
    outcome: str
    exit_code: int
    message: str
    resume_exit_code: int
    calls_before: int  # tool and LLM calls that had succeeded before the pause or stop
    repeated: int  # of those, run again by the resume
    rerun_unsaved: int  # calls that finished but whose checkpoint write failed, run again


ROWS: list[Row] = []


@pytest.fixture(scope="module", autouse=True)
def fault_table() -> Iterator[None]:
    yield
    if not ROWS:
        return
    table = render_table(ROWS)
    out = REPO / "out" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fault-table.md").write_text(table)
    (out / "fault-table.json").write_text(json.dumps([asdict(r) for r in ROWS], indent=2))
    if os.environ.get("MEDCONSULT_UPDATE_FAULT_TABLE") == "1":
        (REPO / "docs" / "fault-table.md").write_text(table)
        reliability = REPO / "docs" / "reliability.md"  # its copy of the rows, between the markers
        start, end = "<!-- fault table: written by make faults -->", "<!-- end of fault table -->"
        text = reliability.read_text()
        head, rest = text.split(start, 1)
        rows = table[table.index("| fault |"):]
        reliability.write_text(f"{head}{start}\n{rows}{end}{rest.split(end, 1)[1]}")


def render_table(rows: list[Row]) -> str:
    lines = [
        "# Fault matrix",
        "",
        "Written by tests/faults/test_fault_matrix.py (`make faults`): `medconsult run` on a Synthea patient against "
        "the real llama.cpp server (smollm2-135m) and FHIR server, each fault injected from outside the code. "
        "*Calls kept*: tool and LLM calls that had succeeded before the run stopped; *repeated*: those the "
        "`--resume` run made again; *unsaved, re-run*: calls that finished but whose checkpoint could not be "
        "written. Exit codes: 0 done (draft awaiting sign-off), 1 refused before anything ran, 3 finished but "
        "incomplete, 4 paused (resume later).",
        "",
        "| fault | injected | outcome | exit | message | resume exit | calls kept | repeated | unsaved, re-run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        message = r.message.replace("|", "\\|")
        resumed = "–" if r.resume_exit_code < 0 else r.resume_exit_code
        lines.append(f"| {r.fault} | {r.injected} | {r.outcome} | {r.exit_code} | {message} | "
                     f"{resumed} | {r.calls_before} | {r.repeated} | {r.rerun_unsaved} |")
    return "\n".join(lines) + "\n"


# ---- servers and runs -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fhir_proxy(fhir_server) -> Iterator[tuple[FaultProxy, str]]:
    """(proxy, FHIR base URL through it)."""
    upstream = urlsplit(fhir_server.local_fhir_url)
    with FaultProxy(f"{upstream.scheme}://{upstream.netloc}") as proxy:
        yield proxy, proxy.url + upstream.path


@pytest.fixture(scope="module")
def llm_proxy(llm_server) -> Iterator[tuple[FaultProxy, str]]:
    base_url, model = llm_server
    upstream = urlsplit(base_url)
    with FaultProxy(f"{upstream.scheme}://{upstream.netloc}") as proxy:
        yield proxy, model


@pytest.fixture
def consult(fhir_proxy, llm_proxy, tmp_path: Path):
    fhir, fhir_url = fhir_proxy
    llm, model = llm_proxy
    for proxy in (fhir, llm):
        proxy.clear()
        proxy.credentials.clear()
    case = tmp_path / "case.yaml"
    case.write_text(f"id: fault\npatient: {DEMO_MRN}\nquestion: 'Cough and fever: pneumonia?'\n")
    env = {**os.environ, "MEDCONSULT_FHIR_BASE_URL": fhir_url, "MEDCONSULT_LLM_BASE_URL": llm.url + "/v1",
           "MEDCONSULT_LLM_MODEL": model, "MEDCONSULT_STATE_DIR": str(tmp_path / "state"),
           "MEDCONSULT_DATA_DIR": str(DATA_DIR), "MEDCONSULT_EVIDENCE_ROUNDS": "0", "COLUMNS": "500",
           "MEDCONSULT_FHIR_TIMEOUT_S": "10", "MEDCONSULT_TOOL_TIMEOUT_S": "60", **SECRETS}
    yield Consult(tmp_path, case, env, fhir, llm)
    fhir.clear()
    llm.clear()


@dataclass
class Consult:
    folder: Path
    case: Path
    env: dict[str, str]
    fhir: FaultProxy
    llm: FaultProxy
    outputs: list[str] = field(default_factory=list)

    @property
    def out(self) -> Path:
        return self.folder / "out"

    def start(self, **env: str) -> subprocess.Popen:
        return subprocess.Popen([CLI, "run", "--case", str(self.case), "--out", str(self.out)],
                                env={**self.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def run(self, **env: str) -> tuple[int, str]:
        process = self.start(**env)
        output, _ = process.communicate(timeout=RUN_TIMEOUT_S)
        self.outputs.append(output)
        return process.returncode, output

    def resume(self, **env: str) -> tuple[int, str]:
        thread = json.loads((self.out / "run.json").read_text())["thread_id"]
        finished = subprocess.run(
            [CLI, "run", "--resume", thread, "--out", str(self.out), "--auto-approve"],
            env={**self.env, **env}, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        )
        self.outputs.append(finished.stdout + finished.stderr)
        return finished.returncode, self.outputs[-1]

    def leaked_secrets(self) -> list[str]:
        """Files the runs wrote under the case's folder (report, trace, run.json, the checkpoint database) and
        command outputs that hold a credential."""
        found = [f"{p} holds {name}" for p in self.folder.rglob("*") if p.is_file() and not p.is_symlink()
                 for name, secret in SECRETS.items() if secret.encode() in p.read_bytes()]
        return found + [f"output holds {name}" for output in self.outputs for name, secret in SECRETS.items()
                        if secret in output]

    def checkpointed_results(self) -> set[str]:
        thread = json.loads((self.out / "run.json").read_text())["thread_id"]
        settings = Settings(state_dir=self.folder / "state")
        state = asyncio.run(saved_state(settings, thread))
        return {record.id for record in state.get("tool_records", [])}


def error_line(output: str) -> str:
    """The command's `error:` message, else its gap lines, with this run's folders, thread id, ports and search
    parameters made generic."""
    said = " ".join(output.split())
    found = re.search(r"error: (.*?)(?= report:| trace:|$)", said)
    gaps = sorted(set(re.findall(r"gap ([^:]+): (.*?)(?= gap | report:|$)", said)))
    if found:
        message = found.group(1)
    elif gaps:
        message = "; ".join(f"gap {what}: {why}" for what, why in gaps)
    else:
        message = "done, no gap"
    message = re.sub(r"/tmp/\S+?/out\b", "OUT", message)
    message = re.sub(r"fault-[0-9a-f]{8}", "THREAD", message)
    message = re.sub(r"(search \w+)\?.*?(?=: |;|\)|$)", r"\1?…", message)  # the patient's id, codes, dates
    message = re.sub(r"(/fhir/\w+)\?[^)\s;]*", r"\1?…", message)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", message)


def succeeded_calls(events: list[dict]) -> list[tuple[str, str]]:
    return [(e["kind"], e.get("result_id") or e["name"]) for e in events
            if e["kind"] in ("tool", "llm") and not e.get("error")]


def observe(consult: Consult, fault: str, injected: str, outcome: str, code: int, output: str,
            resume: tuple[int, str], before: list[dict], checkpointed: set[str]) -> Row:
    """Check what is common to every fault and add its row: nothing saved is redone, and the case is finished."""
    after = read_trace(consult.out / "trace.jsonl")[len(before):]
    done_before = set(succeeded_calls(before))
    redone = [call for call in succeeded_calls(after) if call in done_before]
    unsaved = [call for call in redone if call[0] == "tool" and call[1] not in checkpointed]
    saved_redone = [call for call in redone if call not in unsaved]
    assert saved_redone == [], f"the resume repeated completed calls: {saved_redone}"
    assert resume[0] in (0, INCOMPLETE), resume[1][-3000:]
    assert json.loads((consult.out / "run.json").read_text())["sign_off"]["decision"] == "approve"
    assert (consult.out / "report.html").is_file()
    assert consult.leaked_secrets() == []
    assert {f"Bearer {SECRETS['MEDCONSULT_LLM_API_KEY']}", f"Bearer {SECRETS['MEDCONSULT_FHIR_BEARER_TOKEN']}"} <= \
        consult.fhir.credentials | consult.llm.credentials  # sent, so the scan above could have found them
    row = Row(fault, injected, outcome, code, error_line(output), resume[0], len(done_before), len(saved_redone),
              len(unsaved))
    ROWS.append(row)
    return row


def paused_then_resumed(consult: Consult, fault: str, injected: str, code: int, output: str,
                        fix=lambda: None, **resume_env: str) -> tuple[Row, list[dict]]:
    assert code == PAUSED, output[-3000:]
    before = read_trace(consult.out / "trace.jsonl")
    ends = [e for e in before if e["kind"] == "node" and e["name"] == "consult"]  # parallel steps may end after it
    assert len(ends) == 1 and ends[0]["error"].startswith("paused: ")
    checkpointed = consult.checkpointed_results()
    assert "completed steps are kept" in error_line(output) or "could not be read" in error_line(output)
    fix()
    consult.fhir.clear()
    consult.llm.clear()
    resume = consult.resume(**resume_env)
    assert resume[0] == 0, resume[1][-3000:]
    return observe(consult, fault, injected, "paused; resumed to the end", code, output, resume, before,
                   checkpointed), before


def finished_then_signed(consult: Consult, fault: str, injected: str, outcome: str, code: int,
                         output: str) -> Row:
    before = read_trace(consult.out / "trace.jsonl")
    consult.fhir.clear()
    consult.llm.clear()
    resume = consult.resume()
    return observe(consult, fault, injected, outcome, code, output, resume, before, consult.checkpointed_results())


# ---- the faults ---------------------------------------------------------------------------------------------------
def test_llm_server_killed_mid_call(consult: Consult, tmp_path_factory: pytest.TempPathFactory):
    """A llama.cpp server of its own, killed (SIGKILL) a second into the differential; resumed on a new one."""
    first = start_embedded(Settings(embedded_model="smollm2-135m", state_dir=tmp_path_factory.mktemp("llm-a")))
    shared_upstream = consult.llm.upstream
    consult.llm.upstream = first.base_url.removesuffix("/v1")
    replacement = None
    try:
        def kill_soon() -> None:
            threading.Timer(1.0, os.kill, (first.process.pid, signal.SIGKILL)).start()

        consult.llm.inject(Fault("drop", match="POST /v1/chat/completions", times=1, before_forward=kill_soon))
        code, output = consult.run()
        assert "LLM server unavailable during differential" in output, output[-3000:]

        def restart() -> None:
            nonlocal replacement
            replacement = start_embedded(
                Settings(embedded_model="smollm2-135m", state_dir=tmp_path_factory.mktemp("llm-b")))
            consult.llm.upstream = replacement.base_url.removesuffix("/v1")

        row, before = paused_then_resumed(consult, "LLM server killed mid-call", "SIGKILL to llama-server 1 s "
                                          "into the differential", code, output, fix=restart)
        assert not [e for e in before if e["kind"] == "llm" and not e["error"]]
    finally:
        consult.llm.upstream = shared_upstream
        first.process.stop()
        if replacement is not None:
            replacement.process.stop()


def test_llm_slower_than_its_timeout(consult: Consult):
    consult.llm.inject(Fault("delay", match="POST /v1/chat/completions", delay_s=8))
    code, output = consult.run(MEDCONSULT_LLM_TIMEOUT_S="3")
    assert "LLM server unavailable during differential: OpenAITimeoutError" in output, output[-3000:]
    paused_then_resumed(consult, "LLM slower than its timeout", "proxy delays every reply 8 s; timeout 3 s, "
                        "1 retry", code, output)


def test_llm_reply_truncated_once_is_repaired(consult: Consult):
    consult.llm.inject(Fault("truncate_reply", match="POST /v1/chat/completions", times=1))
    code, output = consult.run()
    assert code == 0, output[-3000:]
    calls = [e["name"] for e in read_trace(consult.out / "trace.jsonl") if e["kind"] == "llm"]
    assert calls[:2] == ["differential", "differential"]  # the cut reply, then the repair request
    finished_then_signed(consult, "LLM reply truncated once", "proxy cuts the first reply's JSON in half",
                         "finished: the repair request got valid JSON", code, output)


def test_llm_reply_never_valid_json(consult: Consult):
    consult.llm.inject(Fault("invalid_reply", match="POST /v1/chat/completions"))
    code, output = consult.run()
    assert code == INCOMPLETE and "incomplete consult: no LLM step succeeded: ValueError" in output, output[-3000:]
    calls = [e["name"] for e in read_trace(consult.out / "trace.jsonl") if e["kind"] == "llm"]
    assert calls == ["differential", "differential"]  # asked once more with the error, then given up
    report = consult.out / "report.md"
    assert "No differential could be drafted" in report.read_text() and "StructuredOutputError" in report.read_text()
    finished_then_signed(consult, "LLM reply never valid JSON", "proxy replaces every reply with prose",
                         "finished incomplete: the report says no differential and why", code, output)


def test_fhir_server_answering_500(consult: Consult):
    consult.fhir.inject(Fault("status", match=RECORD_SEARCHES, status=500))
    code, output = consult.run()
    assert re.search(r"paused: FHIR server unavailable during \w+: FhirUnavailable: FHIR server failing \(HTTP 500\) "
                     r"during search \w+\?", " ".join(output.split())), output[-3000:]
    row, before = paused_then_resumed(consult, "FHIR server answering 500", "proxy answers HTTP 500 to every "
                                      "record search (after 2 retries)", code, output)
    assert not [e for e in before if e["kind"] == "llm"]  # nothing drafted on a record with holes


def test_fhir_pages_slower_than_the_timeout(consult: Consult):
    consult.fhir.inject(Fault("delay", match=RECORD_SEARCHES, delay_s=4))
    code, output = consult.run(MEDCONSULT_FHIR_TIMEOUT_S="1")
    assert re.search(r"FHIR server unavailable during \w+: FhirUnavailable: FHIR server unreachable "
                     r"\(ConnectionError \(ReadTimeoutError\)\) during search \w+\?", " ".join(output.split())), \
        output[-3000:]
    paused_then_resumed(consult, "FHIR pages slower than the timeout", "proxy delays record searches 4 s; "
                        "timeout 1 s, 2 retries", code, output)


def test_fhir_next_link_that_loops(consult: Consult):
    consult.fhir.inject(Fault("loop_next", match=r"^GET /fhir/Condition\?"))
    code, output = consult.run()
    assert code == 0, output[-3000:]
    assert re.search(r"gap active conditions: search Condition\?\S+ the server's paging loops",
                     " ".join(output.split())), output[-3000:]
    assert "paging loops" in (consult.out / "report.md").read_text()
    finished_then_signed(consult, "FHIR `next` link that loops", "proxy points the Condition search's next link "
                         "at itself", "finished with the gap stated (conditions)", code, output)


def test_a_tool_that_hangs(consult: Consult):
    """The allergy look-up never gets an answer: the tool's limit ends it, the case goes on, the command exits."""
    consult.fhir.inject(Fault("hang", match=r"^GET /fhir/AllergyIntolerance\?"))
    code, output = consult.run(MEDCONSULT_TOOL_TIMEOUT_S="5", MEDCONSULT_FHIR_TIMEOUT_S="900")
    assert code == 0, output[-3000:]
    assert "gap allergies: timed out after 5 s" in " ".join(output.split())
    finished_then_signed(consult, "a tool that hangs", "proxy never answers the allergy search; tool limit 5 s",
                         "finished with the gap stated (allergies)", code, output)


def test_checkpoint_database_locked(consult: Consult):
    """Another process holds the checkpoint database's write lock from just after intake until the run gives up."""
    process = consult.start(MEDCONSULT_CHECKPOINT_BUSY_TIMEOUT_S="2")
    trace, database = consult.out / "trace.jsonl", consult.folder / "state" / "checkpoints.sqlite"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not (trace.is_file() and any(e["name"] == "intake" for e in read_trace(trace))):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0][-3000:]
        time.sleep(0.05)
    holder = sqlite3.connect(database, timeout=30, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        output, _ = process.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    consult.outputs.append(output)
    assert "paused: checkpoint database: database is locked" in output, output[-3000:]
    paused_then_resumed(consult, "checkpoint database locked", "another connection holds BEGIN EXCLUSIVE from "
                        "intake on; busy timeout 2 s", process.returncode, output)


def test_report_on_a_full_device(consult: Consult):
    consult.out.mkdir(parents=True)
    report = consult.out / "report.md"
    report.symlink_to("/dev/full")
    code, output = consult.run()
    assert "paused: output folder: [Errno 28] No space left on device" in output, output[-3000:]
    paused_then_resumed(consult, "output folder full", "report.md linked to /dev/full (every write: ENOSPC)", code,
                        output, fix=report.unlink)


def test_output_folder_that_cannot_be_created(consult: Consult):
    blocker = consult.folder / "not-a-folder"
    blocker.write_text("")
    process = subprocess.run([CLI, "run", "--case", str(consult.case), "--out", str(blocker / "out")],
                             env=consult.env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    output = process.stdout + process.stderr
    assert process.returncode == 1 and "the output folder cannot be written, nothing was run" in output, output
    assert consult.fhir.requests == [] and consult.llm.requests == []  # refused before any service was asked
    message = error_line(output).replace(str(blocker), "FILE")
    ROWS.append(Row("output folder unwritable", "--out below a regular file", "refused before anything ran", 1,
                    message, -1, 0, 0, 0))
