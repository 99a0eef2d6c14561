"""Running one case through the consult graph: services, tools, checkpointer, trace; reading a case's saved state;
and asking follow-up questions on it (the follow-up graph, in the same checkpoint database).

Used by `medconsult run`, the evaluation harness, the workspace and the tests, so all of them run the same thing.
"""

from __future__ import annotations

import contextlib
import resource
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.types import Command

from medconsult.agents.followup import FollowUpTurn
from medconsult.cases import Case
from medconsult.config import Settings
from medconsult.fhir.server import fhir_service
from medconsult.graphs.consult import build_consult_graph
from medconsult.graphs.context import ConsultContext
from medconsult.graphs.followup import FollowUpContext, build_followup_graph
from medconsult.graphs.state import STATE_MODELS
from medconsult.llm.chat_model import make_chat_model, structured_output_method
from medconsult.llm.embedded import llm_endpoint
from medconsult.outage import ConsultPaused, pause_reason
from medconsult.process import ManagedProcess
from medconsult.signoff import Approver, SignOffRequest
from medconsult.tools.base import ToolContext
from medconsult.tools.registry import discover_tools
from medconsult.tracing import Listener, StartListener, StreamListener, Tracer, now_iso


@dataclass
class Services:
    fhir_base_url: str
    chat_model: BaseChatModel
    model_name: str
    llm_process: ManagedProcess | None = None  # the embedded server, when this command started it


@dataclass
class ConsultOutcome:
    thread_id: str
    state: dict[str, Any]
    out_dir: Path
    wall_s: float

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.md"

    @property
    def awaiting_sign_off(self) -> bool:
        return self.state.get("sign_off") is None and bool(self.state.get("report_path"))

    @property
    def trace_path(self) -> Path:
        return self.out_dir / "trace.jsonl"


@contextmanager
def consult_services(settings: Settings) -> Iterator[Services]:
    """FHIR server and LLM for the duration of the block; local ones are started and stopped here."""
    with fhir_service(settings) as fhir_base_url, llm_endpoint(settings) as endpoint:
        yield Services(
            fhir_base_url,
            make_chat_model(settings, endpoint.base_url, endpoint.model),
            endpoint.model,
            endpoint.process,
        )


def checkpoint_serializer() -> JsonPlusSerializer:
    return JsonPlusSerializer(
        allowed_msgpack_modules=[(cls.__module__, cls.__name__) for cls in (*STATE_MODELS, FollowUpTurn)]
    )


async def run_consult(
    case: Case | None,
    settings: Settings,
    services: Services,
    out_dir: Path,
    *,
    listeners: list[Listener] | None = None,
    stream_listeners: list[StreamListener] | None = None,
    start_listeners: list[StartListener] | None = None,
    thread_id: str | None = None,
    approver: Approver | None = None,
) -> ConsultOutcome:
    """Run a case, or with `case=None` resume `thread_id` from its last checkpoint (completed steps are not repeated).

    The graph pauses for sign-off; `approver` answers (the CLI asks the physician). Without one, the run stops at
    the pause and `state["sign_off"]` stays unset: resume it later with an approver. A service outage, a locked
    checkpoint database or an unwritable output folder pauses it too (`ConsultPaused`, medconsult/outage.py).
    """
    if case is None and thread_id is None:
        raise ValueError("resuming needs the thread id")
    out_dir.mkdir(parents=True, exist_ok=True)
    if case is not None:
        (out_dir / "trace.jsonl").unlink(missing_ok=True)  # a resumed run appends to its trace
    tracer = Tracer(out_dir / "trace.jsonl", listeners, stream_listeners, start_listeners)
    context = ConsultContext(
        settings=settings,
        tools=discover_tools(ToolContext(settings, services.fhir_base_url, work_dir=out_dir)),
        chat_model=services.chat_model,
        structured_output=structured_output_method(settings),
        tracer=tracer,
        out_dir=out_dir,
        model_name=services.model_name,
        fhir_base_url=services.fhir_base_url,
    )
    thread_id = thread_id or f"{case.id}-{uuid.uuid4().hex[:8]}"
    config = {"configurable": {"thread_id": thread_id}}
    db_path = settings.resolved_checkpoint_db
    db_path.parent.mkdir(parents=True, exist_ok=True)
    start, clock = now_iso(), time.perf_counter()
    async with aiosqlite.connect(db_path, timeout=settings.checkpoint_busy_timeout_s) as connection:
        graph = build_consult_graph(AsyncSqliteSaver(connection, serde=checkpoint_serializer()))
        if case is None and not (await graph.aget_state(config)).values:
            raise ValueError(f"no checkpoint for thread {thread_id!r} in {db_path}")
        step: Any = {"case": case} if case is not None else None
        try:
            while True:
                state = await graph.ainvoke(step, config, context=context)
                pending = state.pop("__interrupt__", None)
                if not pending or approver is None:
                    break
                request = SignOffRequest.model_validate(pending[0].value)
                step = Command(resume=approver(request).model_dump())
        except Exception as error:
            reason = pause_reason(error)
            if reason is None:
                raise
            with contextlib.suppress(OSError):  # the trace may sit on the disk that filled up
                tracer.node("consult", start, time.perf_counter() - clock, f"paused: {reason}")
            raise ConsultPaused(thread_id, reason, saved=await _has_checkpoint(graph, config)) from error
    wall_s = time.perf_counter() - clock
    tracer.node("consult", start, wall_s)
    return ConsultOutcome(thread_id, state, out_dir, wall_s)


async def _has_checkpoint(graph: Any, config: dict[str, Any]) -> bool | None:
    try:
        return bool((await graph.aget_state(config)).values)
    except Exception:  # noqa: BLE001 - the database that paused the case may not be readable either: unknown
        return None


async def saved_state(settings: Settings, thread_id: str) -> dict[str, Any]:
    """A thread's state at its last checkpoint (empty when there is none): what a viewer reads after a restart."""
    db_path = settings.resolved_checkpoint_db
    if not db_path.exists():
        return {}
    async with aiosqlite.connect(db_path) as connection:
        graph = build_consult_graph(AsyncSqliteSaver(connection, serde=checkpoint_serializer()))
        return dict((await graph.aget_state({"configurable": {"thread_id": thread_id}})).values)


def followup_thread(consult_thread: str) -> str:
    return f"{consult_thread}:followup"


async def ask_followup(
    settings: Settings,
    services: Services,
    consult_thread: str,
    out_dir: Path,
    question: str,
    asked_by: str,
    *,
    listeners: list[Listener] | None = None,
    stream_listeners: list[StreamListener] | None = None,
    start_listeners: list[StartListener] | None = None,
) -> FollowUpTurn:
    """Answer a question on a consult from its checkpointed evidence (and the chart look-ups the question asks
    for); the turn joins the follow-up thread, its tool and LLM calls the case's trace."""
    tracer = Tracer(out_dir / "trace.jsonl", listeners, stream_listeners, start_listeners)
    tools = discover_tools(ToolContext(settings, services.fhir_base_url, work_dir=out_dir))
    async with aiosqlite.connect(settings.resolved_checkpoint_db) as connection:
        saver = AsyncSqliteSaver(connection, serde=checkpoint_serializer())
        consult = (
            await build_consult_graph(saver).aget_state({"configurable": {"thread_id": consult_thread}})
        ).values
        if not consult.get("case"):
            raise ValueError(f"no consult {consult_thread!r} to ask about")
        context = FollowUpContext(
            settings, services.chat_model, structured_output_method(settings), tracer, tools, consult
        )
        config = {"configurable": {"thread_id": followup_thread(consult_thread)}}
        state = await build_followup_graph(saver).ainvoke({"question": question, "asked_by": asked_by}, config,
                                                          context=context)
    return state["turns"][-1]


async def followup_state(settings: Settings, consult_thread: str) -> dict[str, Any]:
    """The follow-up thread's turns, look-ups and facts (empty before the first question)."""
    if not settings.resolved_checkpoint_db.exists():
        return {}
    async with aiosqlite.connect(settings.resolved_checkpoint_db) as connection:
        graph = build_followup_graph(AsyncSqliteSaver(connection, serde=checkpoint_serializer()))
        state = await graph.aget_state({"configurable": {"thread_id": followup_thread(consult_thread)}})
    return dict(state.values)


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its finished children (the embedded LLM server)."""
    to_mb = 1 / 1024  # ru_maxrss is in KiB on Linux
    return {
        "self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_mb, 1),
        "children": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * to_mb, 1),
    }
