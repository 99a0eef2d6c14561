"""Imaging tools: radiograph loading and checks, lung segmentation, radiomics, lung zones, comparison with a prior."""

from __future__ import annotations

from langchain_core.tools import BaseTool

from medconsult.tools.base import ToolContext
from medconsult.tools.imaging.compare_radiographs import CompareRadiographsTool
from medconsult.tools.imaging.load_image import LoadImageTool
from medconsult.tools.imaging.lung_zones import LungZonesTool
from medconsult.tools.imaging.radiomics_features import RadiomicsFeaturesTool
from medconsult.tools.imaging.segment_lungs import SegmentLungsTool


def imaging_tools(context: ToolContext) -> list[BaseTool]:
    """Entry point `medconsult.tools: imaging`."""
    return [cls(context=context) for cls in (
        LoadImageTool, SegmentLungsTool, RadiomicsFeaturesTool, LungZonesTool, CompareRadiographsTool
    )]
