"""Fusion tools: the etiology estimate and similar-case retrieval over the shared latent space."""

from __future__ import annotations

from langchain_core.tools import BaseTool

from medconsult.tools.base import ToolContext
from medconsult.tools.fusion.etiology_estimate import EtiologyEstimateTool
from medconsult.tools.fusion.similar_cases import SimilarCasesTool


def fusion_tools(context: ToolContext) -> list[BaseTool]:
    """Entry point `medconsult.tools: fusion`."""
    return [cls(context=context) for cls in (EtiologyEstimateTool, SimilarCasesTool)]
