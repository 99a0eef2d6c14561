"""What every medconsult tool is: a LangChain BaseTool with a pydantic input schema and a typed result.

A plugin package subclasses `MedTool`, sets `name`, `description`, `args_schema`, `result_model` and `stage`,
implements `execute`, and exposes a factory `def my_tools(context: ToolContext) -> list[BaseTool]` under the
entry-point group `medconsult.tools` (see tools/registry.py). The consult graph runs every registered tool of each
stage (graphs/stages.py): a plugin's results become facts the draft may cite, with no change here.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict

from medconsult.config import Settings
from medconsult.fhir.auth import gateway_from_settings
from medconsult.fhir.client import FhirGateway
from medconsult.records import Evidence  # re-exported: plugins build their evidence from here


@dataclass
class ToolContext:
    """Run-time resources a tool may use; built once per command and shared by all tools."""

    settings: Settings
    fhir_base_url: str | None = None
    work_dir: Path = field(default_factory=lambda: Path("out") / "work")

    @cached_property
    def fhir(self) -> FhirGateway:
        return gateway_from_settings(self.settings, self.fhir_base_url)


class Stage(StrEnum):
    """Where in the consult a tool runs. The graph calls every registered tool of a stage, in parallel."""

    INTAKE = "intake"  # the graph calls these itself to admit the case: find the patient, load each radiograph
    RECORD = "record"  # reads the chart, once per consult
    SCORES = "scores"  # computes from the chart, once per consult (the LLM does no arithmetic)
    IMAGE = "image"  # once per radiograph that loaded, with the patient's record
    LUNGS = "lungs"  # once per radiograph whose lungs were segmented, with the two lung masks
    PRIOR = "prior"  # once per radiograph with an earlier exam of the patient: the two images and their dates
    ON_REQUEST = "on_request"  # only when a step asks for it: the evidence loop, a follow-up question


@dataclass(frozen=True)
class StageInputs:
    """What the consult knows when a stage starts. A tool's input fields of these names are filled from it."""

    settings: Settings
    patient_id: str | None = None
    as_of: date | None = None
    population: str | None = None
    image: str | None = None  # the radiograph (IMAGE and LUNGS stages)
    right_mask: str | None = None  # its lung masks (LUNGS stage)
    left_mask: str | None = None
    prior: str | None = None  # the earlier exam's image (PRIOR stage); `image` is then the current one
    prior_date: date | None = None
    current_date: date | None = None

    def values(self) -> dict[str, Any]:
        """The known inputs by field name, JSON-ready."""
        known = {"patient_id": self.patient_id, "as_of": self.as_of.isoformat() if self.as_of else None,
                 "population": self.population, "image": self.image, "right_mask": self.right_mask,
                 "left_mask": self.left_mask, "prior": self.prior, "current": self.image if self.prior else None,
                 "prior_date": self.prior_date.isoformat() if self.prior_date else None,
                 "current_date": self.current_date.isoformat() if self.current_date else None}
        return {name: value for name, value in known.items() if value is not None}


@dataclass(frozen=True)
class ConsultCall:
    """One call the consult makes to a tool at its stage."""

    label: str  # the step's name in the trace, e.g. "labs"
    args: dict[str, Any]
    missing: str  # what the report names as missing when the call fails, e.g. "laboratory results"


class ToolResult(BaseModel):
    """Base of every typed result. `summary` is one line a clinician can read in the trace."""

    model_config = ConfigDict(extra="forbid")
    summary: str

    def evidence(self) -> list[Evidence]:
        """Statements the reasoning steps may cite; override to offer finer-grained ones than the summary."""
        return [Evidence(kind="summary", text=self.summary)]


class MedTool(BaseTool):
    """A tool with a typed result; `invoke` returns the result as a JSON-ready dict."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    context: ToolContext
    result_model: ClassVar[type[ToolResult]]
    stage: ClassVar[Stage] = Stage.ON_REQUEST
    missing: ClassVar[str] = ""  # what the report names as missing when the tool fails; default: its name
    writes: ClassVar[bool] = False  # True for a tool that changes a record: never served over MCP unless allowed
    timeout_s: float | None = None  # None: the configured default

    @classmethod
    def tool_name(cls) -> str:
        """The registered name, read from the class: callers name a tool by its class, never by a string."""
        return cls.model_fields["name"].default

    @classmethod
    def named(cls, tools: dict[str, BaseTool]) -> BaseTool | None:
        """The tool registered under this class's name (None when it is not installed or disabled). Names are unique
        in a registry; a test double may stand in for the class."""
        return tools.get(cls.tool_name())

    def consult_calls(self, inputs: StageInputs) -> list[ConsultCall]:
        """The calls the consult makes at this tool's stage: by default one, its input fields filled by name from
        what the stage knows. A tool without a patient to read (no patient resolved) is not called."""
        fields = self.args_schema.model_fields
        if "patient_id" in fields and fields["patient_id"].is_required() and not inputs.patient_id:
            return []
        args = {name: value for name, value in inputs.values().items() if name in fields}
        args |= self.consult_options(inputs.settings)
        return [ConsultCall(self.name, args, self.describe_missing(inputs))]

    def consult_options(self, settings: Settings) -> dict[str, Any]:
        """Arguments the consult adds to the stage's inputs (a status filter, a limit from the settings)."""
        return {}

    def describe_missing(self, inputs: StageInputs) -> str:
        what = self.missing or self.name
        return f"{what} of {Path(inputs.image).name}" if inputs.image else what

    def _run(self, *args: Any, run_manager: Any = None, **kwargs: Any) -> dict:
        arguments = self.args_schema.model_validate(kwargs)
        result = self.execute(arguments)
        return self.result_model.model_validate(result).model_dump(mode="json")

    @abstractmethod
    def execute(self, args: BaseModel) -> ToolResult:
        """Do the work; raise an exception with a clear message on failure (the runner records it)."""
