"""`medconsult trace summary TRACE.jsonl`: where the time of a case went."""

from __future__ import annotations

from pathlib import Path

import typer

from medconsult.cli.common import print_json
from medconsult.evals.trace_stats import time_split
from medconsult.tracing import read_trace

trace_app = typer.Typer(no_args_is_help=True, help="Read trace.jsonl files.")


@trace_app.command("summary")
def summary(trace: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Wall time split into LLM, tools and the rest (interval unions), with call and token counts."""
    print_json(time_split(read_trace(trace)))
