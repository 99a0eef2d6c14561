"""What every medconsult tool is: a LangChain BaseTool with a pydantic input schema and a typed result.

A plugin package subclasses `MedTool`, sets `name`, `description`, `args_schema` and `result_model`, implements
`execute`, and exposes a factory `def my_tools(context: ToolContext) -> list[BaseTool]` under the entry-point
group `medconsult.tools` (see tools/registry.py). The graph and the CLI find it without any change here.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict

from medconsult.config import Settings
from medconsult.fhir.auth import gateway_from_settings
from medconsult.fhir.client import FhirGateway


@dataclass
class ToolContext:
    """Run-time resources a tool may use; built once per command and shared by all tools."""

    settings: Settings
    fhir_base_url: str | None = None
    work_dir: Path = field(default_factory=lambda: Path("out") / "work")

    @cached_property
    def fhir(self) -> FhirGateway:
        return gateway_from_settings(self.settings, self.fhir_base_url)


class Evidence(BaseModel):
    """One checkable statement a result offers as evidence, tied to the resource it comes from."""

    kind: str  # e.g. "lab", "vital", "condition", "medication", "allergy", "demographics", "image"
    text: str
    resource: str | None = None  # FHIR reference ("Observation/123") or file path
    value: float | str | None = None
    unit: str | None = None


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
    timeout_s: float | None = None  # None: the configured default

    def _run(self, *args: Any, run_manager: Any = None, **kwargs: Any) -> dict:
        arguments = self.args_schema.model_validate(kwargs)
        result = self.execute(arguments)
        return self.result_model.model_validate(result).model_dump(mode="json")

    @abstractmethod
    def execute(self, args: BaseModel) -> ToolResult:
        """Do the work; raise an exception with a clear message on failure (the runner records it)."""
