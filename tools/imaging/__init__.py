"""Imaging tools: radiograph loading (segmentation and radiomics plug in here as well)."""

from __future__ import annotations

from langchain_core.tools import BaseTool

from medconsult.tools.base import ToolContext
from medconsult.tools.imaging.load_image import LoadImageTool


def imaging_tools(context: ToolContext) -> list[BaseTool]:
    """Entry point `medconsult.tools: imaging`."""
    return [LoadImageTool(context=context)]
