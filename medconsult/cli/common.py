"""Console and error handling shared by the CLI commands."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))
