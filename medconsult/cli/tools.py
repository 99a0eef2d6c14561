"""`medconsult tools list|run`: see and try the installed tool plugins outside the graph."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.table import Table

from medconsult.cli.common import console, fail, invocation_settings, print_json
from medconsult.tools.base import Stage, ToolContext
from medconsult.tools.registry import discover_tools
from medconsult.tools.runner import run_tool
from medconsult.tools.scaffold import ScaffoldError, new_plugin

tools_app = typer.Typer(
    no_args_is_help=True, help="Tool plugins registered under the `medconsult.tools` entry points."
)


def _registry(out_dir: Path = Path("out") / "tools"):
    settings = invocation_settings()
    return settings, discover_tools(ToolContext(settings, work_dir=out_dir))


@tools_app.command("list")
def list_tools(
    as_json: bool = typer.Option(False, "--json", help="name, description and args JSON schema"),
) -> None:
    """List the installed tools."""
    _, registry = _registry()
    for entry_point, error in registry.load_errors.items():
        console.print(f"[yellow]plugin {entry_point} not loaded:[/] {error}")
    if as_json:
        print_json(registry.describe())
        return
    table = Table("name", "stage", "description", "arguments")
    for item in registry.describe():
        arguments = ", ".join(item["args_schema"].get("properties", {}))
        table.add_row(item["name"], item["stage"], item["description"], arguments)
    console.print(table)


@tools_app.command("new")
def new(
    name: str = typer.Argument(..., help="the tool's name, e.g. frailty_scale"),
    stage: Stage = typer.Option(..., "--stage", help="where the consult calls it"),
    out: Path = typer.Option(Path("."), help="folder to write the package in"),
) -> None:
    """Write a plugin package skeleton (tool, typed result, entry point, passing tests) to adapt."""
    try:
        folder = new_plugin(name, stage, out)
    except ScaffoldError as error:
        fail(str(error))
    console.print(f"wrote {folder}\n  pip install -e {folder}   then   medconsult tools list")


@tools_app.command("run")
def run_one(
    name: str = typer.Argument(..., help="tool name (see `medconsult tools list`)"),
    args: str = typer.Option("{}", "--args", help="arguments as a JSON object"),
    out: Path = typer.Option(Path("out") / "tools", help="folder for files the tool writes"),
) -> None:
    """Run one tool and print its JSON result (a failure prints a JSON error and exits 1)."""
    settings, registry = _registry(out)
    try:
        arguments = json.loads(args)
    except json.JSONDecodeError as error:
        fail(f"--args is not valid JSON: {error}")
    if not isinstance(arguments, dict):
        fail("--args must be a JSON object")
    try:
        tool = registry.get(name)
    except KeyError as error:
        fail(str(error.args[0]))
    record = asyncio.run(run_tool(tool, arguments, timeout_s=settings.tool_timeout_s))
    if record.ok:
        print_json(record.result)
        return
    print_json({"ok": False, "tool": name, "result_id": record.id, "error": record.error})
    raise typer.Exit(1)
