"""`medconsult mcp serve`: the registered tools for any MCP client, over stdio or streamable HTTP."""

from __future__ import annotations

from enum import StrEnum

import typer

from medconsult.cli.common import console, fail, invocation_settings
from medconsult.tools.base import ToolContext
from medconsult.tools.registry import discover_tools

mcp_app = typer.Typer(no_args_is_help=True, help="Serve the registered tools over the Model Context Protocol.")


class Transport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"


@mcp_app.command("serve")
def serve(
    transport: Transport = typer.Option(Transport.STDIO, help="stdio (a client starts this command) or http"),
    host: str = typer.Option("127.0.0.1", help="HTTP only: a loopback address"),
    port: int = typer.Option(8765, help="HTTP only"),
    allow_writes: bool = typer.Option(False, "--allow-writes", help="also serve tools that change a record"),
) -> None:
    """Serve until stopped. Read-only unless --allow-writes; the tools read the configured FHIR server."""
    from medconsult.mcp_server import build_server  # the MCP SDK loads only for this command

    settings = invocation_settings()
    registry = discover_tools(ToolContext(settings))
    for entry_point, error in registry.load_errors.items():
        console.print(f"[yellow]plugin {entry_point} not loaded:[/] {error}")  # stderr: stdout is the protocol
    try:
        server = build_server(registry, settings, allow_writes=allow_writes, host=host, port=port)
    except ValueError as error:
        fail(str(error))
    if transport == Transport.HTTP:
        console.print(f"MCP server: http://{host}:{port}/mcp")
    server.run("stdio" if transport == Transport.STDIO else "streamable-http")
