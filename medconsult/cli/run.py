"""`medconsult run`: one case through the consult graph, with progress as each step finishes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.markup import escape

from medconsult.cases import CaseError, case_from_flags, load_case_file
from medconsult.cli.common import console, fail, invocation_settings
from medconsult.cli.stream_view import StreamView
from medconsult.config import Settings
from medconsult.evals.trace_stats import time_split
from medconsult.fhir.client import FhirUnavailable
from medconsult.llm.models import ModelError
from medconsult.outage import ConsultPaused
from medconsult.outcome import consult_failure
from medconsult.process import ServiceError
from medconsult.runner import consult_services, peak_rss_mb, run_consult
from medconsult.signoff import SignOff, SignOffRequest
from medconsult.signoff import auto_approve as auto_approve_sign_off
from medconsult.tracing import read_trace

DECISIONS = ("approve", "edit", "reject")
MAX_GAPS_SHOWN = 12  # the report lists them all
INCOMPLETE = 3  # the run finished and wrote its report, but the consult failed (patient, record or LLM)
PAUSED = 4  # a service, the checkpoint database or the output folder failed: `--resume` finishes the case later


def run(
    out: Path = typer.Option(..., "--out", help="folder for report.md, trace.jsonl and run.json"),
    case_file: Path = typer.Option(
        None, "--case", exists=True, dir_okay=False, help="case file (YAML or JSON)"
    ),
    patient: str = typer.Option(None, help="Patient resource id or identifier value (e.g. MRN)"),
    image: list[Path] = typer.Option(None, "--image", help="radiograph (DICOM, PNG, JPEG); repeatable"),
    question: str = typer.Option(None, help="the clinical question"),
    as_of: datetime = typer.Option(
        None, formats=["%Y-%m-%d"], help="review the record as it stood on this day"
    ),
    thread_id: str = typer.Option(None, help="checkpoint thread id (default: case id + random suffix)"),
    resume: str = typer.Option(
        None, "--resume", metavar="THREAD_ID", help="continue an interrupted or paused run from its checkpoint"
    ),
    auto_approve: bool = typer.Option(
        False, "--auto-approve", help="batch runs: record an automatic approval instead of asking a physician"
    ),
) -> None:
    """Run one case end to end: record + images -> differential -> plan -> draft -> sign-off -> final report."""
    settings = invocation_settings()
    case = None
    if resume:
        thread_id = resume
        console.print(f"[bold]resuming {resume}[/] from its checkpoint")
    else:
        case = _case(settings, case_file, patient, image or [], question, as_of.date() if as_of else None)
        console.print(f"[bold]case {case.id}[/]: patient {case.patient}, {len(case.images)} image(s)")
    approver = auto_approve_sign_off if auto_approve else (ask_physician if sys.stdin.isatty() else None)
    _check_writable(out)
    try:
        with consult_services(settings) as services:
            console.print(f"FHIR {services.fhir_base_url} · LLM {services.model_name}")
            outcome = asyncio.run(
                run_consult(
                    case, settings, services, out, listeners=[_progress], stream_listeners=[StreamView(console.print)],
                    thread_id=thread_id, approver=approver,
                )
            )
            llm_server_rss = services.llm_process.peak_rss_mb() if services.llm_process else None
    except ConsultPaused as paused:
        _paused(paused, out)
    except (ServiceError, ModelError, FhirUnavailable, ValueError) as error:
        fail(str(error))
    trace = read_trace(outcome.trace_path)
    split = time_split(trace)
    failure = consult_failure(outcome.state, trace)
    decision = outcome.state.get("sign_off")
    summary = {
        "case": outcome.state["case"].id,
        "thread_id": outcome.thread_id,
        "status": "awaiting sign-off" if outcome.awaiting_sign_off else "signed",
        "model": services.model_name,
        "time": split,
        "peak_rss_mb": {**peak_rss_mb(), "llm_server": llm_server_rss},
        "gaps": [g.model_dump() for g in outcome.state.get("gaps", [])],
        "sign_off": decision.model_dump() if decision else "awaiting",
        "written_resources": outcome.state.get("written_resources", []),
        "failure": failure,
    }
    (out / "run.json").write_text(json.dumps(summary, indent=2))
    console.print(
        f"[bold green]done[/] in {split['wall_s']:.1f} s (LLM {split['llm_s']:.1f} s, tools {split['tools_s']:.1f} s, "
        f"rest {split['rest_s']:.1f} s); {split['llm_calls']} LLM calls, {split['tool_calls']} tool calls, "
        f"{len(summary['gaps'])} gap(s)"
    )
    for gap in outcome.state.get("gaps", [])[:MAX_GAPS_SHOWN]:
        console.print(f"  [yellow]gap[/] {escape(f'{gap.what}: {gap.reason}'[:200])}")
    console.print(f"report: {outcome.report_path}\ntrace:  {outcome.trace_path}\nthread: {outcome.thread_id}")
    if outcome.awaiting_sign_off:
        console.print(
            f"[yellow]awaiting sign-off[/]: read the draft, then `medconsult run --resume {outcome.thread_id} "
            f"--out {out}` at a terminal (or with --auto-approve for a batch run)"
        )
    else:
        console.print(f"sign-off: {decision.decision} by {decision.reviewer}; html: {out / 'report.html'}")
    if failure:
        fail(f"incomplete consult: {failure}", code=INCOMPLETE)


def _check_writable(out: Path) -> None:
    """Refuse before anything runs when the output folder cannot take the report."""
    probe = out / ".medconsult-write-check"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        fail(f"the output folder cannot be written, nothing was run: {error}")


def _paused(paused: ConsultPaused, out: Path) -> NoReturn:
    """What stopped the case, what was kept, and how to finish it."""
    summary = {"thread_id": paused.thread_id, "status": "paused", "reason": paused.reason, "saved": paused.saved}
    with contextlib.suppress(OSError):  # the folder may be the problem
        (out / "run.json").write_text(json.dumps(summary, indent=2))
    resume = f"`medconsult run --resume {paused.thread_id} --out {out}`"
    then = {
        True: f"completed steps are kept; once it is fixed, finish the case with {resume}",
        False: "nothing was saved; run the case again once it is fixed",
        None: f"the checkpoint database could not be read to tell what was kept; once it is fixed, try {resume}, "
              "and run the case again if it has no checkpoint",
    }[paused.saved]
    fail(f"paused: {paused.reason}; {then}", code=PAUSED)


def _case(
    settings: Settings,
    case_file: Path | None,
    patient: str | None,
    images: list[Path],
    question: str | None,
    as_of: date | None,
):
    if case_file is not None:
        try:
            case = load_case_file(case_file, settings.resolved_data_dir).to_case()
        except (CaseError, ValueError) as error:
            fail(str(error))
        overrides = {k: v for k, v in {"question": question, "as_of": as_of}.items() if v is not None}
        if images:
            overrides["images"] = [str(p.resolve()) for p in images]
        return case.model_copy(update=overrides)
    if not patient:
        fail("give --case FILE or --patient ID")
    return case_from_flags(patient, images, question, as_of)


def ask_physician(request: SignOffRequest) -> SignOff:
    """The terminal's sign-off: show what needs attention, then approve, edit (with amendments) or reject."""
    console.print(f"\n[bold]Sign-off[/] for case {request.case_id}: draft at {request.draft_report}")
    console.print(f"working diagnosis: {request.working_diagnosis or '(none)'}; {request.gaps} gap(s)")
    for flag in request.safety_flags:
        console.print(f"  [red]safety[/] {flag}")
    if request.unsupported_statements:
        console.print(f"  [yellow]{request.unsupported_statements} statement(s) not supported by any tool result[/]")
    choice = ""
    while choice not in DECISIONS:
        choice = typer.prompt("approve, edit or reject?").strip().lower()
    reviewer = typer.prompt("your name", default="physician")
    note = None
    if choice != "approve":
        note = typer.prompt("amendments" if choice == "edit" else "reason for rejection")
    return SignOff(decision=choice, reviewer=reviewer, note=note)


def _progress(event: dict[str, Any]) -> None:
    status = "[red]✗[/]" if event.get("error") else "[green]✓[/]"
    line = f"  {status} {event['kind']:<4} {event['name']:<24} {event['duration_s']:>7.2f} s"
    if event["kind"] == "tool":
        line += f"  {event['result_id']}  {event.get('summary') or event.get('error') or ''}"
    elif event["kind"] == "llm":
        line += f"  {event.get('prompt_tokens')} → {event.get('completion_tokens')} tokens"
    elif event.get("error"):
        line += f"  {event['error']}"
    console.print(line[:220])
