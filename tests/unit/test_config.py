from __future__ import annotations

from pathlib import Path

import pytest

from medconsult.config import Settings


def test_defaults_use_embedded_llm_and_local_fhir():
    settings = Settings()
    assert settings.uses_embedded_llm and settings.uses_local_fhir
    assert settings.effective_fhir_url == "http://127.0.0.1:8090/fhir"
    assert settings.embedded_model == "qwen2.5-1.5b"


def test_environment_switches_servers_without_code(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MEDCONSULT_LLM_BASE_URL", "http://gpu-host:8000/v1")
    monkeypatch.setenv("MEDCONSULT_LLM_MODEL", "google/medgemma-27b-text-it")
    monkeypatch.setenv("MEDCONSULT_FHIR_BASE_URL", "https://fhir.hospital.example/r4/")
    settings = Settings()
    assert not settings.uses_embedded_llm and settings.llm_model == "google/medgemma-27b-text-it"
    assert settings.effective_fhir_url == "https://fhir.hospital.example/r4"


def test_yaml_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    config = tmp_path / "medconsult.yaml"
    config.write_text("llm_model: from-file\ntool_timeout_s: 12\n")
    monkeypatch.setenv("MEDCONSULT_CONFIG", str(config))
    monkeypatch.setenv("MEDCONSULT_LLM_MODEL", "from-env")
    settings = Settings()
    assert settings.tool_timeout_s == 12
    assert settings.llm_model == "from-env"


def test_secrets_are_not_printed():
    settings = Settings(llm_api_key="sk-secret", fhir_bearer_token="bearer-secret")
    assert "sk-secret" not in repr(settings) and "bearer-secret" not in repr(settings)
