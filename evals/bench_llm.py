"""LLM benchmark (`make bench` -> out/bench.json, section "llm"): where a consult's model time goes.

One case runs end to end through the consult graph against the configured LLM server (the embedded llama.cpp
server by default), streamed as in the CLI. Per LLM call the trace gives the prompt tokens sent, the prompt tokens
the server actually evaluated (its cache hits excluded), the completion tokens, the time to the first token and the
duration, from which prefill and decode rates follow. The case gives its wall time and the time until the
differential is complete (and until its first diagnosis was on screen).

Then the differential's request, captured as it was sent, is replayed on the warm server: once for one token (so
its prompt is cached and both measured replays start from the same cache), then as sent (schema-constrained) and
without the constraint. The difference in time per generated token and in time to the first token is what the
constraint costs (grammar set-up shows in the first token). Where the server reports its own `timings` (llama.cpp)
they are kept too.
"""

from __future__ import annotations

import asyncio
import json
import platform
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from medconsult.cases import load_case_file
from medconsult.config import Settings
from medconsult.evals.trace_stats import time_split
from medconsult.fhir.server import fhir_service
from medconsult.llm.chat_model import make_chat_model
from medconsult.llm.embedded import llm_endpoint
from medconsult.runner import Services, run_consult
from medconsult.signoff import auto_approve
from medconsult.tracing import read_trace

SERVER_TIMINGS = ("cache_n", "prompt_n", "prompt_per_second", "predicted_n", "predicted_per_second")


def run_llm_benchmark(settings: Settings, case_file: Path) -> dict[str, Any]:
    case = load_case_file(case_file, settings.resolved_data_dir).to_case()
    requests: list[dict[str, Any]] = []

    async def capture(request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            requests.append(json.loads(request.content))

    with fhir_service(settings) as fhir_base_url, llm_endpoint(settings) as endpoint:
        client = httpx.AsyncClient(event_hooks={"request": [capture]}, timeout=settings.llm_timeout_s)
        chat = make_chat_model(settings, endpoint.base_url, endpoint.model, http_async_client=client)
        services = Services(fhir_base_url, chat, endpoint.model, endpoint.process)
        with tempfile.TemporaryDirectory() as out:
            streamed: dict[str, float] = {}
            outcome = asyncio.run(_run_case(case, settings, services, Path(out), streamed))
            trace = read_trace(outcome.trace_path)
        differential = _request_of(requests, "differential", trace)
        overhead = _constraint_overhead(endpoint.base_url, differential) if differential else None
        server_rss = endpoint.process.peak_rss_mb() if endpoint.process else None
    return {
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
        "model": endpoint.model,
        "case": case.id,
        "calls": [_call_figures(event) for event in trace if event["kind"] == "llm"],
        "totals": time_split(trace),
        "time_to_differential_s": _time_to(trace, "differential"),
        "time_to_first_diagnosis_on_screen_s": streamed.get("first_diagnosis_s"),
        "llm_server_peak_rss_mb": server_rss,
        "constraint_overhead": overhead,
    }


async def _run_case(case, settings: Settings, services: Services, out: Path, streamed: dict[str, float]):
    clock = time.perf_counter()

    def on_stream(step: str, text: str) -> None:
        if step == "differential" and '"supporting"' in text:  # the first diagnosis's name and likelihood are complete
            streamed.setdefault("first_diagnosis_s", round(time.perf_counter() - clock, 2))

    return await run_consult(case, settings, services, out, stream_listeners=[on_stream], approver=auto_approve)


def _call_figures(event: dict[str, Any]) -> dict[str, Any]:
    """One LLM call: tokens, time to first token, and the prefill and decode rates they imply."""
    evaluated, completion = event.get("prompt_tokens_evaluated"), event.get("completion_tokens")
    first, duration = event.get("first_token_s"), event["duration_s"]
    prefill = evaluated / first if evaluated and first else None
    decode = (completion - 1) / (duration - first) if completion and first and duration > first else None
    return {
        "step": event["name"],
        "error": event.get("error"),
        "prompt_tokens_sent": event.get("prompt_tokens"),
        "prompt_tokens_evaluated": evaluated,
        "completion_tokens": completion,
        "first_token_s": first,
        "duration_s": duration,
        "prefill_tok_s": _round(prefill),
        "decode_tok_s": _round(decode),
    }


def _time_to(trace: list[dict[str, Any]], step: str) -> float | None:
    """Seconds from the start of the consult to the end of the first call of `step`."""
    starts = [e for e in trace if e["kind"] == "node" and e["name"] == "intake"]
    calls = [e for e in trace if e["kind"] == "llm" and e["name"] == step and not e.get("error")]
    if not starts or not calls:
        return None
    begin = datetime.fromisoformat(starts[0]["start"])
    end = datetime.fromisoformat(calls[0]["start"]).timestamp() + calls[0]["duration_s"]
    return round(end - begin.timestamp(), 2)


def _request_of(requests: list[dict[str, Any]], step: str, trace: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The request body of the first call of `step`: requests and llm trace lines come in the same order."""
    steps = [e["name"] for e in trace if e["kind"] == "llm"]
    return requests[steps.index(step)] if step in steps and len(requests) == len(steps) else None


def _constraint_overhead(base_url: str, request: dict[str, Any]) -> dict[str, Any]:
    free_request = {k: v for k, v in request.items() if k not in ("response_format", "tools", "tool_choice")}
    _replay(base_url, {**free_request, "max_tokens": 1})  # the prompt into the server's cache: both start equal
    constrained = _replay(base_url, request)
    free = _replay(base_url, free_request)
    ratio = None
    if constrained["ms_per_token"] and free["ms_per_token"]:
        ratio = round(constrained["ms_per_token"] / free["ms_per_token"], 3)
    return {"with_schema": constrained, "without_schema": free, "time_per_token_ratio": ratio}


def _replay(base_url: str, request: dict[str, Any]) -> dict[str, Any]:
    """Send `request` again, streamed, timing the first token and the rest; the server's own timings if given."""
    body = {**request, "stream": True, "stream_options": {"include_usage": True}}
    first: float | None = None
    usage: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    clock = time.perf_counter()
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line.removeprefix("data: "))
            delta = (chunk.get("choices") or [{}])[0].get("delta") or {}
            if first is None and (delta.get("content") or delta.get("tool_calls")):
                first = time.perf_counter() - clock
            usage = chunk.get("usage") or usage
            timings = chunk.get("timings") or timings
    duration = time.perf_counter() - clock
    completion = usage.get("completion_tokens")
    per_token = 1000 * (duration - first) / (completion - 1) if first and completion and completion > 1 else None
    return {
        "first_token_s": _round(first),
        "duration_s": _round(duration),
        "completion_tokens": completion,
        "ms_per_token": _round(per_token),
        "server_timings": {k: _round(timings[k]) for k in SERVER_TIMINGS if k in timings} or None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
