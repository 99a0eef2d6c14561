"""Imaging subgraph: load and check each radiograph; then every tool of the `image` stage on each one that loaded
(lung segmentation, the latent-space estimate and similar cases, any plugin), and every tool of the `lungs` stage
on each one whose lungs were segmented (radiomics, any plugin).

    load_images ─ image_tools (each radiograph x each image-stage tool) ─ segmented
                ─ lung_tools (each segmented radiograph x each lungs-stage tool)

An image that fails a step is a gap with the reason (corrupt file, not a chest radiograph, no lungs found) and
drops out, the others go on. `segmented` is where the image calls meet, so the lung calls are planned once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from medconsult.graphs.context import ConsultContext
from medconsult.graphs.nodes import call_tool, tool_updates, traced
from medconsult.graphs.stages import PlannedCall, call_node, plan_calls
from medconsult.graphs.state import BranchOutput, ConsultState
from medconsult.records import ToolRecord
from medconsult.tools.base import Stage, StageInputs
from medconsult.tools.imaging.load_image import LoadImageTool
from medconsult.tools.imaging.segment_lungs import SegmentLungsResult, SegmentLungsTool


def _succeeded(state: ConsultState, tool: type) -> list[ToolRecord]:
    return [r for r in state.get("tool_records", []) if r.tool == tool.tool_name() and r.ok]


async def load_images(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    paths = state["case"].images
    outcomes = await asyncio.gather(*(call_tool(runtime, LoadImageTool, {"path": p}) for p in paths))
    records, gaps = [], []  # the state's reducers merge these with what is there
    for path, outcome in zip(paths, outcomes, strict=True):
        update = tool_updates(outcome, f"image {Path(path).name}")
        records += update.get("tool_records", [])
        gaps += update.get("gaps", [])
    return {"tool_records": records, "gaps": gaps}


def _image_inputs(state: ConsultState, context: ConsultContext, image: str, **masks: str) -> StageInputs:
    case = state["case"]
    return StageInputs(context.settings, state.get("patient_id"), case.as_of, case.population, image, **masks)


def route_loaded(state: ConsultState, runtime: Runtime[ConsultContext]) -> list[Send]:
    """Each loaded radiograph to every image-stage tool, with the patient's record as it stood on the case's day."""
    loaded = [r.args["path"] for r in _succeeded(state, LoadImageTool)]
    inputs = [_image_inputs(state, runtime.context, path) for path in loaded]
    return plan_calls(runtime.context, Stage.IMAGE, inputs, node="image_tools")


def route_segmented(state: ConsultState, runtime: Runtime[ConsultContext]) -> list[Send]:
    """Each radiograph whose lungs were segmented to every lungs-stage tool, with its two masks."""
    inputs = []
    for record in _succeeded(state, SegmentLungsTool):
        masks = SegmentLungsResult.model_validate(record.result)
        inputs.append(_image_inputs(state, runtime.context, record.args["image"],
                                    right_mask=masks.right_mask_png, left_mask=masks.left_mask_png))
    return plan_calls(runtime.context, Stage.LUNGS, inputs, node="lung_tools")


async def _segmented(state: ConsultState) -> dict[str, Any]:
    """Where the image calls meet: the lung calls are planned once, from all of their results."""
    return {}


def build_imaging_graph() -> CompiledStateGraph:
    builder = StateGraph(ConsultState, output_schema=BranchOutput, context_schema=ConsultContext)
    builder.add_node("load_images", traced("imaging.load_images", load_images))
    builder.add_node("image_tools", call_node("imaging"), input_schema=PlannedCall)
    builder.add_node("segmented", _segmented)
    builder.add_node("lung_tools", call_node("imaging"), input_schema=PlannedCall)
    builder.add_edge(START, "load_images")
    builder.add_conditional_edges("load_images", route_loaded, ["image_tools"])
    builder.add_edge("image_tools", "segmented")
    builder.add_conditional_edges("segmented", route_segmented, ["lung_tools"])
    builder.add_edge("lung_tools", END)
    return builder.compile(name="imaging")
