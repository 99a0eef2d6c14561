"""EHR-context subgraph: every record tool (stage `record`) reads the patient's chart, all in parallel."""

from __future__ import annotations

from langgraph.graph.state import CompiledStateGraph

from medconsult.graphs.stages import build_stage_graph
from medconsult.tools.base import Stage


def build_ehr_graph() -> CompiledStateGraph:
    return build_stage_graph("ehr_context", Stage.RECORD)
