"""Knowledge-base look-ups as tools: what the project's curated regimens say, never the LLM's memory."""

from __future__ import annotations

from langchain_core.tools import BaseTool

from medconsult.tools.base import ToolContext
from medconsult.tools.knowledge.regimen_dosing import RegimenDosingTool


def knowledge_tools(context: ToolContext) -> list[BaseTool]:
    """Entry point `medconsult.tools: knowledge`."""
    return [RegimenDosingTool(context=context)]
