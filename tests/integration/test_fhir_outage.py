"""The FHIR server stops in the middle of a case: every record step becomes a stated gap, and the case ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import DATA_DIR, DEMO_MRN, SYNTHEA
from fakes import FakeToolCallingModel
from medconsult.cases import Case
from medconsult.config import Settings
from medconsult.fhir.client import FhirGateway
from medconsult.fhir.loader import load_bundle_file
from medconsult.fhir.server import LocalFhirServer
from medconsult.graphs.stages import stage_calls
from medconsult.process import free_port
from medconsult.runner import Services, run_consult
from medconsult.tools.base import Stage, StageInputs, ToolContext
from medconsult.tools.fhir import fhir_tools

pytestmark = pytest.mark.integration


async def test_server_stopped_after_intake_leaves_gaps_not_a_crash(tmp_path: Path):
    settings = Settings(
        state_dir=tmp_path / "state",
        fhir_port=free_port(),
        data_dir=DATA_DIR,
        checkpoint_db=tmp_path / "cp.sqlite",
        fhir_timeout_s=5,
        llm_structured_output="function_calling",  # the fake answers forced tool calls
    )
    server = LocalFhirServer(settings)
    server.up(detach=True)
    try:
        gateway = FhirGateway(server.base_url, timeout_s=120)
        for bundle in [*sorted(SYNTHEA.glob("hospitalInformation*")), *sorted(SYNTHEA.glob("practitioner*"))]:
            load_bundle_file(gateway, bundle)
        load_bundle_file(gateway, next(SYNTHEA.glob(f"*{DEMO_MRN}.json")))

        def stop_after_intake(event: dict) -> None:
            if event["kind"] == "node" and event["name"] == "intake":
                server.down()

        case = Case(id="outage", patient=DEMO_MRN, as_of="2018-09-29")
        services = Services(server.base_url, FakeToolCallingModel(), "fake")
        outcome = await run_consult(case, settings, services, tmp_path / "out", listeners=[stop_after_intake])
    finally:
        server.down()

    state = outcome.state
    assert state["patient_id"]  # intake read the patient before the server went away
    unreachable = {g.what for g in state["gaps"] if "unreachable" in g.reason}
    record_calls = stage_calls(fhir_tools(ToolContext(settings)), Stage.RECORD, [StageInputs(settings, "any")])
    assert {call.missing for _, call in record_calls} <= unreachable
    report = outcome.report_path.read_text()
    missing = report.split("## Missing or failed")[1].split("## Differential diagnosis")[0]
    assert "**allergies**: FHIR server unreachable" in missing
    assert "No differential could be drafted" in report  # nothing to reason on, and the report says so
