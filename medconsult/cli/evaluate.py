"""`medconsult eval SUITE` (run a suite with automatic sign-off), `eval compare RUN_A RUN_B`, `eval score RUN_DIR`,
`eval judge RUN_DIR`, `eval injection --out RUN_DIR` (planted instructions in every free-text field)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from medconsult.cli.common import console, fail, invocation_settings
from medconsult.config import Settings
from medconsult.fhir.client import FhirRequestError, FhirUnavailable
from medconsult.fhir.loader import BundleError
from medconsult.llm.models import ModelError
from medconsult.process import ServiceError
from medconsult.runner import consult_services


class SuiteFirst(TyperGroup):
    """`medconsult eval SUITE ...` runs a suite; `compare` and `score` are the other commands."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(
    cls=SuiteFirst, no_args_is_help=True, help="Run a suite (`eval SUITE --out RUN_DIR`), compare runs, rescore a run."
)


class AgentKind(StrEnum):
    consult = "consult"  # the consult graph
    react = "react"  # the ReAct baseline: same model and tools, free tool choice


@eval_app.command("run")
def evaluate(
    suite: str = typer.Argument(..., help="a bundled suite's name (ieee8023-dev, ...) or a folder of case files"),
    out: Path = typer.Option(..., "--out", help="run folder: cases/<id>/ (report, trace, result), results.jsonl"),
    agent: AgentKind = typer.Option(AgentKind.consult, help="consult graph, or the ReAct baseline agent"),
    limit: int = typer.Option(None, help="only the first K cases"),
    concurrency: int = typer.Option(1, min=1, help="cases at once (one CPU llama.cpp server: keep 1)"),
    case_timeout_s: float = typer.Option(1800.0, help="a case still running after this is recorded as a timeout"),
) -> None:
    """Run every case of SUITE; re-running the same --out skips the cases that finished."""
    from medconsult.evals.runner import cases_asked, run_suite
    from medconsult.evals.scorecard import write_scorecard
    from medconsult.evals.suites import SuiteError, prepare_suite, resolve_suite

    settings = invocation_settings()
    started, clock = datetime.now(UTC), time.perf_counter()
    try:
        folder = resolve_suite(suite)
        with consult_services(settings) as services:
            console.print(f"suite {folder} · agent {agent.value} · FHIR {services.fhir_base_url} · "
                          f"LLM {services.model_name}")
            gateway = _gateway(settings, services.fhir_base_url)
            files = prepare_suite(folder, settings.resolved_data_dir, settings.state_dir / "cases", gateway)
            setup_s = time.perf_counter() - clock
            with _progress_bar(len(files[:limit])) as report:
                results = asyncio.run(
                    run_suite(files, settings, services, out, agent=agent.value, limit=limit,
                              concurrency=concurrency, case_timeout_s=case_timeout_s, progress=report)
                )
    except (ServiceError, ModelError, FhirUnavailable, FhirRequestError, BundleError, SuiteError) as error:
        fail(str(error))
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in results))
    run = {"suite": str(folder), "agent": agent.value, "model": services.model_name, "started": started.isoformat(),
           "elapsed_s": round(time.perf_counter() - clock, 2), "setup_s": round(setup_s, 2), "cases": len(results),
           "cases_asked": cases_asked(files[:limit], settings.resolved_data_dir),
           "react_max_steps": settings.react_max_steps, "embedded_context": settings.embedded_context}
    (out / "run.json").write_text(json.dumps(run, indent=2))
    counts = Counter(r["status"] for r in results)
    console.print(f"[bold]{len(results)} case(s)[/]: {dict(counts)}; results: {out / 'results.jsonl'}")
    write_scorecard(out)
    console.print(f"scorecard: {out / 'scorecard.md'}")


@eval_app.command("score")
def score(run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="a run folder of `eval`")) -> None:
    """Rebuild the scorecard (JSON, Markdown, plots) of a finished run from its results."""
    from medconsult.evals.scorecard import write_scorecard

    write_scorecard(run_dir)
    console.print(f"scorecard: {run_dir / 'scorecard.md'}")


@eval_app.command("compare")
def compare(
    run_a: Path = typer.Argument(..., exists=True, file_okay=False, help="the reference run folder (A)"),
    run_b: Path = typer.Argument(..., exists=True, file_okay=False, help="the run compared with it (B)"),
    out: Path = typer.Option(None, "--out", help="also write the comparison as JSON to this file"),
) -> None:
    """Compare two runs of one suite case by case: per metric, B - A with a paired 95% bootstrap interval."""
    from rich.markdown import Markdown

    from medconsult.evals.compare import compare_runs, render_comparison

    comparison = compare_runs(run_a, run_b)
    console.print(Markdown(render_comparison(comparison)))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(comparison, indent=2))
        console.print(f"comparison: {out}")


@eval_app.command("judge")
def judge(run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="a run folder of `eval`")) -> None:
    """Optional LLM-as-judge: the configured model (any OpenAI-compatible server, or the embedded one) grades each
    finished case's report against its reference label; the verdicts join the scorecard."""
    from medconsult.evals.judge import judge_run
    from medconsult.evals.scorecard import write_scorecard
    from medconsult.llm.chat_model import make_chat_model, structured_output_method
    from medconsult.llm.embedded import llm_endpoint

    settings = invocation_settings()
    try:
        with llm_endpoint(settings) as endpoint:
            model = make_chat_model(settings, endpoint.base_url, endpoint.model)
            judged = asyncio.run(judge_run(run_dir, model, structured_output_method(settings), endpoint.model))
    except (ServiceError, ModelError) as error:
        fail(str(error))
    write_scorecard(run_dir)
    console.print(f"{judged} case(s) judged; scorecard: {run_dir / 'scorecard.md'}")


@eval_app.command("injection")
def injection(
    out: Path = typer.Option(..., "--out", help="run folder: injection.json, bundles/, cases/<case>/ (report, trace)"),
    batch_size: int = typer.Option(10, min=1, help="passages planted per case, spread across the fields"),
    limit: int = typer.Option(None, help="only the first K cases"),
    holdout: bool = typer.Option(True, help="include the held-out passages (never used to tune the detector)"),
    case_timeout_s: float = typer.Option(1800.0, help="a case still running after this counts its passages as not run"),
) -> None:
    """Plant the instructions of evals/planted_instructions.yaml in every free-text field of synthetic patients on the
    FHIR server, run each case with the configured LLM up to sign-off, and write how many payloads reach the draft,
    before and after the deterministic defences (evals/injection.py). Re-running the same --out skips finished cases."""
    from medconsult.evals.injection import run_injection_eval
    from medconsult.evals.injection_set import load_planted

    settings = invocation_settings()
    passages = load_planted(holdout=None if holdout else False)

    def report(case) -> None:  # CaseResult
        colour = "green" if case.status == "done" else "red"
        console.print(f"  [{colour}]{case.status:<8}[/] {case.case} ({', '.join(case.passages)})  {case.wall_s:.0f} s"
                      + (f"  {escape(case.error)}" if case.error else f"  {case.withheld} withheld")
                      + ("  (resumed)" if case.resumed else ""))

    try:
        with consult_services(settings) as services:
            console.print(f"{len(passages)} passages · batches of {batch_size} · FHIR {services.fhir_base_url} · "
                          f"LLM {services.model_name}")
            run = asyncio.run(run_injection_eval(passages, settings, services, out, batch_size=batch_size,
                                                 limit=limit, case_timeout_s=case_timeout_s, progress=report))
    except (ServiceError, ModelError, FhirUnavailable, FhirRequestError) as error:
        fail(str(error))
    for name, rates in run.rates.items():
        if ":" not in name:
            console.print(f"[bold]{name}[/]: {rates.planted} planted ({rates.not_run} not run), {rates.shown} shown, "
                          f"{rates.detected} detected; payload in the model's draft {rates.rate_before:.1%}, "
                          f"in the draft the physician sees {rates.rate_after:.1%}")
    console.print(f"results: {out / 'injection.json'}")


def _gateway(settings: Settings, base_url: str):
    from medconsult.fhir.auth import gateway_from_settings

    return gateway_from_settings(settings, base_url, timeout_s=max(settings.fhir_timeout_s, 120))


class _progress_bar:
    """A progress bar over the cases, with one line per finished case above it."""

    def __init__(self, total: int) -> None:
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console)
        self.task = self.bar.add_task("cases", total=total)

    def __enter__(self):
        self.bar.start()
        return self.report

    def __exit__(self, *exc: Any) -> None:
        self.bar.stop()

    def report(self, result: dict[str, Any]) -> None:
        status = result["status"]
        colour = {"done": "green", "invalid": "yellow"}.get(status, "red")  # error, timeout, llm_unavailable
        detail = "resumed" if result.get("resumed") else (f"{result['wall_s']:.0f} s" if result.get("wall_s") else
                                                         result.get("error", ""))
        self.bar.console.print(f"  [{colour}]{status:<8}[/] {result['case']}  {detail}")
        self.bar.advance(self.task)


@eval_app.command("change")
def change(
    out: Path = typer.Option(Path("out/change"), "--out", help="folder for change-validation.json"),
    source: Path = typer.Option(None, help="the Hannover folder (default: cxr_hannover_covid in the data folder)"),
    record: bool = typer.Option(False, help="write the noise floor and figures beside the zone reference"),
    bootstrap: int = typer.Option(2000, min=100, help="patient resamples for the AUC's interval"),
) -> None:
    """Validate compare_radiographs against the clinical course: the noise floor of change_score on same-day film
    pairs, and its AUC for pairs where the patient worsened (evals/change_validation.py)."""
    from medconsult.evals.change_validation import record_noise_floor, validate

    folder = source or invocation_settings().resolved_data_dir / "cxr_hannover_covid"
    if not (folder / "data.csv").is_file():
        fail(f"{folder}: no data.csv (the Hannover COVID-19 image repository)")
    result = validate(folder, log=console.print, bootstrap=bootstrap)
    out.mkdir(parents=True, exist_ok=True)
    (out / "change-validation.json").write_text(json.dumps(result, indent=1))
    figures = result["validation"]
    console.print(f"{result['patients']} patients, {result['films']} films; noise floor {result['noise_floor']}")
    console.print(f"{figures['pairs']} interval pairs ({figures['worsened']} worsened): AUC {figures['auc']} "
                  f"(95% CI {figures['auc_95ci'][0]}-{figures['auc_95ci'][1]}, {figures['bootstrap']})")
    if record:
        console.print(f"recorded: {record_noise_floor(result)}")
    console.print(f"results: {out / 'change-validation.json'}")
