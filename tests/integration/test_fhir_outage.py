"""The FHIR server stops in the middle of a case: the case pauses with what finished kept, and once the server is
back (its data persisted across the restart) the resumed case reads the record and drafts."""

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
from medconsult.outage import ConsultPaused
from medconsult.process import free_port
from medconsult.runner import Services, run_consult
from medconsult.tools.base import Stage, StageInputs, ToolContext
from medconsult.tools.fhir import fhir_tools
from medconsult.tracing import read_trace

pytestmark = pytest.mark.integration


async def test_server_stopped_after_intake_pauses_the_case_and_resume_finishes_it(tmp_path: Path):
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
        with pytest.raises(ConsultPaused) as paused:
            await run_consult(case, settings, services, tmp_path / "out", listeners=[stop_after_intake])
        assert paused.value.saved and "FHIR server unavailable" in paused.value.reason
        before = read_trace(tmp_path / "out" / "trace.jsonl")
        assert not [e for e in before if e["kind"] == "llm"]  # nothing drafted on a record the server did not give

        server.up(detach=True)
        outcome = await run_consult(None, settings, services, tmp_path / "out", thread_id=paused.value.thread_id)
    finally:
        server.down()

    after = read_trace(tmp_path / "out" / "trace.jsonl")[len(before):]
    assert "fhir_find_patient" not in {e["name"] for e in after}  # intake finished before the outage
    record_calls = stage_calls(fhir_tools(ToolContext(settings)), Stage.RECORD, [StageInputs(settings, "any")])
    assert not {g.what for g in outcome.state["gaps"]} & {call.missing for _, call in record_calls}
    assert outcome.state["differential"] is not None
