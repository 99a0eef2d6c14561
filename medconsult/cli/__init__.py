"""`medconsult` command line: run cases, manage the local FHIR and LLM servers, try tools."""

from __future__ import annotations

import signal
import sys

import typer

from medconsult.cli.bench import bench
from medconsult.cli.cases import cases_app
from medconsult.cli.common import invocation_settings
from medconsult.cli.evaluate import eval_app
from medconsult.cli.fhir import fhir_app
from medconsult.cli.fusion import fusion_app, index_app
from medconsult.cli.fuzz import fuzz
from medconsult.cli.graph import graph
from medconsult.cli.llm import llm_app
from medconsult.cli.mcp import mcp_app
from medconsult.cli.run import run
from medconsult.cli.seg import seg_app
from medconsult.cli.tools import tools_app
from medconsult.cli.trace import trace_app
from medconsult.cli.workspace import workspace_app
from medconsult.logs import quiet_data_loggers

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def _every_command() -> None:
    """A terminated command (a timeout, a batch scheduler) unwinds like Ctrl-C, so the servers it started stop; and
    no library logs the identifiers in its requests."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    quiet_data_loggers()
    invocation_settings.cache_clear()  # each command reads the environment once, when it starts


app.command("run")(run)
app.command("graph")(graph)
app.command("bench")(bench)
app.command("fuzz")(fuzz)
app.add_typer(fhir_app, name="fhir")
app.add_typer(tools_app, name="tools")
app.add_typer(llm_app, name="llm")
app.add_typer(trace_app, name="trace")
app.add_typer(seg_app, name="seg")
app.add_typer(cases_app, name="cases")
app.add_typer(eval_app, name="eval")
app.add_typer(fusion_app, name="fusion")
app.add_typer(index_app, name="index")
app.add_typer(workspace_app, name="workspace")
app.add_typer(mcp_app, name="mcp")
