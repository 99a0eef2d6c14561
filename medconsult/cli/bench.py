"""`medconsult bench`: the imaging and LLM benchmarks, written as one JSON file with a section each."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medconsult.cli.common import console, fail, invocation_settings
from medconsult.config import REPO_ROOT


def bench(
    out: Path = typer.Option(Path("out") / "bench.json", help="JSON file to write"),
    threads: int = typer.Option(2, help="torch threads"),
    limit: int = typer.Option(40, help="images per measurement"),
    imaging: bool = typer.Option(True, "--imaging/--no-imaging", help="segmentation and radiomics latency"),
    llm: bool = typer.Option(True, "--llm/--no-llm", help="one case through the consult graph, per LLM call"),
    fusion: bool = typer.Option(
        True, "--fusion/--no-fusion", help="embedding a case, similar-case queries at 100k vectors, insert time"
    ),
    vectors: int = typer.Option(100_000, help="vectors stored for the fusion query benchmark"),
    workspace: bool = typer.Option(
        True, "--workspace/--no-workspace", help="the workspace: first step on screen, follow-up answer times"
    ),
    case: Path = typer.Option(
        REPO_ROOT / "cases" / "demo-pneumonia.yaml", exists=True, dir_okay=False, help="case for the LLM section"
    ),
) -> None:
    """Imaging latency (p50/p95) and peak RSS; per LLM call tokens sent and evaluated, first-token time, prefill and
    decode rates, the schema constraint's cost; the case's wall time and time to the differential; fusion embedding
    and retrieval latency; in the workspace, the first step on screen and follow-up answer times."""
    settings = invocation_settings()
    result = {}
    if imaging:
        from medconsult.evals.bench_imaging import run_benchmark

        result["imaging"] = run_benchmark(settings, threads=threads, limit=limit)
    if fusion:
        from medconsult.evals.bench_fusion import run_fusion_benchmark

        result["fusion"] = run_fusion_benchmark(settings, vectors=vectors)
    if llm:
        from medconsult.evals.bench_llm import run_llm_benchmark
        from medconsult.process import ServiceError

        try:
            result["llm"] = run_llm_benchmark(settings, case)
        except ServiceError as error:
            fail(str(error))
    if workspace:
        from medconsult.evals.bench_workspace import run_workspace_benchmark
        from medconsult.process import ServiceError

        try:
            result["workspace"] = run_workspace_benchmark(settings, case)
        except ServiceError as error:
            fail(str(error))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print_json(json.dumps(result))
    console.print(f"written to {out}")
