"""`medconsult mcp serve`: the registered tools as an MCP server, for any MCP client (an IDE, another agent).

Each tool keeps its input schema; a call runs through the same runner as in a consult (the configured timeout,
failures as clear errors) and answers with the tool's typed result as JSON. Read-only by default: a tool that
declares `writes` is served only with `allow_writes`. Over HTTP it binds to a loopback address only, since the
server has no authentication of its own.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.fastmcp.tools import Tool as McpTool
from mcp.server.fastmcp.utilities.func_metadata import ArgModelBase, FuncMetadata
from pydantic import create_model

from medconsult.config import Settings
from medconsult.process import is_loopback
from medconsult.tools.registry import ToolRegistry
from medconsult.tools.runner import run_tool

SERVER_NAME = "medconsult"
INSTRUCTIONS = (
    "Clinical tools over a FHIR R4 record and chest radiographs: record look-ups, calculators, image analysis. "
    "Results are data for a physician to validate, not orders."
)


def served_tools(registry: ToolRegistry, allow_writes: bool = False) -> list[BaseTool]:
    """The tools the server exposes: all registered ones, less those that write unless writes are allowed."""
    return [t for t in registry.tools.values() if allow_writes or not getattr(t, "writes", False)]


def as_mcp_tool(tool: BaseTool, timeout_s: float) -> McpTool:
    """An MCP tool with `tool`'s name, description and JSON schema that runs it through the consult's runner."""
    fields = {name: (info.annotation, info) for name, info in tool.tool_call_schema.model_fields.items()}
    arguments = create_model(f"{tool.name}Arguments", __base__=ArgModelBase, **fields)

    async def call(**kwargs: Any) -> dict[str, Any]:
        record = await run_tool(tool, kwargs, timeout_s=timeout_s)
        if not record.ok:
            raise ToolError(f"{tool.name} failed: {record.error}")
        return record.result or {}

    return McpTool(fn=call, name=tool.name, description=tool.description,
                   parameters=tool.tool_call_schema.model_json_schema(),
                   fn_metadata=FuncMetadata(arg_model=arguments), is_async=True)


def build_server(
    registry: ToolRegistry, settings: Settings, *, allow_writes: bool = False, host: str = "127.0.0.1", port: int = 8765
) -> FastMCP:
    if not is_loopback(host):
        raise ValueError(f"refusing to serve MCP on {host}: the server has no authentication; use a loopback address")
    tools = [as_mcp_tool(t, settings.tool_timeout_s) for t in served_tools(registry, allow_writes)]
    return FastMCP(SERVER_NAME, instructions=INSTRUCTIONS, tools=tools, host=host, port=port, log_level="WARNING")
