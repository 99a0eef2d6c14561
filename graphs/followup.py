"""The follow-up graph: a physician's question on a consult, answered in the consult's own thread of memory.

Its checkpointer keeps the turns under the thread `<consult thread>:followup`, beside the consult's checkpoints, so
the conversation survives a restart and each answer sees the earlier ones. The consult's state (facts, gaps, the
draft) is read from its checkpoint and handed in through the context; nothing here writes to the consult's thread,
so the draft and the signed report never change.
"""

from __future__ import annotations

import operator
import time
from dataclasses import dataclass
from typing import Annotated, Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from medconsult.agents.followup import FollowUpTurn, answer_followup
from medconsult.config import Settings, StructuredOutputMethod
from medconsult.tracing import Tracer, now_iso


class FollowUpState(TypedDict, total=False):
    question: str
    asked_by: str
    turns: Annotated[list[FollowUpTurn], operator.add]


@dataclass
class FollowUpContext:
    settings: Settings
    chat_model: BaseChatModel
    structured_output: StructuredOutputMethod
    tracer: Tracer
    consult: dict[str, Any]  # the consult's checkpointed state


async def followup(state: FollowUpState, runtime: Runtime[FollowUpContext]) -> dict[str, Any]:
    """Typed with this graph's state (LangGraph hands a node the keys of its first parameter's type), so it is
    timed here rather than by `nodes.traced`, whose wrapper is typed with the consult's state."""
    tracer, start, clock = runtime.context.tracer, now_iso(), time.perf_counter()
    tracer.started("node", "followup")
    turn = await _answer(state, runtime.context)
    tracer.node("followup", start, time.perf_counter() - clock, turn.error)
    return {"turns": [turn]}


async def _answer(state: FollowUpState, context: FollowUpContext) -> FollowUpTurn:
    consult = context.consult
    case = consult["case"]
    try:
        turn = await answer_followup(
            context.chat_model, method=context.structured_output, question=state["question"],
            asked_by=state["asked_by"], facts=consult.get("facts") or [], gaps=consult.get("gaps") or [],
            differential=consult.get("differential"), plan=consult.get("plan"), earlier=state.get("turns") or [],
            as_of=case.as_of, synthetic_dates=case.synthetic_dates,
            config={"callbacks": [context.tracer.llm_callback("followup")]},
        )  # fmt: skip
    except Exception as error:  # noqa: BLE001 - the thread records the failure; the case is untouched
        turn = FollowUpTurn(question=state["question"], asked_by=state["asked_by"], answer="",
                            error=f"{type(error).__name__}: {str(error)[:300]}")  # fmt: skip
    return turn


def build_followup_graph(checkpointer: Any = None):  # noqa: ANN201 - CompiledStateGraph
    graph = StateGraph(FollowUpState, context_schema=FollowUpContext)
    graph.add_node("followup", followup)
    graph.add_edge(START, "followup")
    graph.add_edge("followup", END)
    return graph.compile(checkpointer=checkpointer)
