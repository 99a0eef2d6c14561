"""Shared fixtures. Integration fixtures start the real FHIR and llama.cpp servers once per session and stop them."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/fakes.py

from medconsult.config import Settings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("MEDCONSULT_DATA_DIR", REPO.parent / "shared" / "data"))
SYNTHEA = DATA_DIR / "fhir_synthea_r4" / "bundles"
DEMO_MRN = "7fb6d3c6-15ee-4a01-904c-5ac610760b95"  # Tracey Witting, Synthea pneumonia cohort


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees a developer's MEDCONSULT_* variables or config file."""
    for key in list(os.environ):
        if key.startswith("MEDCONSULT_") and key not in ("MEDCONSULT_DATA_DIR",):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MEDCONSULT_CONFIG", str(tmp_path / "absent.yaml"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state", data_dir=DATA_DIR, checkpoint_db=tmp_path / "checkpoints.sqlite"
    )


def synthea_bundles() -> list[Path]:
    support = sorted(SYNTHEA.glob("hospitalInformation*.json")) + sorted(
        SYNTHEA.glob("practitionerInformation*.json")
    )
    return support + sorted(p for p in SYNTHEA.glob("*.json") if p not in support)


@pytest.fixture(scope="session")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A real local FHIR server on a free port, loaded with the Synthea bundles; stopped at the end."""
    from medconsult.fhir.client import FhirGateway
    from medconsult.fhir.loader import load_bundle_file
    from medconsult.fhir.server import LocalFhirServer
    from medconsult.process import free_port

    state = tmp_path_factory.mktemp("fhir-state")
    server_settings = Settings(state_dir=state, fhir_port=free_port(), data_dir=DATA_DIR)
    server = LocalFhirServer(server_settings)
    server.up(detach=True)
    try:
        gateway = FhirGateway(server.base_url, timeout_s=120)
        for bundle in synthea_bundles():
            load_bundle_file(gateway, bundle)
        yield server_settings
    finally:
        server.down()


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real llama.cpp server with smollm2-135m on a free port: (base_url, model)."""
    from medconsult.llm.embedded import start_embedded

    endpoint = start_embedded(
        Settings(embedded_model="smollm2-135m", state_dir=tmp_path_factory.mktemp("llm"))
    )
    try:
        yield endpoint.base_url, endpoint.model
    finally:
        endpoint.process.stop()
