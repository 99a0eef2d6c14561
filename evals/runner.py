"""Running a suite of cases through the consult graph: per-case isolation, resume, a result file per case.

The case files come from evals/suites.py (a suite folder, prepared). Each case runs with automatic sign-off
into RUN_DIR/cases/<case id>/; its `result.json` (status, timings, label, the drafted
differential and plan, safety findings, grounding counts) marks it finished, so running the suite again skips it.
A case that crashes or times out is recorded with its error and the run goes on.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medconsult.cases import CaseError, CaseFile, load_case_file
from medconsult.config import Settings
from medconsult.evals.agent_runs import AGENTS
from medconsult.evals.measure import SEEN_FILE, answer_checks, calculator_check, label_visibility
from medconsult.evals.trace_stats import time_split
from medconsult.fhir.auth import gateway_from_settings
from medconsult.fhir.client import FhirRequestError, FhirUnavailable
from medconsult.outage import ConsultPaused
from medconsult.runner import Services
from medconsult.tracing import read_trace

Progress = Callable[[dict[str, Any]], None]  # called with each case's result as it ends


async def run_suite(
    files: list[Path],
    settings: Settings,
    services: Services,
    run_dir: Path,
    *,
    agent: str = "consult",
    limit: int | None = None,
    concurrency: int = 1,
    case_timeout_s: float = 1800.0,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Every case of the suite (the first `limit`), at most `concurrency` at once; returns their results."""
    files = files[:limit]
    gate = asyncio.Semaphore(concurrency)

    async def one(path: Path) -> dict[str, Any]:
        async with gate:
            result = await _run_case(path, agent, settings, services, run_dir, case_timeout_s)
            if progress:
                progress(result)
            return result

    return list(await asyncio.gather(*(one(p) for p in files)))


async def _run_case(
    path: Path, agent: str, settings: Settings, services: Services, run_dir: Path, timeout_s: float
) -> dict:
    try:
        case_file = load_case_file(path, settings.resolved_data_dir)
    except (CaseError, ValueError) as error:
        return _record(run_dir / "cases" / path.stem, {"case": path.stem, "status": "invalid", "error": str(error)})
    out = run_dir / "cases" / case_file.id
    finished = out / "result.json"
    if finished.is_file():
        return {**json.loads(finished.read_text()), "resumed": True}
    clock = time.perf_counter()
    base = {"case": case_file.id, "case_file": str(path), "patient": _patient_key(case_file),
            "as_of": case_file.as_of, "label": case_file.label, "agent": agent,
            "model": services.model_name}
    try:
        output = await asyncio.wait_for(
            AGENTS[agent](case_file, settings, services, out, _thread_id(run_dir, case_file.id)),
            timeout=timeout_s,
        )
    except TimeoutError:
        return _record(out, {**base, "status": "timeout", "error": f"no result within {timeout_s:.0f} s"})
    except ConsultPaused as paused:  # a miss in this run; not finished, so a re-run retries it
        status = "llm_unavailable" if paused.reason.startswith("LLM server") else "error"
        return _record(out, {**base, "status": status, "error": f"paused: {paused.reason}"})
    except Exception as error:  # noqa: BLE001 - one case's failure must not stop the suite
        return _record(out, {**base, "status": "error", "error": f"{type(error).__name__}: {error}"})
    wall_s, clock = round(time.perf_counter() - clock, 2), time.perf_counter()
    outputs = output.model_dump(mode="json")
    seen = outputs.pop("seen")
    out.mkdir(parents=True, exist_ok=True)
    (out / SEEN_FILE).write_text(json.dumps(seen, indent=1))  # what the model was shown, for `eval score` to recheck
    trace = _trace(out)
    unreachable = llm_unreachable(trace)
    if unreachable:
        return _record(out, {**base, "status": "llm_unavailable", "wall_s": wall_s, "error": unreachable,
                             **outputs, "time": time_split(trace)})
    try:
        measured = await asyncio.to_thread(measurements, case_file, outputs, out, settings, services.fhir_base_url)
    except Exception as error:  # noqa: BLE001 - a measurement bug must not lose the agent's finished case
        measured = {"measurement_error": f"{type(error).__name__}: {error}"}
    measured |= label_visibility(case_file.label, seen)
    measured["measure_s"] = round(time.perf_counter() - clock, 3)
    return _record(out, {**base, "status": "done", "wall_s": wall_s, **outputs, **measured,
                         "time": time_split(_trace(out))})


def cases_asked(files: list[Path], data_dir: Path) -> list[dict[str, Any]]:
    """The cases asked for, as their results will name them, with patient and label: a case that never runs is
    still scored (as a miss). A file that does not load is named by its stem."""
    asked = []
    for path in files:
        try:
            case_file = load_case_file(path, data_dir)
        except (CaseError, ValueError):
            asked.append({"case": path.stem})
            continue
        asked.append({"case": case_file.id, "patient": _patient_key(case_file), "label": case_file.label or {}})
    return asked


def _patient_key(case_file: CaseFile) -> str:
    """The bootstrap's unit: the source's patient where the label names it (imported cases), else the case's."""
    return (case_file.label or {}).get("patient") or case_file.patient


def _trace(out: Path) -> list[dict[str, Any]]:
    trace = out / "trace.jsonl"
    return read_trace(trace) if trace.is_file() else []


def _thread_id(run_dir: Path, case: str) -> str:
    """A fresh checkpoint thread per attempt: re-running a case that crashed or was killed must start from nothing,
    not from the state its last attempt left in the checkpointer."""
    return f"eval-{run_dir.name}-{case}-{uuid.uuid4().hex[:8]}"


# What a failed LLM call says when the server could not be reached or answered with a server error; a model that
# answered with something unusable (invalid JSON) did run, and its case is a finished miss.
_UNREACHABLE = re.compile(
    r"APIConnectionError|APITimeoutError|ConnectError|ConnectTimeout|Connection (?:error|refused|reset)"
    r"|InternalServerError|ServiceUnavailable|RemoteProtocolError|Error code: 5\d\d",
    re.IGNORECASE,
)


def llm_unreachable(trace: list[dict[str, Any]]) -> str | None:
    """Why no LLM step could reach the model, or None: the case made no successful LLM call and at least one
    failed for the server (connection refused, timeout, 5xx). Such a case is `llm_unavailable`, not a finished
    case with an empty differential, and a resumed run retries it."""
    calls = [line for line in trace if line.get("kind") == "llm"]
    if any(not line.get("error") for line in calls):
        return None
    errors = [str(line["error"]) for line in calls if _UNREACHABLE.search(str(line.get("error")))]
    return f"LLM server unreachable: {errors[0][:300]}" if errors else None


def measurements(case_file: CaseFile, outputs: dict[str, Any], out: Path, settings: Settings,
                 fhir_base_url: str) -> dict[str, Any]:
    """Taken after the agent finished (not part of its time): answer checks and calculator agreement."""
    measured: dict[str, Any] = {"checks": answer_checks(case_file.label, outputs)}
    gateway = gateway_from_settings(settings, fhir_base_url)
    try:
        measured["calculator_agreement"] = calculator_check(
            outputs.get("calculators") or {}, outputs.get("patient_id"), case_file.as_of, gateway
        )
    except (FhirUnavailable, FhirRequestError) as error:
        measured["calculator_agreement"] = None
        measured["measurement_error"] = f"calculator recomputation: {error}"
    return measured


def _record(out: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Only finished cases get result.json (so a re-run retries the others); every case gets its last outcome."""
    out.mkdir(parents=True, exist_ok=True)
    name = "result.json" if result["status"] in ("done", "invalid") else "failed.json"
    (out / name).write_text(json.dumps(result, indent=2, default=str))
    return result
