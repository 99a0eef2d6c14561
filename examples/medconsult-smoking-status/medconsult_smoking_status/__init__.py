"""medconsult plugin: the patient's tobacco smoking status."""

from __future__ import annotations

from langchain_core.tools import BaseTool

from medconsult.tools.base import ToolContext
from medconsult_smoking_status.smoking_status import SmokingStatusTool


def smoking_tools(context: ToolContext) -> list[BaseTool]:
    """Entry point `medconsult.tools: smoking_status`."""
    return [SmokingStatusTool(context=context)]
