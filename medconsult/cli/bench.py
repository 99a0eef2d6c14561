"""`medconsult bench`: the imaging benchmark, written as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medconsult.cli.common import console
from medconsult.config import Settings


def bench(
    out: Path = typer.Option(Path("out") / "bench.json", help="JSON file to write"),
    threads: int = typer.Option(2, help="torch threads"),
    limit: int = typer.Option(40, help="images per measurement"),
) -> None:
    """Segmentation, radiomics and imaging-branch latency (p50/p95) and peak RSS."""
    from medconsult.evals.bench_imaging import run_benchmark

    result = run_benchmark(Settings(), threads=threads, limit=limit)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print_json(json.dumps(result))
    console.print(f"written to {out}")
