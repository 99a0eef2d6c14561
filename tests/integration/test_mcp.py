"""`medconsult mcp serve` answers an MCP client (langchain-mcp-adapters) over stdio and over streamable HTTP: the
registered tools are listed with their schemas and a call returns the tool's typed result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from langchain_mcp_adapters.client import MultiServerMCPClient

from conftest import DATA_DIR
from medconsult.process import free_port

pytestmark = pytest.mark.integration

RADIOGRAPH = DATA_DIR / "cxr_hannover_covid" / "png" / "7afaaccc.png"
CLI = [sys.executable, "-m", "medconsult.cli"]


def _environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MEDCONSULT_DATA_DIR": str(DATA_DIR), "MEDCONSULT_STATE_DIR": str(tmp_path / "state"),
            "MEDCONSULT_FHIR_BASE_URL": "http://127.0.0.1:9/fhir"}


async def _list_and_call(client: MultiServerMCPClient) -> None:
    tools = {tool.name: tool for tool in await client.get_tools()}
    assert {"fhir_observations", "curb65", "load_image", "segment_lungs", "regimen_dosing"} <= set(tools)
    assert "patient_id" in json.dumps(tools["fhir_observations"].args_schema)
    loaded = await tools["load_image"].ainvoke({"path": str(RADIOGRAPH)})
    answer = json.loads(loaded[0]["text"] if isinstance(loaded, list) else loaded)
    assert answer["format"] == "png" and answer["width"] > 256 and answer["summary"]
    # A failing call is a clear error, not a crash: the server behind it is down.
    failed = json.dumps(await tools["fhir_allergies"].ainvoke({"patient_id": "p1"}))
    assert "fhir_allergies failed: FhirUnavailable: FHIR server unreachable" in failed


async def test_an_mcp_client_lists_and_calls_the_tools_over_stdio(tmp_path: Path):
    client = MultiServerMCPClient({"medconsult": {
        "transport": "stdio", "command": CLI[0], "args": [*CLI[1:], "mcp", "serve", "--transport", "stdio"],
        "env": _environment(tmp_path), "cwd": str(tmp_path),
    }})
    await _list_and_call(client)


async def test_an_mcp_client_lists_and_calls_the_tools_over_http(tmp_path: Path):
    port = free_port()
    command = [*CLI, "mcp", "serve", "--transport", "http", "--port", str(port)]
    server = subprocess.Popen(command, env=_environment(tmp_path), cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read()
                time.sleep(0.5)
        client = MultiServerMCPClient({"medconsult": {"transport": "streamable_http",
                                                      "url": f"http://127.0.0.1:{port}/mcp"}})
        await _list_and_call(client)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_server_refuses_an_address_beyond_this_machine(tmp_path: Path):
    command = [*CLI, "mcp", "serve", "--transport", "http", "--host", "0.0.0.0"]
    result = subprocess.run(command, env=_environment(tmp_path), cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and "refusing to serve MCP on 0.0.0.0" in result.stderr
