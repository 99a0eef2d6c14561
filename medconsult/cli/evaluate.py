"""`medconsult eval`: run a suite of cases (a folder of case files) with automatic sign-off."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import typer

from medconsult.cli.common import console, fail
from medconsult.config import Settings
from medconsult.fhir.client import FhirUnavailable
from medconsult.llm.models import ModelError
from medconsult.process import ServiceError
from medconsult.runner import consult_services


def evaluate(
    suite: Path = typer.Argument(..., exists=True, file_okay=False, help="folder of case files"),
    out: Path = typer.Option(..., "--out", help="run folder: cases/<id>/ (report, trace, result) and results.jsonl"),
    limit: int = typer.Option(None, help="only the first K cases"),
    concurrency: int = typer.Option(1, min=1, help="cases at once (one CPU llama.cpp server: keep 1)"),
    case_timeout_s: float = typer.Option(1800.0, help="a case still running after this is recorded as a timeout"),
) -> None:
    """Run every case of SUITE; re-running the same --out skips the cases that finished."""
    from medconsult.evals.runner import run_suite

    settings = Settings()
    try:
        with consult_services(settings) as services:
            console.print(f"FHIR {services.fhir_base_url} · LLM {services.model_name}")
            results = asyncio.run(
                run_suite(suite, settings, services, out, limit=limit, concurrency=concurrency,
                          case_timeout_s=case_timeout_s, progress=_progress)
            )  # fmt: skip
    except (ServiceError, ModelError, FhirUnavailable) as error:
        fail(str(error))
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in results))
    counts = Counter(r["status"] for r in results)
    console.print(f"[bold]{len(results)} case(s)[/]: {dict(counts)}; results: {out / 'results.jsonl'}")
    from medconsult.evals.scorecard import write_scorecard

    write_scorecard(out)
    console.print(f"scorecard: {out / 'scorecard.md'}")


def _progress(case: str, status: str) -> None:
    colour = {"done": "green", "invalid": "yellow"}.get(status, "red")
    console.print(f"  [{colour}]{status:<8}[/] {case}")
