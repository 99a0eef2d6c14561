"""Console, error handling and the settings shared by the CLI commands."""

from __future__ import annotations

import json
from functools import cache
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from medconsult.config import Settings

console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(message)}")  # "[Errno 28]" is text, not markup
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


@cache
def invocation_settings() -> Settings:
    """The settings of this command, read from the environment once (the root callback starts each command afresh)."""
    return Settings()
