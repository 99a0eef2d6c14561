"""Running a suite of cases through the consult graph: per-case isolation, resume, a result file per case.

A suite is a folder of case files (YAML/JSON, as `medconsult cases import` writes them). Each case runs with
automatic sign-off into RUN_DIR/cases/<case id>/; its `result.json` (status, timings, label, the drafted
differential and plan, safety findings, grounding counts) marks it finished, so running the suite again skips it.
A case that crashes or times out is recorded with its error and the run goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medconsult.cases import CaseError, CaseFile, load_case_file
from medconsult.config import Settings
from medconsult.evals.trace_stats import read_trace, time_split
from medconsult.runner import Services, run_consult
from medconsult.signoff import auto_approve

CASE_SUFFIXES = (".yaml", ".yml", ".json")
Progress = Callable[[str, str], None]  # (case id, status)


def suite_cases(suite: Path) -> list[Path]:
    """Case files of a suite folder, in name order; the import report and other JSON without a patient are not."""
    files = sorted(p for p in suite.iterdir() if p.suffix in CASE_SUFFIXES and p.is_file())
    return [p for p in files if p.name != "import-report.json"]


async def run_suite(
    suite: Path,
    settings: Settings,
    services: Services,
    run_dir: Path,
    *,
    limit: int | None = None,
    concurrency: int = 1,
    case_timeout_s: float = 1800.0,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Every case of the suite (the first `limit`), at most `concurrency` at once; returns their results."""
    files = suite_cases(suite)[:limit]
    gate = asyncio.Semaphore(concurrency)

    async def one(path: Path) -> dict[str, Any]:
        async with gate:
            result = await _run_case(path, settings, services, run_dir, case_timeout_s)
            if progress:
                progress(result["case"], result["status"])
            return result

    return list(await asyncio.gather(*(one(p) for p in files)))


async def _run_case(path: Path, settings: Settings, services: Services, run_dir: Path, timeout_s: float) -> dict:
    try:
        case_file = load_case_file(path, settings.resolved_data_dir)
    except (CaseError, ValueError) as error:
        return _record(run_dir / "cases" / path.stem, {"case": path.stem, "status": "invalid", "error": str(error)})
    out = run_dir / "cases" / case_file.id
    finished = out / "result.json"
    if finished.is_file():
        return {**json.loads(finished.read_text()), "resumed": True}
    clock = time.perf_counter()
    base = {"case": case_file.id, "case_file": str(path), "label": case_file.label}
    try:
        outcome = await asyncio.wait_for(
            run_consult(case_file.to_case(), settings, services, out, approver=auto_approve,
                        thread_id=f"eval-{run_dir.name}-{case_file.id}"),
            timeout=timeout_s,
        )  # fmt: skip
    except TimeoutError:
        return _record(out, {**base, "status": "timeout", "error": f"no result within {timeout_s:.0f} s"})
    except Exception as error:  # noqa: BLE001 - one case's failure must not stop the suite
        return _record(out, {**base, "status": "error", "error": f"{type(error).__name__}: {error}"})
    return _record(out, {**base, "status": "done", "wall_s": round(time.perf_counter() - clock, 2),
                         **_outputs(case_file, outcome.state, out)})  # fmt: skip


def _outputs(case_file: CaseFile, state: dict, out: Path) -> dict[str, Any]:
    """What the scorers read, in plain JSON: the drafts, the reviews and the cost."""
    dump = lambda value: value.model_dump(mode="json") if value is not None else None  # noqa: E731
    return {
        "differential": dump(state.get("differential")),
        "plan": dump(state.get("plan")),
        "safety_findings": [f.model_dump(mode="json") for f in state.get("safety_findings", [])],
        "grounding": dump(state.get("grounding")),
        "gaps": [g.model_dump(mode="json") for g in state.get("gaps", [])],
        "time": time_split(read_trace(out / "trace.jsonl")),
    }


def _record(out: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Only finished cases get result.json (so a re-run retries the others); every case gets its last outcome."""
    out.mkdir(parents=True, exist_ok=True)
    name = "result.json" if result["status"] in ("done", "invalid") else "failed.json"
    (out / name).write_text(json.dumps(result, indent=2, default=str))
    return result
