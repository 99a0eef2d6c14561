"""Consults running behind the workspace, and what their viewers see as they run.

Each case runs the same consult graph as `medconsult run` (`run_consult`), in its own thread id, as an asyncio task
of the server. Its tracer's listeners turn each step's start and end, and the differential and plan as the model
writes them, into events on the case's channel; a viewer's event stream replays the channel's history and then
follows it live. The run stops at the sign-off interrupt; the clinician's decision resumes it from its checkpoint.
At most `max_parallel` consults run at once (they share one LLM server); the others wait as "queued", at most
`max_queued` of them: beyond that a new consult or question is refused as busy (a sign-off is always taken).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from medconsult.config import Settings
from medconsult.outage import ConsultPaused
from medconsult.outcome import consult_failure
from medconsult.partial_reply import partial_answer, reply_lines
from medconsult.runner import Services, ask_followup, run_consult
from medconsult.signoff import SignOff
from medconsult.tracing import read_trace
from medconsult.workspace.store import WorkspaceCase, WorkspaceStore

logger = logging.getLogger(__name__)

Event = dict[str, Any]
DRAFT_STEPS = ("differential", "plan")
FOLLOWUP_STEP = "followup"


@dataclass
class CaseChannel:
    """Every event of a case's current run, kept for late viewers, and the queues of its live viewers."""

    history: list[Event] = field(default_factory=list)
    viewers: set[asyncio.Queue[Event | None]] = field(default_factory=set)
    closed: bool = False

    def publish(self, event: Event) -> None:
        self.history.append(event)
        for queue in self.viewers:
            queue.put_nowait(event)

    def close(self) -> None:
        self.closed = True
        for queue in self.viewers:
            queue.put_nowait(None)

    async def follow(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        for event in self.history:
            queue.put_nowait(event)
        if self.closed:
            queue.put_nowait(None)
        self.viewers.add(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self.viewers.discard(queue)


class ConsultRuns:
    def __init__(self, settings: Settings, services: Services, store: WorkspaceStore, max_parallel: int = 1,
                 max_queued: int = 8):
        self.settings = settings
        self.services = services
        self.store = store
        self._slots = asyncio.Semaphore(max_parallel)
        self._capacity = max_parallel + max_queued
        self._channels: dict[str, CaseChannel] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    def channel(self, case_id: str) -> CaseChannel | None:
        return self._channels.get(case_id)

    def active(self, case_id: str) -> bool:
        """A run is going on: its task is alive and has not closed its channel (a page loaded after the closing
        event is the finished page, so a viewer's reload never lands on a run that has just ended)."""
        task, channel = self._tasks.get(case_id), self._channels.get(case_id)
        return task is not None and not task.done() and channel is not None and not channel.closed

    def busy(self) -> str | None:
        """Why a new consult or question cannot be taken now (every slot and queue place is taken), or None."""
        waiting = sum(not task.done() for task in self._tasks.values())
        if waiting < self._capacity:
            return None
        return f"Busy: {waiting} consults are running or waiting for the model. Try again in a few minutes."

    def start(self, case: WorkspaceCase, *, resume: bool = False) -> None:
        """Run the case (or, after a server restart, resume it from its checkpoint) as a background task."""
        self._launch(case, self._consult(case, resume=resume))

    def sign_off(self, case: WorkspaceCase, decision: SignOff) -> None:
        """Resume the paused graph with the clinician's decision (it writes the signed report)."""
        self.store.set_status(case.id, "signing")
        self._launch(case, self._consult(case, resume=True, decision=decision))

    def ask(self, case: WorkspaceCase, question: str, user: str) -> None:
        """Answer a follow-up question on the case's evidence; the answer streams on the case's channel."""
        self._launch(case, self._followup(case, question, user))

    async def shutdown(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _launch(self, case: WorkspaceCase, work: Any) -> None:
        if self.active(case.id):
            work.close()
            raise RuntimeError("this case is already running")
        self._channels[case.id] = CaseChannel()
        self._tasks[case.id] = asyncio.get_running_loop().create_task(work)

    async def _consult(self, case: WorkspaceCase, *, resume: bool, decision: SignOff | None = None) -> None:
        channel = self._channels[case.id]
        loop = asyncio.get_running_loop()
        listeners = _Listeners(channel, loop)
        try:
            if self._slots.locked():
                self._status(case, channel, "queued", "waiting for a free consult slot")
            async with self._slots:
                self._status(case, channel, "signing" if decision else "running")
                outcome = await run_consult(
                    None if resume else case.case, self.settings, self.services, case.out_dir,
                    listeners=[listeners.ended], stream_listeners=[listeners.draft],
                    start_listeners=[listeners.started], thread_id=case.thread_id,
                    approver=(lambda _request: decision) if decision else None,
                )
            failure = consult_failure(outcome.state, read_trace(outcome.trace_path))
            if outcome.awaiting_sign_off:
                self._status(case, channel, "awaiting sign-off", failure)
            else:
                self._status(case, channel, "signed", failure)
        except asyncio.CancelledError:
            raise
        except ConsultPaused as paused:  # the clinician resumes it once the service is back
            logger.warning("case %s paused", case.id)
            self._status(case, channel, "failed" if paused.saved is False else "paused", paused.reason)
        except Exception as error:  # noqa: BLE001 - the case shows why it stopped; the server goes on
            logger.warning("case %s stopped: %s", case.id, type(error).__name__)
            self._status(case, channel, "failed", f"{type(error).__name__}: {error}")
        finally:
            channel.close()

    async def _followup(self, case: WorkspaceCase, question: str, user: str) -> None:
        channel = self._channels[case.id]
        listeners = _Listeners(channel, asyncio.get_running_loop())
        try:
            async with self._slots:
                turn = await ask_followup(
                    self.settings, self.services, case.thread_id, case.out_dir, question, user,
                    listeners=[listeners.ended], stream_listeners=[listeners.draft],
                    start_listeners=[listeners.started],
                )
            channel.publish({"type": "answered", "error": turn.error})
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the question fails, the case stays as it was
            logger.warning("follow-up on case %s failed: %s", case.id, type(error).__name__)
            channel.publish({"type": "answered", "error": f"{type(error).__name__}: {error}"})
        finally:
            channel.close()

    def _status(
        self, case: WorkspaceCase, channel: CaseChannel, status: str, detail: str | None = None
    ) -> None:
        self.store.set_status(case.id, status, detail)
        channel.publish({"type": "status", "status": status, "detail": detail})


class _Listeners:
    """Tracer listeners; LLM callbacks may run in worker threads, so every event reaches the loop thread-safely."""

    DRAFT_INTERVAL_S = 0.5  # the reply's length ("writing... N characters") at most twice a second

    def __init__(self, channel: CaseChannel, loop: asyncio.AbstractEventLoop):
        self.channel = channel
        self.loop = loop
        self._lines: dict[str, list[str]] = {}
        self._last_length_at: dict[str, float] = {}

    def _publish(self, event: Event) -> None:
        """`at`: when it happened (wall clock), so a late viewer or a benchmark still reads the true timing."""
        self.loop.call_soon_threadsafe(self.channel.publish, {**event, "at": time.time()})

    def started(self, kind: str, name: str) -> None:
        self._publish({"type": "step", "phase": "start", "kind": kind, "name": name})

    def ended(self, event: Event) -> None:
        line = event.get("summary") if event["kind"] == "tool" else None
        if event["kind"] == "llm":
            line = f"{event.get('prompt_tokens')} → {event.get('completion_tokens')} tokens"
        error = event.get("error")
        self._publish({
            "type": "step", "phase": "end", "kind": event["kind"], "name": event["name"],
            "duration_s": event.get("duration_s"), "line": error or line, "error": bool(error),
            "result_id": event.get("result_id"),
        })

    def draft(self, step: str, text: str) -> None:
        if step == FOLLOWUP_STEP:
            answer = partial_answer(text)
            if answer:
                self._publish({"type": "answer", "text": answer})
            return
        lines = reply_lines(step, text) if step in DRAFT_STEPS else None
        if lines is not None and lines != self._lines.get(step):
            self._lines[step] = lines
            self._publish({"type": "draft", "step": step, "lines": lines})
        now = time.monotonic()
        if now - self._last_length_at.get(step, 0.0) >= self.DRAFT_INTERVAL_S:
            self._last_length_at[step] = now
            self._publish({"type": "writing", "step": step, "characters": len(text)})
