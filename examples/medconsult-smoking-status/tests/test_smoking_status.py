"""The plugin's own tests: its answer from a record held in memory, and its registration."""

from __future__ import annotations

from datetime import date
from importlib.metadata import entry_points

import pytest
from medconsult_smoking_status.smoking_status import SmokingStatusTool

from medconsult.config import Settings
from medconsult.tools.base import Stage, StageInputs, ToolContext


def _observation(resource_id: str, when: str, status: str) -> dict:
    return {"resourceType": "Observation", "id": resource_id, "status": "final", "effectiveDateTime": when,
            "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
            "valueCodeableConcept": {"text": status}}


class RecordInMemory:
    """Answers the tool's one search the way a FHIR server would, from a list of resources."""

    def __init__(self, resources: list[dict]) -> None:
        self.resources = resources
        self.searches: list[dict] = []

    def search(self, resource_class: type, params: dict[str, str], limit: int = 1000) -> list:
        self.searches.append(params)
        return [resource_class(r) for r in self.resources]


@pytest.fixture
def tool() -> SmokingStatusTool:
    context = ToolContext(Settings())
    context.fhir = RecordInMemory([
        _observation("a", "2015-01-10T09:00:00Z", "Current every day smoker"),
        _observation("b", "2017-03-02T09:00:00Z", "Former smoker"),
        _observation("c", "2021-06-01T09:00:00Z", "Never smoker"),  # after the case's day: hidden
    ])
    return SmokingStatusTool(context=context)


def test_the_latest_status_on_the_day_with_earlier_ones(tool: SmokingStatusTool):
    result = tool.invoke({"patient_id": "p1", "as_of": "2020-01-01"})
    assert result["status"] == "Former smoker" and result["recorded"] == "2017-03-02"
    assert result["resource"] == "Observation/b" and result["earlier"] == ["Current every day smoker"]
    fact = SmokingStatusTool.result_model.model_validate(result).evidence()[0]
    assert fact.resource == "Observation/b" and "Former smoker" in fact.text
    assert tool.context.fhir.searches[0]["code"] == "http://loinc.org|72166-2"


def test_none_recorded_is_said_plainly(tool: SmokingStatusTool):
    result = tool.invoke({"patient_id": "p1", "as_of": "2014-01-01"})
    assert result["status"] is None and result["summary"] == "no tobacco smoking status recorded"


def test_the_consult_calls_it_once_with_the_patient(tool: SmokingStatusTool):
    calls = tool.consult_calls(StageInputs(Settings(), "p1", date(2020, 1, 1), "adult"))
    assert tool.stage == Stage.RECORD
    assert [call.args for call in calls] == [{"patient_id": "p1", "as_of": "2020-01-01"}]
    assert tool.consult_calls(StageInputs(Settings())) == []  # no patient resolved: not called


def test_it_is_registered_under_the_entry_point():
    names = {e.name: e.value for e in entry_points(group="medconsult.tools")}
    assert names.get("smoking_status") == "medconsult_smoking_status:smoking_tools"
