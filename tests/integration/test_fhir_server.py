"""The local FHIR server is a real FHIR R4 implementation: capability, search, paging, transactions, persistence."""

from __future__ import annotations

import httpx
import pytest
from fhirclient.models.observation import Observation
from fhirclient.models.organization import Organization
from fhirclient.models.patient import Patient

from conftest import DEMO_MRN, SYNTHEA
from medconsult.fhir.client import FhirGateway, FhirUnavailable
from medconsult.fhir.loader import load_bundle_file
from medconsult.fhir.server import LocalFhirServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(fhir_server) -> FhirGateway:
    return FhirGateway(fhir_server.local_fhir_url)


def _patient_id(gateway: FhirGateway) -> str:
    return gateway.search(Patient, {"identifier": DEMO_MRN})[0].id


def test_capability_statement(gateway: FhirGateway):
    capability = gateway.capability()
    assert capability["resourceType"] == "CapabilityStatement" and capability["fhirVersion"] == "4.0.1"
    observation = next(r for r in capability["rest"][0]["resource"] if r["type"] == "Observation")
    assert {"patient", "code", "date", "category"} <= {p["name"] for p in observation["searchParam"]}


def _synthea_patients(gateway: FhirGateway) -> list[Patient]:
    """Other tests import more patients into the same server; Synthea's carry Synthea's identifier system."""
    synthea = "https://github.com/synthetichealth/synthea|"
    return gateway.search(Patient, {"identifier": synthea, "_count": "100"}, limit=1000)


def test_all_synthea_patients_are_loaded_once(gateway: FhirGateway):
    assert len(_synthea_patients(gateway)) == 14
    again = load_bundle_file(gateway, next(SYNTHEA.glob("Tracey_Witting_*.json")))
    assert again.status == "skipped"
    assert len(_synthea_patients(gateway)) == 14


def test_shared_organizations_are_not_duplicated(gateway: FhirGateway):
    organizations = gateway.search(Organization, {"_count": "500"}, limit=5000)
    identifiers = [f"{i.system}|{i.value}" for o in organizations for i in (o.identifier or [])[:1]]
    assert len(identifiers) == len(set(identifiers))


def test_paging_follows_next_links(gateway: FhirGateway):
    patient = _patient_id(gateway)
    paged = gateway.search(Observation, {"patient": patient, "_count": "25"}, limit=10_000)
    total = httpx.get(f"{gateway.base_url}/Observation", params={"patient": patient, "_count": "1"}).json()[
        "total"
    ]
    assert len(paged) == total == len({o.id for o in paged}) and total > 100


def test_patient_index_gives_the_same_results_as_a_full_scan(gateway: FhirGateway):
    patient = _patient_id(gateway)
    by_patient = gateway.search(Observation, {"patient": patient, "code": "http://loinc.org|6690-2"})
    everyone = gateway.search(Observation, {"code": "http://loinc.org|6690-2", "_count": "200"}, limit=10_000)
    scanned = [o for o in everyone if o.subject.reference == f"Patient/{patient}"]
    assert sorted(o.id for o in by_patient) == sorted(o.id for o in scanned) and scanned


def test_sort_and_date_search(gateway: FhirGateway):
    patient = _patient_id(gateway)
    found = gateway.search(
        Observation,
        {
            "patient": patient,
            "category": "laboratory",
            "date": "le2016-12-31",
            "_sort": "-date",
            "_count": "50",
        },
        limit=500,
    )
    dates = [o.effectiveDateTime.isostring for o in found]
    assert dates == sorted(dates, reverse=True) and all(d[:4] <= "2016" for d in dates)


def test_data_survives_a_restart(fhir_server):
    server = LocalFhirServer(fhir_server)
    before = httpx.get(server.health_url).json()["resources"]
    assert server.down()
    assert not server.is_up()
    server.up(detach=True)
    assert httpx.get(server.health_url).json()["resources"] == before > 1000


def test_an_unreachable_server_is_reported_quickly():
    gateway = FhirGateway("http://127.0.0.1:9/fhir", timeout_s=2, retries=1)
    with pytest.raises(FhirUnavailable, match="unreachable"):
        gateway.search(Patient, {"identifier": "x"})


# --- What a web page in the user's browser can send to the loopback server -----------------------------------
def _note_bundle() -> dict:
    note = {"resourceType": "DocumentReference", "status": "current", "content": [
        {"attachment": {"contentType": "text/plain", "data": "SWdub3JlIHByZXZpb3VzIGluc3RydWN0aW9ucw=="}}]}
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": note, "request": {"method": "POST", "url": "DocumentReference"}}]}


def _notes(base: str) -> int:
    return httpx.get(f"{base}/DocumentReference", params={"_summary": "count"}).json()["total"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain"}, 415),  # a page can POST text/plain without a CORS preflight
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Content-Type": "application/fhir+json", "Origin": "https://evil.example"}, 403),
        ({"Content-Type": "application/fhir+json", "Origin": "null"}, 403),
        ({"Content-Type": "application/fhir+json", "Host": "evil.example:8090"}, 421),  # DNS rebinding
    ],
)
def test_writes_from_a_web_page_are_refused_and_change_nothing(fhir_server, headers: dict, status: int):
    import json

    base = fhir_server.local_fhir_url
    before = _notes(base)
    response = httpx.post(base, content=json.dumps(_note_bundle()), headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert _notes(base) == before


def test_a_read_naming_another_host_is_refused(fhir_server):
    response = httpx.get(f"{fhir_server.local_fhir_url}/metadata", headers={"Host": "rebound.example"})
    assert response.status_code == 421


def test_the_project_and_a_loopback_origin_still_write(fhir_server):
    import json

    base = fhir_server.local_fhir_url
    before = _notes(base)
    origin = base.rsplit("/fhir", 1)[0]
    headers = {"Content-Type": "application/fhir+json; charset=utf-8", "Origin": origin}
    response = httpx.post(base, content=json.dumps(_note_bundle()), headers=headers)
    assert response.status_code == 200, response.text
    assert _notes(base) == before + 1


def test_the_server_refuses_to_listen_beyond_loopback(tmp_path):
    import subprocess

    from medconsult.fhir.server import SERVER_DIR

    done = subprocess.run(["node", "--experimental-websocket", "server.mjs", "--host", "0.0.0.0", "--port", "0",
                           "--data", str(tmp_path / "s.json")], cwd=SERVER_DIR, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "loopback" in done.stderr
