from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import pytest
from typer.testing import CliRunner

from medconsult.cli import app
from medconsult.config import Settings
from medconsult.tools import registry as registry_module
from medconsult.tools.base import ToolContext
from medconsult.tools.registry import discover_tools

EXPECTED = {
    "fhir_find_patient",
    "fhir_patient_summary",
    "fhir_conditions",
    "fhir_medications",
    "fhir_allergies",
    "fhir_observations",
    "load_image",
}


def test_project_tools_come_from_entry_points():
    registry = discover_tools(ToolContext(Settings()))
    assert EXPECTED <= set(registry.tools) and not registry.load_errors


def test_disabled_tools_are_left_out():
    registry = discover_tools(ToolContext(Settings(disabled_tools=["load_image"])))
    assert "load_image" not in registry.tools and "fhir_conditions" in registry.tools


def test_a_broken_plugin_is_reported_and_the_rest_still_load(monkeypatch: pytest.MonkeyPatch):
    real = registry_module.entry_points
    broken = EntryPoint(name="broken", value="medconsult_no_such_module:tools", group="medconsult.tools")
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [*real(group=group), broken])
    registry = discover_tools(ToolContext(Settings()))
    assert "broken" in registry.load_errors and EXPECTED <= set(registry.tools)


def test_third_party_plugin_factory_is_discovered(monkeypatch: pytest.MonkeyPatch):
    real = registry_module.entry_points
    plugin = EntryPoint(name="echo", value="fakes:echo_tools", group="medconsult.tools")
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [*real(group=group), plugin])
    registry = discover_tools(ToolContext(Settings()))
    assert "echo" in registry.tools and not registry.load_errors
    assert registry.get("echo").invoke({"text": "hi"})["text"] == "hi"


def test_tools_list_json_lists_fhir_tools_with_schemas():
    result = CliRunner().invoke(app, ["tools", "list", "--json"])
    assert result.exit_code == 0, result.output

    listed = {t["name"]: t for t in json.loads(result.stdout)}
    assert EXPECTED <= set(listed)
    schema = listed["fhir_observations"]["args_schema"]
    assert {"patient_id", "category", "loinc_codes", "as_of"} <= set(schema["properties"])
    assert listed["fhir_conditions"]["description"]
