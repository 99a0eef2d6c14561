"""Clinical calculators as tools: deterministic scores computed from the FHIR record, never by the LLM."""

from __future__ import annotations

from langchain_core.tools import BaseTool

from medconsult.tools.base import ToolContext


def calculator_tools(context: ToolContext) -> list[BaseTool]:
    """Entry point `medconsult.tools: calculators`."""
    return []
