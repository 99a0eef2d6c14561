"""Clinical calculators as tools: deterministic scores computed from the FHIR record, never by the LLM."""

from __future__ import annotations

from langchain_core.tools import BaseTool

from medconsult.tools.base import ToolContext
from medconsult.tools.calculators.crb65 import Crb65Tool
from medconsult.tools.calculators.curb65 import Curb65Tool
from medconsult.tools.calculators.egfr_ckd_epi_2021 import EgfrCkdEpi2021Tool
from medconsult.tools.calculators.infection_markers import InfectionMarkersTool
from medconsult.tools.calculators.psi_port import PsiPortTool
from medconsult.tools.calculators.qsofa import QsofaTool
from medconsult.tools.calculators.sirs import SirsTool


def calculator_tools(context: ToolContext) -> list[BaseTool]:
    """Entry point `medconsult.tools: calculators`."""
    classes = (Curb65Tool, Crb65Tool, QsofaTool, SirsTool, PsiPortTool, EgfrCkdEpi2021Tool, InfectionMarkersTool)
    return [cls(context=context) for cls in classes]
