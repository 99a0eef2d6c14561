from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import pytest
from typer.testing import CliRunner

from medconsult.cli import app
from medconsult.config import Settings
from medconsult.tools import registry as registry_module
from medconsult.tools.base import MedTool, Stage, ToolContext
from medconsult.tools.fhir.allergies import AllergiesTool
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
    assert listed["fhir_conditions"]["stage"] == "record" and listed["curb65"]["stage"] == "scores"
    assert listed["segment_lungs"]["stage"] == "image" and listed["radiomics_features"]["stage"] == "lungs"


def test_every_built_in_tool_declares_a_stage_and_none_writes():
    registry = discover_tools(ToolContext(Settings()))
    assert all(isinstance(t, MedTool) for t in registry.tools.values())
    on_request = {t.name for t in registry.tools.values() if t.stage == Stage.ON_REQUEST}
    assert on_request == {"regimen_dosing"}  # the others run in every consult, or admit it
    assert not any(t.writes for t in registry.tools.values())


def test_mcp_serves_a_writing_tool_only_when_allowed_and_only_on_loopback():
    from medconsult.mcp_server import build_server, served_tools

    class WriteAllergy(AllergiesTool):  # a record tool marked as writing, for this test only
        name: str = "write_allergy"
        writes = True

    registry = discover_tools(ToolContext(Settings()))
    registry.tools["write_allergy"] = WriteAllergy(context=ToolContext(Settings()))
    assert "write_allergy" not in {t.name for t in served_tools(registry)}
    assert "write_allergy" in {t.name for t in served_tools(registry, allow_writes=True)}
    with pytest.raises(ValueError, match="refusing to serve MCP on 0.0.0.0"):
        build_server(registry, Settings(), host="0.0.0.0")
