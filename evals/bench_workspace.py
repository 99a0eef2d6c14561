"""Workspace benchmark (`make bench` -> out/bench.json, section "workspace"): what a clinician waits for.

The workspace is served by uvicorn on a free loopback port (in a thread of this process, a throw-away users,
cases and checkpoint folder) against the configured LLM and FHIR servers, and driven over HTTP like a browser:
sign in, start the case, read its event stream. Measured from the moment the "start" form is posted: the first step
on the stream, the first diagnosis of the differential as it is written, the draft ready for sign-off. Then
follow-up questions, each from the moment it is posted to the first characters of its answer on the stream and to
the whole answer; the trace adds the model's own time to first token and its prompt tokens evaluated (what the
server's prompt cache spared).
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from medconsult.cases import load_case_file
from medconsult.config import Settings
from medconsult.process import free_port
from medconsult.runner import consult_services
from medconsult.tracing import read_trace
from medconsult.workspace.app import create_app
from medconsult.workspace.auth import hash_password
from medconsult.workspace.store import WorkspaceStore

QUESTIONS = ("Why not a viral cause?", "What if the CRP were 10 mg/L?")
USER, PASSWORD = "bench", "benchmark password"


def run_workspace_benchmark(settings: Settings, case_file: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        local = settings.model_copy(update={
            "state_dir": Path(folder) / "state", "checkpoint_db": Path(folder) / "checkpoints.sqlite",
            "workspace_dir": None, "workspace_case_dirs": [case_file.parent],
        })
        store = WorkspaceStore(local.resolved_workspace_dir / "workspace.sqlite")
        store.add_user(USER, hash_password(PASSWORD))
        with consult_services(local) as services:
            port = free_port()
            server = uvicorn.Server(uvicorn.Config(create_app(local, services, store), host="127.0.0.1", port=port,
                                                   access_log=False, log_level="warning"))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            try:
                return _drive(f"http://127.0.0.1:{port}", case_file, store, services.model_name)
            finally:
                server.should_exit = True
                thread.join(timeout=30)


def _drive(url: str, case_file: Path, store: WorkspaceStore, model: str) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=httpx.Timeout(30, read=900), headers={"Origin": url}) as client:
        _wait_until_up(client)
        page = client.get("/login").text
        client.post("/login", data={"name": USER, "password": PASSWORD, "csrf": _csrf(page)})
        page = client.get("/").text
        key = re.search(rf'<option value="([0-9a-f]+)">{re.escape(case_id_of(case_file))} ', page).group(1)
        started = time.time()
        response = client.post("/cases", data={"case_file": key, "csrf": _csrf(page)}, follow_redirects=False)
        case_id = response.headers["location"].rsplit("/", 1)[1]
        consult = _follow(client, case_id, started, first={"step": _any_step, "diagnosis": _first_diagnosis})
        page = client.get(f"/cases/{case_id}").text
        followups = []
        for question in QUESTIONS:
            asked = time.time()
            client.post(f"/cases/{case_id}/ask", data={"question": question, "csrf": _csrf(page)},
                        follow_redirects=False)
            followups.append(
                {"question": question, **_follow(client, case_id, asked, first={"text": _answer})}
            )
        out_dir = next(c.out_dir for c in store.cases(USER) if c.id == case_id)
    llm = [e for e in read_trace(out_dir / "trace.jsonl") if e["kind"] == "llm" and e["name"] == "followup"]
    for followup, call in zip(followups, llm, strict=False):
        followup |= {"model_first_token_s": call.get("first_token_s"), "prompt_tokens": call.get("prompt_tokens"),
                     "prompt_tokens_evaluated": call.get("prompt_tokens_evaluated")}
    return {
        "model": model,
        "case": case_file.name,
        "first_step_s": consult.get("step_s"),
        "first_diagnosis_on_stream_s": consult.get("diagnosis_s"),
        "draft_ready_s": consult["end_s"],
        "followups": [
            {
                "question": f["question"],
                "first_answer_text_s": f.get("text_s"),
                "answer_done_s": f["end_s"],
                **{k: f.get(k) for k in ("model_first_token_s", "prompt_tokens", "prompt_tokens_evaluated")},
            }
            for f in followups
        ],
    }


def _follow(client: httpx.Client, case_id: str, since: float, first: dict) -> dict[str, float]:
    """Seconds from `since` (wall clock) to the first event each predicate accepts (by the event's own time), and
    to the end of the stream."""
    seen: dict[str, float] = {}
    with client.stream("GET", f"/cases/{case_id}/events") as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            for name, accepts in first.items():
                if f"{name}_s" not in seen and accepts(event):
                    seen[f"{name}_s"] = round(event.get("at", time.time()) - since, 2)
            if event["type"] == "end":
                break
    return {**seen, "end_s": round(time.time() - since, 2)}


def case_id_of(case_file: Path) -> str:
    """The id the case list shows (a case file's own `id`, else its name)."""
    return load_case_file(case_file, Path(case_file).parent).id


def _any_step(event: dict) -> bool:
    return event["type"] == "step"


def _first_diagnosis(event: dict) -> bool:
    return event["type"] == "draft" and event["step"] == "differential" and bool(event["lines"])


def _answer(event: dict) -> bool:
    return event["type"] == "answer" and bool(event["text"].strip())


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def _wait_until_up(client: httpx.Client) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)
