"""Clinical-scores subgraph: every calculator (stage `scores`) runs in parallel on the FHIR record; the LLM does no
arithmetic."""

from __future__ import annotations

from langgraph.graph.state import CompiledStateGraph

from medconsult.graphs.stages import build_stage_graph
from medconsult.tools.base import Stage


def build_scores_graph() -> CompiledStateGraph:
    return build_stage_graph("clinical_scores", Stage.SCORES)
