"""A FHIR server without a resource type (or a search parameter) gives a gap that says so, not a stack trace."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from medconsult.config import Settings
from medconsult.graphs.nodes import tool_updates
from medconsult.tools.base import ToolContext
from medconsult.tools.fhir.clinical_notes import ClinicalNotesTool
from medconsult.tools.fhir.encounters import EncountersTool
from medconsult.tools.runner import run_tool

ANSWERS = {"/fhir/DocumentReference": 404, "/fhir/Encounter": 400}  # what this partial server lacks


class _PartialServer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server's name
        status = ANSWERS.get(self.path.split("?")[0], 200)
        body = {"resourceType": "Bundle", "type": "searchset", "entry": []}
        if status != 200:
            body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported"}]}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def partial_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PartialServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    server.shutdown()


@pytest.mark.parametrize(
    ("tool_class", "missing", "resource_type", "status"),
    [
        (ClinicalNotesTool, "clinical notes", "DocumentReference", 404),
        (EncountersTool, "recent encounters", "Encounter", 400),
    ],
)
async def test_missing_resource_type_is_a_plain_gap(partial_server, tool_class, missing, resource_type, status):
    tool = tool_class(context=ToolContext(Settings(), partial_server))
    record = await run_tool(tool, {"patient_id": "p1"}, timeout_s=10)
    gap = tool_updates(record, missing)["gaps"][0]
    reason = f"the FHIR server does not offer {resource_type} or this search (HTTP {status})"
    assert not record.ok and (gap.what, gap.reason) == (missing, reason)
