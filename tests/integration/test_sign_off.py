"""After approval, the draft is written back to the real FHIR server as preliminary / draft resources."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fhirclient.models.careplan import CarePlan
from fhirclient.models.diagnosticreport import DiagnosticReport

from conftest import DEMO_MRN
from fakes import FakeToolCallingModel
from medconsult.cases import Case
from medconsult.config import Settings
from medconsult.fhir.client import FhirGateway
from medconsult.runner import Services, run_consult
from medconsult.signoff import auto_approve

pytestmark = pytest.mark.integration


async def test_approved_draft_is_written_back_as_preliminary(fhir_server: Settings, tmp_path: Path):
    settings = Settings(
        state_dir=tmp_path / "state", checkpoint_db=tmp_path / "cp.sqlite", fhir_write_back=True,
        fhir_base_url=fhir_server.local_fhir_url, llm_structured_output="function_calling",  # the fake's method
    )
    case = Case(id="writeback", patient=DEMO_MRN, as_of="2018-09-29")
    services = Services(fhir_server.local_fhir_url, FakeToolCallingModel(), "fake")
    outcome = await run_consult(case, settings, services, tmp_path / "out", approver=auto_approve)

    written = outcome.state["written_resources"]
    assert [ref.split("/")[0] for ref in written] == ["DiagnosticReport", "CarePlan"]
    gateway = FhirGateway(fhir_server.local_fhir_url)
    report = gateway.read(DiagnosticReport, written[0].split("/")[1])
    assert report.status == "preliminary" and report.subject.reference == f"Patient/{outcome.state['patient_id']}"
    presented = base64.b64decode(report.presentedForm[0].data).decode()
    assert "# Consult draft: writeback" in presented and "**Signed off: approve**" in presented
    plan = gateway.read(CarePlan, written[1].split("/")[1])
    assert (plan.status, plan.intent) == ("draft", "proposal") and plan.activity
    final = outcome.report_path.read_text()
    assert f"`{written[0]}`" in final and "**Signed off: approve** by auto-approve" in final
