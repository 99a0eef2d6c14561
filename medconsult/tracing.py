"""trace.jsonl: one JSON object per node, tool call and LLM call, written as they finish.

Every line has `kind` ("node" | "tool" | "llm"), `name`, `start` (ISO time), `duration_s` and `error`
(null or text). "llm" lines add `prompt_tokens`, `prompt_tokens_evaluated` (the prompt tokens the server actually
processed: its reused prompt cache excluded; null when the server does not say), `completion_tokens` and
`first_token_s` (seconds to the first streamed token; null when the reply was not streamed); "tool" lines add
`result_id`, the id the report and the differential cite. Listeners (the CLI's progress display) see each line as it
is written; stream listeners see an LLM reply's text as it grows, token by token, and start listeners (the web
workspace) see each node and tool as it starts (nothing of either goes to the file).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult
from openai import LengthFinishReasonError

if TYPE_CHECKING:
    from medconsult.records import ToolRecord

Listener = Callable[[dict[str, Any]], None]
StreamListener = Callable[[str, str], None]  # (step, the reply's text so far)
StartListener = Callable[[str, str], None]  # (kind: "node" | "tool", name)


def read_trace(path: Path) -> list[dict[str, Any]]:
    """The events of a trace.jsonl, in the order they were written."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Tracer:
    def __init__(
        self,
        path: Path | None = None,
        listeners: list[Listener] | None = None,
        stream_listeners: list[StreamListener] | None = None,
        start_listeners: list[StartListener] | None = None,
    ):
        self.path = path
        self.listeners = list(listeners or [])
        self.stream_listeners = list(stream_listeners or [])
        self.start_listeners = list(start_listeners or [])
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)
            if self.path is not None:
                with open(self.path, "a") as handle:
                    handle.write(json.dumps(event, default=str) + "\n")
        for listener in self.listeners:
            listener(event)

    def partial(self, step: str, text: str) -> None:
        for listener in self.stream_listeners:
            listener(step, text)

    def started(self, kind: str, name: str) -> None:
        for listener in self.start_listeners:
            listener(kind, name)

    def node(self, name: str, start: str, duration_s: float, error: str | None = None, **detail: Any) -> None:
        self.emit(
            {"kind": "node", "name": name, "start": start, "duration_s": round(duration_s, 4), "error": error}
            | detail
        )

    def tool(self, record: ToolRecord) -> None:
        self.emit(
            {
                "kind": "tool",
                "name": record.tool,
                "start": record.started_at,
                "duration_s": record.duration_s,
                "error": record.error,
                "result_id": record.id,
                "args": record.args,
                "summary": (record.result or {}).get("summary"),
            }
        )

    def llm_callback(self, step: str) -> LlmTraceCallback:
        return LlmTraceCallback(self, step)


class LlmTraceCallback(BaseCallbackHandler):
    """Writes one "llm" line per chat-model call, with the token counts the server reported."""

    def __init__(self, tracer: Tracer, step: str):
        self.tracer = tracer
        self.step = step
        self._started: dict[UUID, tuple[str, float]] = {}
        self._first_token: dict[UUID, float] = {}
        self._text: dict[UUID, str] = {}

    def on_chat_model_start(self, serialized: dict, messages: list, *, run_id: UUID, **kwargs: Any) -> None:
        self._started[run_id] = (now_iso(), time.perf_counter())

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        if not token:
            return
        if run_id not in self._first_token and run_id in self._started:
            self._first_token[run_id] = time.perf_counter() - self._started[run_id][1]
        self._text[run_id] = self._text.get(run_id, "") + token
        self.tracer.partial(self.step, self._text[run_id])

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        start, clock = self._started.pop(run_id, (now_iso(), time.perf_counter()))
        first_token = self._first_token.pop(run_id, None)
        self._text.pop(run_id, None)
        usage = _usage(response)
        info = _generation_info(response)
        self.tracer.emit(
            {
                "kind": "llm",
                "name": self.step,
                "start": start,
                "duration_s": round(time.perf_counter() - clock, 4),
                "error": None,
                "model": (response.llm_output or {}).get("model_name") or info.get("model_name"),
                "prompt_tokens": usage.get("prompt_tokens"),
                "prompt_tokens_evaluated": _evaluated(usage),
                "completion_tokens": usage.get("completion_tokens"),
                "first_token_s": None if first_token is None else round(first_token, 4),
                "finish_reason": info.get("finish_reason"),
            }
        )

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        start, clock = self._started.pop(run_id, (now_iso(), time.perf_counter()))
        self._first_token.pop(run_id, None)
        self._text.pop(run_id, None)
        self.tracer.emit(
            {
                "kind": "llm",
                "name": self.step,
                "start": start,
                "duration_s": round(time.perf_counter() - clock, 4),
                "error": f"{type(error).__name__}: {error}",
                "prompt_tokens": None,
                "prompt_tokens_evaluated": None,
                "completion_tokens": None,
                "first_token_s": None,
                # a streamed reply cut at max_tokens carries no usage block; say at least why it ended
                "finish_reason": "length" if isinstance(error, LengthFinishReasonError) else None,
            }
        )


def _usage(response: LLMResult) -> dict[str, Any]:
    """The server's usage block: in `llm_output` for a whole reply, in the generation's info for a streamed one."""
    usage = (response.llm_output or {}).get("token_usage") or _generation_info(response).get("token_usage") or {}
    if usage:
        return usage
    try:
        metadata = response.generations[0][0].message.usage_metadata or {}
    except (IndexError, AttributeError):
        return {}
    cached = (metadata.get("input_token_details") or {}).get("cache_read")
    return {
        "prompt_tokens": metadata.get("input_tokens"),
        "completion_tokens": metadata.get("output_tokens"),
        "prompt_tokens_details": None if cached is None else {"cached_tokens": cached},
    }


def _generation_info(response: LLMResult) -> dict[str, Any]:
    generation = response.generations[0][0] if response.generations and response.generations[0] else None
    return getattr(generation, "generation_info", None) or {}


def _evaluated(usage: dict[str, Any]) -> int | None:
    """Prompt tokens minus the server's cache hits (OpenAI `prompt_tokens_details.cached_tokens`, reported by
    llama.cpp's server and by vLLM with --enable-prompt-tokens-details); None when the server does not report them."""
    prompt = usage.get("prompt_tokens")
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if prompt is None or cached is None:
        return None
    return max(0, prompt - cached)
