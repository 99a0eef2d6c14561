"""The follow-up graph: a physician's question on a consult, answered in the consult's own thread of memory.

    look_up (the chart and knowledge-base look-ups the question asks for, deterministic) -> followup (the answer)

Its checkpointer keeps the turns, the extra tool records and the facts as last shown under the thread
`<consult thread>:followup`, beside the consult's checkpoints, so the conversation survives a restart and each
answer sees the earlier ones. The consult's state (facts, gaps, the draft) is read from its checkpoint and handed in
through the context; nothing here writes to the consult's thread, so the draft and the signed report never change.

Both nodes are typed with this graph's state (LangGraph hands a node the keys of its first parameter's type), so
they are timed here rather than by `nodes.traced`, whose wrapper is typed with the consult's state.
"""

from __future__ import annotations

import asyncio
import json
import operator
import time
from dataclasses import dataclass
from typing import Annotated, Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from medconsult.agents.evidence import build_facts
from medconsult.agents.evidence_requests import observed_analytes, tool_call_for
from medconsult.agents.followup import FollowUpTurn, answer_followup, chart_requests, dosing_request
from medconsult.config import Settings, StructuredOutputMethod
from medconsult.graphs.state import merge_records
from medconsult.records import Fact, ToolRecord
from medconsult.tools.base import MedTool
from medconsult.tools.knowledge.regimen_dosing import RegimenDosingTool
from medconsult.tools.registry import ToolRegistry
from medconsult.tools.runner import run_tool
from medconsult.tracing import Tracer, now_iso


class FollowUpState(TypedDict, total=False):
    question: str
    asked_by: str
    turns: Annotated[list[FollowUpTurn], operator.add]
    tool_records: Annotated[list[ToolRecord], merge_records]  # the follow-ups' own look-ups
    facts: list[Fact]  # the catalogue as last shown: the consult's, then what the look-ups added


@dataclass
class FollowUpContext:
    settings: Settings
    chat_model: BaseChatModel
    structured_output: StructuredOutputMethod
    tracer: Tracer
    tools: ToolRegistry
    consult: dict[str, Any]  # the consult's checkpointed state


async def look_up(state: FollowUpState, runtime: Runtime[FollowUpContext]) -> dict[str, Any]:
    context, consult = runtime.context, runtime.context.consult
    tracer, start, clock = context.tracer, now_iso(), time.perf_counter()
    tracer.started("node", "look_up")
    records = [*(consult.get("tool_records") or []), *(state.get("tool_records") or [])]
    calls: list[tuple[type[MedTool], dict[str, Any]]] = []
    if consult.get("patient_id"):
        base = {"patient_id": consult["patient_id"]}
        if consult["case"].as_of:
            base["as_of"] = consult["case"].as_of.isoformat()
        wanted = [tool_call_for(r, observed_analytes(records)) for r in chart_requests(state["question"], records)]
        calls += [(tool, {**base, **args}) for tool, args in filter(None, wanted)]
    dosing = dosing_request(state["question"], (consult.get("chosen_regimen") or {}).get("id"), records)
    if dosing:
        calls.append((RegimenDosingTool, dosing))
    unique = {(tool, json.dumps(args, sort_keys=True)): (tool, args) for tool, args in calls}
    installed = [(tool.named(context.tools.tools), args) for tool, args in unique.values()]
    new: list[ToolRecord] = await asyncio.gather(*(
        run_tool(tool, args, timeout_s=context.settings.tool_timeout_s, tracer=tracer)
        for tool, args in installed if tool is not None
    ))
    shown = state.get("facts") or consult.get("facts") or []
    facts = build_facts([*records, *new], context.tools.result_models(), shown) if new else shown
    tracer.node("look_up", start, time.perf_counter() - clock, None, tools=[r.id for r in new])
    return {"tool_records": list(new), "facts": facts}


async def followup(state: FollowUpState, runtime: Runtime[FollowUpContext]) -> dict[str, Any]:
    tracer, start, clock = runtime.context.tracer, now_iso(), time.perf_counter()
    tracer.started("node", "followup")
    turn = await _answer(state, runtime.context)
    tracer.node("followup", start, time.perf_counter() - clock, turn.error)
    return {"turns": [turn]}


async def _answer(state: FollowUpState, context: FollowUpContext) -> FollowUpTurn:
    consult = context.consult
    case = consult["case"]
    try:
        return await answer_followup(
            context.chat_model, method=context.structured_output, question=state["question"],
            asked_by=state["asked_by"], facts=state.get("facts") or consult.get("facts") or [],
            gaps=consult.get("gaps") or [], differential=consult.get("differential"), plan=consult.get("plan"),
            earlier=state.get("turns") or [], as_of=case.as_of, synthetic_dates=case.synthetic_dates,
            config={"callbacks": [context.tracer.llm_callback("followup")]},
        )
    except Exception as error:  # noqa: BLE001 - the thread records the failure; the case is untouched
        return FollowUpTurn(question=state["question"], asked_by=state["asked_by"], answer="",
                            error=f"{type(error).__name__}: {str(error)[:300]}")


def build_followup_graph(checkpointer: Any = None) -> CompiledStateGraph:
    graph = StateGraph(FollowUpState, context_schema=FollowUpContext)
    graph.add_node("look_up", look_up)
    graph.add_node("followup", followup)
    graph.add_edge(START, "look_up")
    graph.add_edge("look_up", "followup")
    graph.add_edge("followup", END)
    return graph.compile(checkpointer=checkpointer)
