"""Imaging subgraph: load and check each image; then, side by side, segment the lungs and compute radiomics, and
place the case in the shared latent space (etiology estimate, similar cases).

    load_images ─┬─ segment_lungs -> radiomics
                 └─ fusion  (etiology_estimate | similar_cases, with the patient's record)

Each step runs on every image that passed the step before (images in parallel); an image that fails a step is a
gap with the reason (corrupt file, not a chest radiograph, no lungs found) and drops out, the others go on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from medconsult.graphs.context import ConsultContext
from medconsult.graphs.nodes import call_tool, tool_updates, traced
from medconsult.graphs.state import BranchOutput, ConsultState
from medconsult.tools.runner import ToolRecord


async def _run_each(
    runtime: Runtime[ConsultContext], tool: str, calls: list[tuple[str, dict[str, Any]]], missing: str
) -> dict[str, Any]:
    outcomes = await asyncio.gather(*(call_tool(runtime, tool, args) for _, args in calls))
    records, gaps = [], []  # the state's reducers merge these with what is there
    for (image, _), outcome in zip(calls, outcomes, strict=True):
        update = tool_updates(outcome, missing.format(name=Path(image).name))
        records += update.get("tool_records", [])
        gaps += update.get("gaps", [])
    return {"tool_records": records, "gaps": gaps}


def _succeeded(state: ConsultState, tool: str) -> list[ToolRecord]:
    return [r for r in state.get("tool_records", []) if r.tool == tool and r.ok]


async def load_images(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    calls = [(path, {"path": path}) for path in state["case"].images]
    return await _run_each(runtime, "load_image", calls, "image {name}")


async def segment_lungs(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    calls = [(r.args["path"], {"image": r.args["path"]}) for r in _succeeded(state, "load_image")]
    return await _run_each(runtime, "segment_lungs", calls, "lung segmentation of {name}")


async def radiomics(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    calls = [
        (r.args["image"], {"image": r.args["image"], "right_mask": r.result["right_mask_png"],
                           "left_mask": r.result["left_mask_png"]})
        for r in _succeeded(state, "segment_lungs")
    ]  # fmt: skip
    return await _run_each(runtime, "radiomics_features", calls, "radiomics of {name}")


async def fusion(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict[str, Any]:
    """Both fusion tools on each loaded radiograph, with the patient's record as it stood on the case's day."""
    as_of = state["case"].as_of
    record = {
        "patient_id": state.get("patient_id"), "as_of": as_of.isoformat() if as_of else None,
        "population": state["case"].population,
    }  # fmt: skip
    loaded = [r.args["path"] for r in _succeeded(state, "load_image")]
    estimates = _run_each(runtime, "etiology_estimate", [(p, {"image": p, **record}) for p in loaded],
                          "etiology estimate of {name}")  # fmt: skip
    similar = _run_each(runtime, "similar_cases", [(p, {"image": p, **record}) for p in loaded],
                        "similar cases of {name}")  # fmt: skip
    first, second = await asyncio.gather(estimates, similar)
    return {key: first[key] + second[key] for key in ("tool_records", "gaps")}


def build_imaging_graph():  # noqa: ANN201 - CompiledStateGraph
    builder = StateGraph(ConsultState, output_schema=BranchOutput, context_schema=ConsultContext)
    builder.add_node("load_images", traced("imaging.load_images", load_images))
    builder.add_node("segment_lungs", traced("imaging.segment_lungs", segment_lungs))
    builder.add_node("radiomics", traced("imaging.radiomics", radiomics))
    builder.add_node("fusion", traced("imaging.fusion", fusion))
    builder.add_edge(START, "load_images")
    builder.add_edge("load_images", "segment_lungs")
    builder.add_edge("load_images", "fusion")
    builder.add_edge("segment_lungs", "radiomics")
    builder.add_edge(["radiomics", "fusion"], END)
    return builder.compile(name="imaging")
