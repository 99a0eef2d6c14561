"""Running one case through the consult graph: services, tools, checkpointer, trace.

Used by `medconsult run`, the tests and (later) the evaluation harness, so all of them run the same thing.
"""

from __future__ import annotations

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

from medconsult.cases import Case
from medconsult.config import Settings
from medconsult.fhir.server import fhir_service
from medconsult.graphs.consult import build_consult_graph
from medconsult.graphs.context import ConsultContext
from medconsult.graphs.state import STATE_MODELS
from medconsult.llm.chat_model import make_chat_model, structured_output_method
from medconsult.llm.embedded import llm_endpoint
from medconsult.process import ManagedProcess
from medconsult.signoff import Approver, SignOffRequest
from medconsult.tools.base import ToolContext
from medconsult.tools.registry import discover_tools
from medconsult.tracing import Listener, StreamListener, Tracer, now_iso


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
        allowed_msgpack_modules=[(cls.__module__, cls.__name__) for cls in STATE_MODELS]
    )


async def run_consult(
    case: Case | None,
    settings: Settings,
    services: Services,
    out_dir: Path,
    *,
    listeners: list[Listener] | None = None,
    stream_listeners: list[StreamListener] | None = None,
    thread_id: str | None = None,
    approver: Approver | None = None,
) -> ConsultOutcome:
    """Run a case, or with `case=None` resume `thread_id` from its last checkpoint (completed steps are not repeated).

    The graph pauses for sign-off; `approver` answers (the CLI asks the physician). Without one, the run stops at
    the pause and `state["sign_off"]` stays unset: resume it later with an approver.
    """
    if case is None and thread_id is None:
        raise ValueError("resuming needs the thread id")
    out_dir.mkdir(parents=True, exist_ok=True)
    if case is not None:
        (out_dir / "trace.jsonl").unlink(missing_ok=True)  # a resumed run appends to its trace
    tracer = Tracer(out_dir / "trace.jsonl", listeners, stream_listeners)
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
    async with aiosqlite.connect(db_path) as connection:
        graph = build_consult_graph(AsyncSqliteSaver(connection, serde=checkpoint_serializer()))
        if case is None and not (await graph.aget_state(config)).values:
            raise ValueError(f"no checkpoint for thread {thread_id!r} in {db_path}")
        step: Any = {"case": case} if case is not None else None
        while True:
            state = await graph.ainvoke(step, config, context=context)
            pending = state.pop("__interrupt__", None)
            if not pending or approver is None:
                break
            request = SignOffRequest.model_validate(pending[0].value)
            step = Command(resume=approver(request).model_dump())
    wall_s = time.perf_counter() - clock
    tracer.node("consult", start, wall_s)
    return ConsultOutcome(thread_id, state, out_dir, wall_s)


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its finished children (the embedded LLM server)."""
    to_mb = 1 / 1024  # ru_maxrss is in KiB on Linux
    return {
        "self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_mb, 1),
        "children": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * to_mb, 1),
    }
