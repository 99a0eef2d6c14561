"""Imaging subgraph: decode every image of the case (segmentation and radiomics mount here next)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from medconsult.graphs.context import ConsultContext
from medconsult.graphs.nodes import call_tool, tool_updates, traced
from medconsult.graphs.state import BranchOutput, ConsultState, merge_gaps, merge_records


async def load_images(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    images = state["case"].images
    outcomes = await asyncio.gather(*(call_tool(runtime, "load_image", {"path": path}) for path in images))
    records, gaps = [], []
    for path, outcome in zip(images, outcomes, strict=True):
        update = tool_updates(outcome, f"image {Path(path).name}")
        records = merge_records(records, update.get("tool_records"))
        gaps = merge_gaps(gaps, update.get("gaps"))
    return {"tool_records": records, "gaps": gaps}


def build_imaging_graph():  # noqa: ANN201 - CompiledStateGraph
    builder = StateGraph(ConsultState, output_schema=BranchOutput, context_schema=ConsultContext)
    builder.add_node("load_images", traced("imaging.load_images", load_images))
    builder.add_edge(START, "load_images")
    builder.add_edge("load_images", END)
    return builder.compile(name="imaging")
